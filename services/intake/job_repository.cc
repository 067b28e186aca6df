#include "services/intake/job_repository.h"

#include "absl/strings/str_cat.h"
#include "services/billing/ledger.h"
#include "services/common/job_state_machine.h"
#include "services/common/money.h"
#include "services/common/pagination.h"
#include "services/common/worker_validation.h"
#include "services/common/workloads.h"
#include "services/intake/job_spec_validator.h"
#include "services/lifecycle/job_lifecycle.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::intake {
namespace {

v1::JobUpdateKind ParseUpdateKind(const std::string& kind) {
  if (kind == "ESCROW_LOW") return v1::JOB_UPDATE_KIND_ESCROW_LOW;
  if (kind == "EXTENDED") return v1::JOB_UPDATE_KIND_EXTENDED;
  return v1::JOB_UPDATE_KIND_STATE;
}

}  // namespace

const char* const kJobColumns =
    "j.job_id, a.name, j.request_id, j.spec, j.state, j.hold_utok, j.bid_utok_per_gpu_hour, j.priority_class,"
    " j.attempt, j.max_attempts, coalesce(j.worker_id, 0), j.price_utok_per_gpu_hour, j.gpu_ms_total, j.charged_utok,"
    " j.progress_ppm, j.wait_reason, j.result, (extract(epoch FROM j.created_at) * 1000)::bigint,"
    " (extract(epoch FROM j.updated_at) * 1000)::bigint, j.max_duration_ms, j.hold_state,"
    " CASE WHEN j.state = 'QUEUED' AND j.attempt = 0 THEN coalesce((extract(epoch FROM j.queue_deadline) * 1000)::bigint, 0) ELSE 0 END";

v1::Job JobFromRow(const pqxx::row& row) {
  v1::Job job;
  job.set_job_id(row[0].as<int64_t>());
  job.set_account(row[1].as<std::string>());
  job.set_request_id(row[2].as<std::string>());
  job.mutable_spec()->ParseFromString(pqxx::binarystring(row[3]).str());
  RedactSecrets(job.mutable_spec());  // only the worker that runs the job gets them
  job.set_state(ParseJobState(row[4].as<std::string>()).value_or(v1::JOB_STATE_UNSPECIFIED));
  job.set_hold_utok(row[5].as<int64_t>());
  job.set_bid_utok_per_gpu_hour(row[6].as<int64_t>());
  job.set_priority_class(ParsePriorityClass(row[7].as<std::string>()));
  job.set_attempt(row[8].as<uint32_t>());
  job.set_max_attempts(row[9].as<uint32_t>());
  job.set_worker_id(row[10].as<int64_t>());
  job.set_price_utok_per_gpu_hour(row[11].as<int64_t>());
  job.set_gpu_ms_total(row[12].as<int64_t>());
  job.set_charged_utok(row[13].as<int64_t>());
  job.set_progress_ppm(row[14].as<uint32_t>());
  job.set_wait_reason(row[15].as<std::string>());
  if (!row[16].is_null()) {
    job.mutable_result()->ParseFromString(pqxx::binarystring(row[16]).str());
    UpgradeLegacyResult(WorkloadKind(job.spec()), job.mutable_result());  // finished before JobResult.outputs
  }
  job.set_created_at_ms(row[17].as<int64_t>());
  job.set_updated_at_ms(row[18].as<int64_t>());
  job.set_max_duration_ms(row[19].as<int64_t>());
  job.set_hold_state(ParseHoldState(row[20].as<std::string>()));
  job.set_queue_deadline_ms(row[21].as<int64_t>());
  return job;
}

