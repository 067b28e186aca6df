#include "services/intake/job_repository.h"

#include <charconv>

#include "absl/strings/str_cat.h"
#include "services/billing/ledger.h"
#include "services/common/job_state_machine.h"
#include "services/common/money.h"
#include "services/intake/job_spec_validator.h"
#include "services/store/statement.h"

namespace tessera::intake {
namespace {

// Finds the account and locks its balances in id order (available before escrow).
constexpr store::Statement kLockAccount{
    "submit_lock_account",
    "SELECT a.account_id, a.kind, l.ledger_account_id, l.bucket, l.balance_utok"
    " FROM accounts a JOIN ledger_accounts l USING (account_id) WHERE a.name = $1"
    " ORDER BY l.ledger_account_id FOR NO KEY UPDATE OF l"};

constexpr store::Statement kFindRequest{
    "submit_find_request", "SELECT job_id, spec FROM jobs WHERE account_id = $1 AND request_id = $2"};

// The job, its QUEUED event and the scheduler's wake-up in one statement.
constexpr store::Statement kInsertJob{
    "submit_insert_job",
    "WITH job AS ("
    "  INSERT INTO jobs (account_id, request_id, spec, kind, gpu_count, gpu_models, bid_utok_per_gpu_hour,"
    "   max_duration_ms, priority_class, max_attempts, fee_bps, hold_utok, state)"
    "  VALUES ($1, $2, $3, $4, $5, $6::text[], $7, $8, $9, $10, $11, $12, 'QUEUED') RETURNING job_id, created_at),"
    " audited AS (INSERT INTO job_events (job_id, state, attempt, message)"
    "  SELECT job_id, 'QUEUED', 0, 'submitted; ' || $12::bigint || ' µT held in escrow' FROM job)"
    "SELECT job_id, (extract(epoch FROM created_at) * 1000)::bigint, pg_notify('tessera_jobs', job_id::text) FROM job"};

}  // namespace

const char* const kJobColumns =
    "j.job_id, a.name, j.request_id, j.spec, j.state, j.hold_utok, j.bid_utok_per_gpu_hour, j.priority_class,"
    " j.attempt, j.max_attempts, coalesce(j.worker_id, 0), j.price_utok_per_gpu_hour, j.gpu_ms_total, j.charged_utok,"
    " j.progress_ppm, j.wait_reason, j.result, (extract(epoch FROM j.created_at) * 1000)::bigint,"
    " (extract(epoch FROM j.updated_at) * 1000)::bigint";

v1::Job JobFromRow(const pqxx::row& row) {
  v1::Job job;
  job.set_job_id(row[0].as<int64_t>());
  job.set_account(row[1].as<std::string>());
  job.set_request_id(row[2].as<std::string>());
  job.mutable_spec()->ParseFromString(pqxx::binarystring(row[3]).str());
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
  if (!row[16].is_null()) job.mutable_result()->ParseFromString(pqxx::binarystring(row[16]).str());
  job.set_created_at_ms(row[17].as<int64_t>());
  job.set_updated_at_ms(row[18].as<int64_t>());
  return job;
}

absl::StatusOr<v1::Job> LoadJob(pqxx::work& tx, int64_t job_id) {
  const pqxx::result r = tx.exec_params(
      absl::StrCat("SELECT ", kJobColumns, " FROM jobs j JOIN accounts a USING (account_id) WHERE j.job_id = $1"), job_id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return JobFromRow(r[0]);
}

absl::StatusOr<SubmitOutcome> JobRepository::Submit(const v1::SubmitJobRequest& request) {
  const v1::JobSpec& spec = request.spec();
  absl::StatusOr<int64_t> hold = HoldAmount(spec.bid_utok_per_gpu_hour(), spec.gpu_count(), spec.max_duration_ms());
  if (!hold.ok()) return hold.status();
  const std::string spec_bytes = spec.SerializeAsString();
  const uint32_t max_attempts = spec.max_attempts() == 0 ? kDefaultMaxAttempts : spec.max_attempts();

  return db_.Transact("submit job", [&](pqxx::work& tx) -> absl::StatusOr<SubmitOutcome> {
    // One statement finds the account and locks its balances in id order (available before
    // escrow): that serialises the submits of one account, so the request_id check below cannot
    // race, and money transactions never deadlock each other.
    const pqxx::result buckets = store::Exec(tx, kLockAccount, request.account());
    if (buckets.empty()) return absl::NotFoundError(absl::StrCat("account '", request.account(), "' not found"));
    const auto kind = buckets[0][1].as<std::string>();
    if (kind != "customer") {
      return absl::FailedPreconditionError(absl::StrCat("account '", request.account(), "' is a ", kind,
                                                        " account; jobs are submitted by customer accounts"));
    }
    const auto account_id = buckets[0][0].as<int64_t>();
    int64_t available_id = 0, escrow_id = 0, available = 0;
    for (const pqxx::row& b : buckets) {
      if (b[3].as<std::string>() == "available") {
        available_id = b[2].as<int64_t>();
        available = b[4].as<int64_t>();
      } else if (b[3].as<std::string>() == "escrow") {
        escrow_id = b[2].as<int64_t>();
      }
    }
    const pqxx::result existing = store::Exec(tx, kFindRequest, account_id, request.request_id());
    if (!existing.empty()) {
      const auto job_id = existing[0][0].as<int64_t>();
      if (pqxx::binarystring(existing[0][1]).str() != spec_bytes) {
        return absl::AlreadyExistsError(absl::StrCat("request_id '", request.request_id(),
                                                     "' was already used for a different job spec (job ", job_id, ")"));
      }
      absl::StatusOr<v1::Job> job = LoadJob(tx, job_id);
      if (!job.ok()) return job.status();
      return SubmitOutcome{.job = *std::move(job), .deduplicated = true};
    }
    if (available < *hold) {
      return absl::FailedPreconditionError(absl::StrCat("insufficient balance: the hold needs ", *hold,
                                                        " µT, account '", request.account(), "' has ", available,
                                                        " µT available"));
    }
    const pqxx::row inserted = store::Exec(tx, kInsertJob,
        account_id, request.request_id(), pqxx::binarystring(spec_bytes), spec.kind(), spec.gpu_count(),
        store::ArrayLiteral(std::vector<std::string>(spec.gpu_models().begin(), spec.gpu_models().end())),
        spec.bid_utok_per_gpu_hour(), spec.max_duration_ms(), std::string(PriorityClassName(spec.priority_class())),
        max_attempts, fee_bps_, *hold)[0];
    const auto job_id = inserted[0].as<int64_t>();
    if (*hold > 0) {
      billing::PostTransfers(tx,
                             {{.idempotency_key = absl::StrCat("hold:", job_id), .kind = "HOLD",
                               .debit_ledger_id = available_id, .credit_ledger_id = escrow_id, .amount_utok = *hold,
                               .job_id = job_id}},
                             billing::BucketLocks::kAlreadyHeld);
    }
    // The job as written, without reading it back.
    SubmitOutcome outcome;
    v1::Job& job = outcome.job;
    job.set_job_id(job_id);
    job.set_account(request.account());
    job.set_request_id(request.request_id());
    *job.mutable_spec() = spec;
    job.set_state(v1::JOB_STATE_QUEUED);
    job.set_hold_utok(*hold);
    job.set_bid_utok_per_gpu_hour(spec.bid_utok_per_gpu_hour());
    job.set_priority_class(ParsePriorityClass(PriorityClassName(spec.priority_class())));
    job.set_max_attempts(max_attempts);
    job.set_created_at_ms(inserted[1].as<int64_t>());
    job.set_updated_at_ms(job.created_at_ms());
    return outcome;
  });
}

absl::StatusOr<v1::Job> JobRepository::Get(int64_t job_id) {
  return db_.Transact("get job", [&](pqxx::work& tx) { return LoadJob(tx, job_id); });
}

absl::StatusOr<v1::ListJobsResponse> JobRepository::List(const v1::ListJobsRequest& request) {
  int64_t before_job_id = INT64_MAX;
  if (!request.page_token().empty()) {
    const std::string& t = request.page_token();
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), before_job_id);
    if (ec != std::errc() || end != t.data() + t.size()) return absl::InvalidArgumentError("page_token is not valid");
  }
  const uint32_t page_size = request.page_size() == 0 ? 50 : request.page_size();
  if (page_size > 500) return absl::InvalidArgumentError("page_size must be at most 500");
  const std::string state = request.state() == v1::JOB_STATE_UNSPECIFIED ? "" : std::string(JobStateName(request.state()));
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
    if (rows.size() > page_size) response.set_next_page_token(std::to_string(response.jobs().rbegin()->job_id()));
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
    const auto attempt = r[0][1].as<int64_t>();
    tx.exec_params0("UPDATE jobs SET state = 'CANCELLED', wait_reason = '', updated_at = now() WHERE job_id = $1", job_id);
    const pqxx::result ended = tx.exec_params(
        "UPDATE assignments SET state = 'ENDED', end_reason = 'cancelled', ended_at = now()"
        " WHERE job_id = $1 AND attempt = $2 AND state = 'LIVE' RETURNING worker_id",
        job_id, attempt);
    const int64_t worker_id = ended.empty() ? 0 : ended[0][0].as<int64_t>();
    tx.exec_params0(
        "INSERT INTO job_events (job_id, state, attempt, worker_id, message)"
        " VALUES ($1, 'CANCELLED', $2, NULLIF($3, 0), 'cancelled by the customer')",
        job_id, attempt, worker_id);
    tx.exec0("NOTIFY tessera_settle");
    // Worker 0: the job was still queued; the scheduler drops it from its queue.
    tx.exec_params("SELECT pg_notify('tessera_cancels', $1)", absl::StrCat(job_id, " ", attempt, " ", worker_id));
    return LoadJob(tx, job_id);
  });
}

