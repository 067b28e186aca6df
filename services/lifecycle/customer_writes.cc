// What a customer's calls write: a submit, a cancel, an extension.
#include "absl/strings/str_cat.h"
#include "base/check.h"
#include "services/common/job_state_machine.h"
#include "services/lifecycle/job_lifecycle.h"
#include "services/lifecycle/state_write.h"
#include "services/store/database.h"
#include "services/store/notifications.h"
#include "services/store/statement.h"

namespace tessera::lifecycle {

using store::ArrayLiteral;

std::vector<QueuedJob> InsertQueued(pqxx::work& tx, const NewJobs& jobs, int64_t fee_bps) {
  // The jobs, their QUEUED events and the scheduler's wake-ups (one store::JobSubmitted NOTIFY per
  // job) in one statement.
  static constexpr store::Statement kInsertJobs{
      "submit_insert_jobs",
      "WITH input AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[],"
      "   $7::bigint[], $8::bigint[], $9::text[], $10::int[], $11::bigint[], $13::bigint[])"
      "   AS t(account_id, request_id, spec, kind, gpu_count, gpu_models, bid, max_duration_ms, priority_class, max_attempts, hold,"
      "        queue_timeout_ms)),"
      " job AS ("
      "  INSERT INTO jobs (account_id, request_id, spec, kind, gpu_count, gpu_models, bid_utok_per_gpu_hour,"
      "   max_duration_ms, priority_class, max_attempts, fee_bps, hold_utok, state, queue_deadline)"
      "  SELECT account_id, request_id, decode(spec, 'hex'), kind, gpu_count, gpu_models::text[], bid, max_duration_ms,"
      "   priority_class, max_attempts, $12, hold, 'QUEUED', now() + queue_timeout_ms * interval '1 millisecond' FROM input"
      "  RETURNING job_id, account_id, request_id, hold_utok, created_at, queue_deadline),"
      " audited AS (INSERT INTO job_events (job_id, state, attempt, message)"
      "  SELECT job_id, 'QUEUED', 0, 'submitted; ' || hold_utok || ' µT held in escrow' FROM job)"
      "SELECT account_id, request_id, job_id, (extract(epoch FROM created_at) * 1000)::bigint,"
      " " TESSERA_NOTIFY_JOB_SUBMITTED_SQL ", (extract(epoch FROM queue_deadline) * 1000)::bigint FROM job"};
  std::vector<QueuedJob> out;
  for (const pqxx::row& r : store::Exec(tx, kInsertJobs, ArrayLiteral(jobs.account_ids), ArrayLiteral(jobs.request_ids),
                                        ArrayLiteral(jobs.specs_hex), ArrayLiteral(jobs.kinds), ArrayLiteral(jobs.gpu_counts),
                                        ArrayLiteral(jobs.gpu_models), ArrayLiteral(jobs.bids), ArrayLiteral(jobs.max_duration_ms),
                                        ArrayLiteral(jobs.priority_classes), ArrayLiteral(jobs.max_attempts), ArrayLiteral(jobs.holds),
                                        fee_bps, ArrayLiteral(jobs.queue_timeout_ms))) {
    out.push_back({.account_id = r[0].as<int64_t>(), .request_id = r[1].as<std::string>(), .job_id = r[2].as<int64_t>(),
                   .created_ms = r[3].as<int64_t>(), .queue_deadline_ms = r[5].as<int64_t>()});
  }
  return out;
}

void CancelByCustomer(pqxx::work& tx, int64_t job_id, v1::JobState state, uint32_t attempt) {
  static const store::Statement kCancel = Checked(
      {.statement = {"lifecycle_cancel",
                     "UPDATE jobs SET state = 'CANCELLED', wait_reason = '', updated_at = now()"
                     " WHERE job_id = $1 AND state IN ('QUEUED', 'ASSIGNED', 'RUNNING') RETURNING 1"},
       .from = SourcesOf(v1::JOB_STATE_CANCELLED),
       .to = {v1::JOB_STATE_CANCELLED}});
  TESSERA_CHECK(CanTransition(state, v1::JOB_STATE_CANCELLED));
  TESSERA_CHECK(store::Exec(tx, kCancel, job_id).size() == 1);  // the caller holds the row in `state`
  const pqxx::result ended = tx.exec_params(
      "UPDATE assignments SET state = 'ENDED', end_reason = 'cancelled', ended_at = now()"
      " WHERE job_id = $1 AND attempt = $2 AND state = 'LIVE' RETURNING worker_id",
      job_id, attempt);
  const int64_t worker_id = ended.empty() ? 0 : ended[0][0].as<int64_t>();
  tx.exec_params0(
      "INSERT INTO job_events (job_id, state, attempt, worker_id, message)"
      " VALUES ($1, 'CANCELLED', $2, NULLIF($3, 0), 'cancelled by the customer')",
      job_id, attempt, worker_id);
  store::NotifySettle(tx);
  // One cancel per worker holding a lease (a spread job has several); worker 0: the job was
  // still queued and the scheduler drops it from its queue.
  const auto cancelled_on = [&](int64_t worker_id) {
    return store::JobCancelled{.job_id = job_id, .attempt = attempt, .worker_id = worker_id};
  };
  if (ended.empty()) store::Notify(tx, cancelled_on(0));
  for (const pqxx::row& lease : ended) store::Notify(tx, cancelled_on(lease[0].as<int64_t>()));
}

void RecordExtension(pqxx::work& tx, const Extension& e) {
  tx.exec_params0("UPDATE jobs SET max_duration_ms = $2, hold_utok = $3, updated_at = now() WHERE job_id = $1", e.job_id, e.new_max_ms,
                  e.new_hold_utok);
  tx.exec_params0(
      "INSERT INTO job_extensions (job_id, request_id, additional_duration_ms, hold_added_utok, max_duration_ms_after)"
      " VALUES ($1, $2, $3, $4, $5)",
      e.job_id, e.request_id, e.additional_ms, e.added_hold_utok, e.new_max_ms);
  tx.exec_params0("INSERT INTO job_events (job_id, state, attempt, message, kind) VALUES ($1, $2, $3, $4, 'EXTENDED')", e.job_id,
                  std::string(JobStateName(e.state)), e.attempt,
                  absl::StrCat("extended by ", e.additional_ms, " ms to max_duration_ms ", e.new_max_ms, "; ", e.added_hold_utok,
                               " µT more held in escrow"));
  // The scheduler updates its market and tells each worker running it (worker 0: not running).
  std::vector<int64_t> workers = e.running_on;
  if (workers.empty()) workers.push_back(0);
  for (int64_t worker_id : workers) {
    store::Notify(tx, store::JobExtended{.job_id = e.job_id, .attempt = e.attempt, .worker_id = worker_id, .max_duration_ms = e.new_max_ms});
  }
}

}  // namespace tessera::lifecycle