absl::StatusOr<v1::Job> LoadJob(pqxx::work& tx, int64_t job_id) {
  const pqxx::result r = tx.exec_params(
      absl::StrCat("SELECT ", kJobColumns, " FROM jobs j JOIN accounts a USING (account_id) WHERE j.job_id = $1"), job_id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return JobFromRow(r[0]);
}

absl::StatusOr<v1::Job> JobRepository::Get(int64_t job_id) {
  return db_.Transact("get job", [&](pqxx::work& tx) { return LoadJob(tx, job_id); });
}

absl::StatusOr<v1::ListJobsResponse> JobRepository::List(const v1::ListJobsRequest& request) {
  const std::string state = request.state() == v1::JOB_STATE_UNSPECIFIED ? "" : std::string(JobStateName(request.state()));
  const std::string filters = absl::StrCat(request.account(), "|", state);
  const PageQuery query{.list = "jobs", .filters = filters};
  absl::StatusOr<Page> page = ParsePage(query, request.page_token(), request.page_size());
  if (!page.ok()) return page.status();
  const uint32_t page_size = page->size;
  const int64_t before_job_id = page->before_id();
  return db_.Transact("list jobs", [&](pqxx::work& tx) -> absl::StatusOr<v1::ListJobsResponse> {
    if (tx.exec_params("SELECT 1 FROM accounts WHERE name = $1", request.account()).empty()) {
      return absl::NotFoundError(absl::StrCat("account '", request.account(), "' not found"));
    }
    const pqxx::result rows = tx.exec_params(
        absl::StrCat("SELECT ", kJobColumns,
                     " FROM jobs j JOIN accounts a USING (account_id)"
                     " WHERE a.name = $1 AND j.job_id < $2 AND ($3 = '' OR j.state = $3)"
                     " ORDER BY j.job_id DESC LIMIT $4"),
        request.account(), before_job_id, state, page_size + 1);
    v1::ListJobsResponse response;
    for (pqxx::result::size_type i = 0; i < rows.size() && i < page_size; ++i) *response.add_jobs() = JobFromRow(rows[i]);
    if (rows.size() > page_size) response.set_next_page_token(NextPageToken(query, response.jobs().rbegin()->job_id()));
    return response;
  });
}

absl::StatusOr<v1::Job> JobRepository::Cancel(int64_t job_id) {
  return db_.Transact("cancel job", [&](pqxx::work& tx) -> absl::StatusOr<v1::Job> {
    const pqxx::result r = tx.exec_params("SELECT state, attempt FROM jobs WHERE job_id = $1 FOR NO KEY UPDATE", job_id);
    if (r.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    const v1::JobState state = ParseJobState(r[0][0].as<std::string>()).value_or(v1::JOB_STATE_UNSPECIFIED);
    if (!CanTransition(state, v1::JOB_STATE_CANCELLED)) {
      return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " is already ", std::string(JobStateName(state))));
    }
    lifecycle::CancelByCustomer(tx, job_id, state, r[0][1].as<uint32_t>());
    return LoadJob(tx, job_id);
  });
}

absl::StatusOr<v1::Job> JobRepository::Extend(const v1::ExtendJobRequest& request) {
  const int64_t job_id = request.job_id();
  return db_.Transact("extend job", [&](pqxx::work& tx) -> absl::StatusOr<v1::Job> {
    // The job, then the customer's balances: the lock order of settlement, which charges it.
    const pqxx::result jobs = tx.exec_params(
        "SELECT state, attempt, bid_utok_per_gpu_hour, gpu_count, max_duration_ms, hold_utok, hold_state FROM jobs"
        " WHERE job_id = $1 FOR NO KEY UPDATE",
        job_id);
    if (jobs.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    const pqxx::row job = jobs[0];
    const pqxx::result balances = tx.exec_params(
        "SELECT l.bucket, l.ledger_account_id, l.balance_utok FROM jobs j JOIN ledger_accounts l USING (account_id)"
        " WHERE j.job_id = $1 AND l.bucket IN ('available', 'escrow') ORDER BY l.ledger_account_id FOR NO KEY UPDATE OF l",
        job_id);
    int64_t available_id = 0, escrow_id = 0, available = 0;
    for (const pqxx::row& b : balances) {
      if (b[0].as<std::string>() == "available") {
        available_id = b[1].as<int64_t>();
        available = b[2].as<int64_t>();
      } else {
        escrow_id = b[1].as<int64_t>();
      }
    }
    const pqxx::result earlier = tx.exec_params(
        "SELECT additional_duration_ms FROM job_extensions WHERE job_id = $1 AND request_id = $2", job_id, request.request_id());
    if (!earlier.empty()) {
      if (earlier[0][0].as<int64_t>() != request.additional_duration_ms()) {
        return absl::AlreadyExistsError(absl::StrCat("request_id '", request.request_id(), "' already extended job ", job_id, " by ",
                                                     earlier[0][0].as<int64_t>(), " ms"));
      }
      return LoadJob(tx, job_id);  // a retry: applied once already
    }
    const v1::JobState state = ParseJobState(job[0].as<std::string>()).value_or(v1::JOB_STATE_UNSPECIFIED);
    if (IsTerminal(state) || job[6].as<std::string>() != "PENDING") {
      return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " is already ", std::string(JobStateName(state)),
                                                        "; only a job that has not ended can be extended"));
    }
    const auto attempt = job[1].as<int64_t>();
    const auto old_max = job[4].as<int64_t>();
    const int64_t new_max = old_max + request.additional_duration_ms();
    if (new_max > kMaxDurationMs) {
      return absl::OutOfRangeError(absl::StrCat("max_duration_ms would be ", new_max, ", above the limit of ", kMaxDurationMs,
                                                " (30 days)"));
    }
    // The workers running it must accept the new limit (their providers' max_job_duration_ms).
    std::vector<int64_t> running_on;
    for (const pqxx::row& w : tx.exec_params(
             "SELECT w.worker_id, w.policy FROM assignments a JOIN workers w USING (worker_id)"
             " WHERE a.job_id = $1 AND a.attempt = $2 AND a.state = 'LIVE'",
             job_id, attempt)) {
      v1::ProviderPolicy policy;
      policy.ParseFromString(pqxx::binarystring(w[1]).str());
      if (!PolicyAllowsDuration(policy, new_max)) {
        return absl::FailedPreconditionError(absl::StrCat("worker ", w[0].as<int64_t>(), " running job ", job_id,
                                                          " takes jobs of at most ", policy.max_job_duration_ms(),
                                                          " ms (its provider's policy); the extension would make it ", new_max, " ms"));
      }
      running_on.push_back(w[0].as<int64_t>());
    }
    // The hold stays exactly what the limit costs at the bid: floor(bid × GPUs × max / 1 h).
    absl::StatusOr<int64_t> new_hold = HoldAmount(job[2].as<int64_t>(), job[3].as<int64_t>(), new_max);
    if (!new_hold.ok()) return new_hold.status();
    const int64_t added = *new_hold - job[5].as<int64_t>();
    if (available < added) {
      return absl::FailedPreconditionError(absl::StrCat("insufficient balance: the extension needs ", added,
                                                        " µT more in escrow, the account has ", available, " µT available"));
    }
    if (added > 0) {
      billing::PostTransfers(tx,
                             {{.idempotency_key = absl::StrCat("extend:", job_id, ":", request.request_id()), .kind = "HOLD",
                               .debit_ledger_id = available_id, .credit_ledger_id = escrow_id, .amount_utok = added,
                               .job_id = job_id}},
                             billing::BucketLocks::kAlreadyHeld);
    }
    lifecycle::RecordExtension(tx, {.job_id = job_id, .state = state, .attempt = static_cast<uint32_t>(attempt),
                                    .request_id = request.request_id(), .additional_ms = request.additional_duration_ms(),
                                    .added_hold_utok = added, .new_max_ms = new_max, .new_hold_utok = *new_hold,
                                    .running_on = running_on});
    return LoadJob(tx, job_id);
  });
}