absl::StatusOr<JobChanges> JobRepository::ChangesSince(int64_t job_id, int64_t after_event_id) {
  return db_.Transact("watch job", [&](pqxx::work& tx) -> absl::StatusOr<JobChanges> {
    absl::StatusOr<v1::Job> job = LoadJob(tx, job_id);
    if (!job.ok()) return job.status();
    JobChanges changes{.updates = {}, .last_event_id = after_event_id, .job = *std::move(job), .loss = 0};
    const pqxx::row loss = tx.exec_params1("SELECT coalesce(last_loss, 0) FROM jobs WHERE job_id = $1", job_id);
    changes.loss = loss[0].as<double>();
    const pqxx::result events = tx.exec_params(
        "SELECT event_id, state, attempt, message, (extract(epoch FROM created_at) * 1000)::bigint"
        " FROM job_events WHERE job_id = $1 AND event_id > $2 ORDER BY event_id LIMIT $3",
        job_id, after_event_id, kMaxEventsPerRead);
    for (const pqxx::row& e : events) {
      v1::JobUpdate& u = changes.updates.emplace_back();
      u.set_job_id(job_id);
      u.set_state(ParseJobState(e[1].as<std::string>()).value_or(v1::JOB_STATE_UNSPECIFIED));
      u.set_attempt(e[2].as<uint32_t>());
      u.set_message(e[3].as<std::string>());
      u.set_at_ms(e[4].as<int64_t>());
      changes.last_event_id = e[0].as<int64_t>();
    }
    return changes;
  });
}

}  // namespace tessera::intake