absl::StatusOr<JobChanges> JobRepository::ChangesSince(int64_t job_id, int64_t after_event_id) {
  return db_.Transact("watch job", [&](pqxx::work& tx) -> absl::StatusOr<JobChanges> {
    // One snapshot for the job and its events: read apart, a job still RUNNING could come back with
    // its SUCCEEDED event, and the watcher would print progress after the job had ended.
    tx.exec0("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");
    absl::StatusOr<v1::Job> job = LoadJob(tx, job_id);
    if (!job.ok()) return job.status();
    JobChanges changes{.updates = {}, .last_event_id = after_event_id, .job = *std::move(job), .loss = 0};
    const pqxx::row loss = tx.exec_params1("SELECT coalesce(last_loss, 0) FROM jobs WHERE job_id = $1", job_id);
    changes.loss = loss[0].as<double>();
    const pqxx::result events = tx.exec_params(
        "SELECT event_id, state, attempt, message, (extract(epoch FROM created_at) * 1000)::bigint, kind, coalesce(remaining_ms, 0)"
        " FROM job_events WHERE job_id = $1 AND event_id > $2 ORDER BY event_id LIMIT $3",
        job_id, after_event_id, kMaxEventsPerRead);
    for (const pqxx::row& e : events) {
      v1::JobUpdate& u = changes.updates.emplace_back();
      u.set_job_id(job_id);
      u.set_state(ParseJobState(e[1].as<std::string>()).value_or(v1::JOB_STATE_UNSPECIFIED));
      u.set_attempt(e[2].as<uint32_t>());
      u.set_message(e[3].as<std::string>());
      u.set_at_ms(e[4].as<int64_t>());
      u.set_kind(ParseUpdateKind(e[5].as<std::string>()));
      u.set_remaining_ms(e[6].as<int64_t>());
      u.set_event_id(e[0].as<int64_t>());
      // The terminal event closes the stream: it carries where the job's progress ended, not 0.
      if (IsTerminal(u.state())) u.set_progress_ppm(changes.job.progress_ppm());
      changes.last_event_id = e[0].as<int64_t>();
    }
    return changes;
  });
}

}  // namespace tessera::intake
