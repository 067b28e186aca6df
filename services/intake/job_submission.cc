// The submit path: a batch of SubmitJob requests decided in order (refused, a retry, or accepted
// with its escrow hold) and written in one transaction (JobRepository::SubmitBatch).
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "services/billing/ledger.h"
#include "services/common/job_state_machine.h"
#include "services/common/money.h"
#include "services/common/sha256.h"
#include "services/common/workloads.h"
#include "services/intake/job_repository.h"
#include "services/intake/job_spec_validator.h"
#include "services/lifecycle/job_lifecycle.h"
#include "services/store/statement.h"

namespace tessera::intake {
namespace {

// Finds the accounts and locks their balances in id order (available before escrow).
constexpr store::Statement kLockAccounts{
    "submit_lock_accounts",
    "SELECT a.name, a.account_id, a.kind, l.ledger_account_id, l.bucket, l.balance_utok"
    " FROM accounts a JOIN ledger_accounts l USING (account_id) WHERE a.name = ANY($1::text[])"
    " ORDER BY l.ledger_account_id FOR NO KEY UPDATE OF l"};

constexpr store::Statement kFindRequests{
    "submit_find_requests",
    // LATERAL: one unique-index probe per request, whatever plan the statement caches.
    "SELECT r.account_id, r.request_id, j.job_id, j.spec FROM unnest($1::bigint[], $2::text[]) AS r(account_id, request_id)"
    " JOIN LATERAL (SELECT job_id, spec FROM jobs WHERE account_id = r.account_id AND request_id = r.request_id) j ON true"};

constexpr store::Statement kFindArtifacts{
    "submit_find_artifacts",
    "SELECT w.account_id, w.digest, a.kind FROM unnest($1::bigint[], $2::text[]) AS w(account_id, digest)"
    " JOIN artifacts a ON a.account_id = w.account_id AND a.digest = w.digest"};

struct AccountBalances {
  int64_t account_id = 0;
  std::string kind;
  int64_t available_id = 0, escrow_id = 0;
  int64_t available = 0;  // what is left after the holds decided so far in this batch
};

}  // namespace

absl::StatusOr<SubmitOutcome> JobRepository::Submit(const v1::SubmitJobRequest& request) {
  return SubmitBatch({&request}).at(0);
}

namespace {

using Outcomes = std::vector<absl::StatusOr<SubmitOutcome>>;
using RequestKey = std::pair<int64_t, std::string>;  // account id, request_id

struct SubmitTerms {
  int64_t hold = 0;
  std::string spec_bytes;
  uint32_t max_attempts = 0;
  bool valid = false;  // the hold is computable
};

// Before the transaction: each request's hold, stored spec and attempts (or its error, into
// `outcomes`), and the sorted, distinct accounts the valid ones name.
std::vector<SubmitTerms> TermsOf(const std::vector<const v1::SubmitJobRequest*>& requests, Outcomes& outcomes,
                                 std::vector<std::string>& names) {
  std::vector<SubmitTerms> terms(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const v1::JobSpec& spec = requests[i]->spec();
    absl::StatusOr<int64_t> hold = HoldAmount(spec.bid_utok_per_gpu_hour(), spec.gpu_count(), spec.max_duration_ms());
    if (!hold.ok()) {
      outcomes[i] = hold.status();
      continue;
    }
    terms[i] = {.hold = *hold, .spec_bytes = spec.SerializeAsString(),
                .max_attempts = spec.max_attempts() == 0 ? kDefaultMaxAttempts : spec.max_attempts(), .valid = true};
    names.push_back(requests[i]->account());
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return terms;
}

// One statement finds the accounts and locks their balances in id order: that serialises the
// submits of an account (so the request_id check cannot race) and money transactions never
// deadlock each other.
std::map<std::string, AccountBalances> LockAccounts(pqxx::work& tx, const std::vector<std::string>& names) {
  std::map<std::string, AccountBalances> accounts;
  for (const pqxx::row& b : store::Exec(tx, kLockAccounts, store::ArrayLiteral(names))) {
    AccountBalances& a = accounts[b[0].as<std::string>()];
    a.account_id = b[1].as<int64_t>();
    a.kind = b[2].as<std::string>();
    const auto bucket = b[4].as<std::string>();
    if (bucket == "available") {
      a.available_id = b[3].as<int64_t>();
      a.available = b[5].as<int64_t>();
    } else if (bucket == "escrow") {
      a.escrow_id = b[3].as<int64_t>();
    }
  }
  return accounts;
}

// The jobs already stored under the requests' (account, request_id): → job id, stored spec.
std::map<RequestKey, std::pair<int64_t, std::string>> FindEarlierRequests(pqxx::work& tx,
                                                                          const std::vector<const v1::SubmitJobRequest*>& requests,
                                                                          const std::map<std::string, AccountBalances>& accounts) {
  std::vector<int64_t> key_accounts;
  std::vector<std::string> key_requests;
  for (const v1::SubmitJobRequest* r : requests) {
    if (auto a = accounts.find(r->account()); a != accounts.end()) {
      key_accounts.push_back(a->second.account_id);
      key_requests.push_back(r->request_id());
    }
  }
  std::map<RequestKey, std::pair<int64_t, std::string>> existing;
  for (const pqxx::row& r : store::Exec(tx, kFindRequests, store::ArrayLiteral(key_accounts), store::ArrayLiteral(key_requests))) {
    existing[{r[0].as<int64_t>(), r[1].as<std::string>()}] = {r[2].as<int64_t>(), pqxx::binarystring(r[3]).str()};
  }
  return existing;
}

// What a container spec names that its account does not hold (an unknown input or code artifact, or
// code that is not a bundle): → the request's error. Checked in the submit's transaction; an
// artifact deleted after it fails the job's start instead.
std::map<size_t, absl::Status> UnknownArtifacts(pqxx::work& tx, const std::vector<const v1::SubmitJobRequest*>& requests,
                                                const std::map<std::string, AccountBalances>& accounts) {
  struct Named {
    size_t request;
    std::string field, digest;
    bool bundle;
  };
  std::vector<Named> named;
  std::vector<int64_t> key_accounts;
  std::vector<std::string> key_digests;
  for (size_t i = 0; i < requests.size(); ++i) {
    const v1::JobSpec& spec = requests[i]->spec();
    auto a = accounts.find(requests[i]->account());
    if (!spec.has_container() || a == accounts.end()) continue;
    auto name = [&](const std::string& field, const std::string& digest, bool bundle) {
      if (absl::StatusOr<std::string> canonical = ParseDigest(digest); canonical.ok()) {
        named.push_back({i, field, *canonical, bundle});
        key_accounts.push_back(a->second.account_id);
        key_digests.push_back(*canonical);
      }
    };
    for (int k = 0; k < spec.container().inputs_size(); ++k) {
      name(absl::StrCat("spec.container.inputs[", k, "].artifact"), spec.container().inputs(k).artifact(), false);
    }
    if (!spec.container().code().empty()) name("spec.container.code", spec.container().code(), true);
  }
  std::map<size_t, absl::Status> unknown;
  if (named.empty()) return unknown;
  std::map<std::pair<int64_t, std::string>, std::string> held;  // → kind
  for (const pqxx::row& r : store::Exec(tx, kFindArtifacts, store::ArrayLiteral(key_accounts), store::ArrayLiteral(key_digests))) {
    held[{r[0].as<int64_t>(), r[1].as<std::string>()}] = r[2].as<std::string>();
  }
  for (const Named& n : named) {
    if (unknown.contains(n.request)) continue;
    const std::string& account = requests[n.request]->account();
    auto h = held.find({accounts.at(account).account_id, n.digest});
    if (h == held.end()) {
      unknown[n.request] = absl::InvalidArgumentError(
          absl::StrCat(n.field, ": ", n.digest, " is not an artifact of account '", account, "' (tessera artifact put)"));
    } else if (n.bundle && h->second != "BUNDLE") {
      unknown[n.request] = absl::InvalidArgumentError(
          absl::StrCat(n.field, ": ", n.digest, " is a ", h->second, " artifact; code is a directory uploaded as a bundle"));
    }
  }
  return unknown;
}

struct SubmitDecisions {
  std::map<RequestKey, size_t> first_in_batch;
  std::vector<size_t> accepted, repeats;
  std::vector<std::pair<size_t, int64_t>> deduplicated;  // request, existing job
};

// Decides each request in order, as if they had come one by one: refused (its error into `out`),
// a retry of a stored job, a repeat within the batch, or accepted with its hold taken from the
// account's available balance.
SubmitDecisions Decide(const std::vector<const v1::SubmitJobRequest*>& requests, const std::vector<SubmitTerms>& terms,
                       std::map<std::string, AccountBalances>& accounts,
                       const std::map<RequestKey, std::pair<int64_t, std::string>>& existing,
                       const std::map<size_t, absl::Status>& unknown_artifacts, Outcomes& out) {
  SubmitDecisions d;
  for (size_t i = 0; i < requests.size(); ++i) {
    if (!terms[i].valid) continue;
    const v1::SubmitJobRequest& r = *requests[i];
    auto a = accounts.find(r.account());
    if (a == accounts.end()) {
      out[i] = absl::NotFoundError(absl::StrCat("account '", r.account(), "' not found"));
      continue;
    }
    AccountBalances& account = a->second;
    if (account.kind != "customer") {
      out[i] = absl::FailedPreconditionError(absl::StrCat("account '", r.account(), "' is a ", account.kind,
                                                          " account; jobs are submitted by customer accounts"));
      continue;
    }
    const RequestKey key{account.account_id, r.request_id()};
    const std::string* earlier_spec = nullptr;
    int64_t earlier_job = 0;
    if (auto e = existing.find(key); e != existing.end()) {
      earlier_job = e->second.first;
      earlier_spec = &e->second.second;
    } else if (auto f = d.first_in_batch.find(key); f != d.first_in_batch.end()) {
      earlier_spec = &terms[f->second].spec_bytes;
    }
    if (earlier_spec != nullptr) {
      if (*earlier_spec != terms[i].spec_bytes) {
        out[i] = absl::AlreadyExistsError(absl::StrCat("request_id '", r.request_id(), "' was already used for a different job spec",
                                                       earlier_job != 0 ? absl::StrCat(" (job ", earlier_job, ")") : ""));
      } else if (earlier_job != 0) {
        d.deduplicated.emplace_back(i, earlier_job);
      } else {
        d.repeats.push_back(i);  // the same request twice in this batch: the second is a retry
      }
      continue;
    }
    if (auto u = unknown_artifacts.find(i); u != unknown_artifacts.end()) {
      out[i] = u->second;
      continue;
    }
    d.first_in_batch[key] = i;
    if (account.available < terms[i].hold) {
      out[i] = absl::FailedPreconditionError(absl::StrCat("insufficient balance: the hold needs ", terms[i].hold, " µT, account '",
                                                          r.account(), "' has ", account.available, " µT available"));
      continue;
    }
    account.available -= terms[i].hold;
    d.accepted.push_back(i);
  }
  return d;
}

// The job as written, without reading it back.
v1::Job WrittenJob(const v1::SubmitJobRequest& r, const SubmitTerms& terms, int64_t job_id, int64_t created_ms,
                   int64_t queue_deadline_ms) {
  v1::Job job;
  job.set_job_id(job_id);
  job.set_account(r.account());
  job.set_request_id(r.request_id());
  *job.mutable_spec() = r.spec();
  RedactSecrets(job.mutable_spec());
  job.set_state(v1::JOB_STATE_QUEUED);
  job.set_hold_utok(terms.hold);
  job.set_bid_utok_per_gpu_hour(r.spec().bid_utok_per_gpu_hour());
  job.set_priority_class(ParsePriorityClass(PriorityClassName(r.spec().priority_class())));
  job.set_max_attempts(terms.max_attempts);
  job.set_max_duration_ms(r.spec().max_duration_ms());
  job.set_hold_state(v1::ESCROW_HOLD_STATE_PENDING);
  job.set_created_at_ms(created_ms);
  job.set_updated_at_ms(created_ms);
  job.set_queue_deadline_ms(queue_deadline_ms);
  return job;
}

// Inserts the accepted jobs (with their QUEUED events and NOTIFYs, one statement), posts their
// holds, and fills their outcomes with the jobs as written.
void InsertAccepted(pqxx::work& tx, const std::vector<const v1::SubmitJobRequest*>& requests, const std::vector<SubmitTerms>& terms,
                    const std::map<std::string, AccountBalances>& accounts, const std::vector<size_t>& accepted, int64_t fee_bps,
                    int64_t default_queue_timeout_ms, Outcomes& out) {
  lifecycle::NewJobs rows;
  for (size_t i : accepted) {
    const v1::JobSpec& spec = requests[i]->spec();
    rows.account_ids.push_back(accounts.at(requests[i]->account()).account_id);
    rows.request_ids.push_back(requests[i]->request_id());
    rows.specs_hex.push_back(store::Hex(terms[i].spec_bytes));
    rows.kinds.emplace_back(WorkloadKind(spec));
    rows.gpu_counts.push_back(spec.gpu_count());
    rows.gpu_models.push_back(store::ArrayLiteral(std::vector<std::string>(spec.gpu_models().begin(), spec.gpu_models().end())));
    rows.bids.push_back(spec.bid_utok_per_gpu_hour());
    rows.max_duration_ms.push_back(spec.max_duration_ms());
    rows.priority_classes.emplace_back(PriorityClassName(spec.priority_class()));
    rows.max_attempts.push_back(terms[i].max_attempts);
    rows.holds.push_back(terms[i].hold);
    rows.queue_timeout_ms.push_back(spec.queue_timeout_ms() > 0 ? spec.queue_timeout_ms() : default_queue_timeout_ms);
  }
  std::map<RequestKey, lifecycle::QueuedJob> inserted;
  for (lifecycle::QueuedJob& job : lifecycle::InsertQueued(tx, rows, fee_bps)) {
    RequestKey key{job.account_id, job.request_id};
    inserted.emplace(std::move(key), std::move(job));
  }
  std::vector<billing::TransferSpec> transfers;
  for (size_t i : accepted) {
    const v1::SubmitJobRequest& r = *requests[i];
    const AccountBalances& account = accounts.at(r.account());
    const lifecycle::QueuedJob& queued = inserted.at({account.account_id, r.request_id()});
    const int64_t job_id = queued.job_id;
    if (terms[i].hold > 0) {
      transfers.push_back({.idempotency_key = absl::StrCat("hold:", job_id), .kind = "HOLD", .debit_ledger_id = account.available_id,
                           .credit_ledger_id = account.escrow_id, .amount_utok = terms[i].hold, .job_id = job_id});
    }
    out[i] = SubmitOutcome{.job = WrittenJob(r, terms[i], job_id, queued.created_ms, queued.queue_deadline_ms), .deduplicated = false};
  }
  if (!transfers.empty()) billing::PostTransfers(tx, transfers, billing::BucketLocks::kAlreadyHeld);
}

}  // namespace

std::vector<absl::StatusOr<SubmitOutcome>> JobRepository::SubmitBatch(const std::vector<const v1::SubmitJobRequest*>& requests) {
  Outcomes outcomes(requests.size(), absl::InternalError("submit outcome not decided"));
  std::vector<std::string> names;
  const std::vector<SubmitTerms> terms = TermsOf(requests, outcomes, names);
  absl::StatusOr<Outcomes> written = db_.Transact("submit jobs", [&](pqxx::work& tx) -> absl::StatusOr<Outcomes> {
    Outcomes out = outcomes;
    std::map<std::string, AccountBalances> accounts = LockAccounts(tx, names);
    const SubmitDecisions d =
        Decide(requests, terms, accounts, FindEarlierRequests(tx, requests, accounts), UnknownArtifacts(tx, requests, accounts), out);
    if (!d.accepted.empty()) InsertAccepted(tx, requests, terms, accounts, d.accepted, fee_bps_, default_queue_timeout_ms_, out);
    for (const auto& [i, job_id] : d.deduplicated) {
      absl::StatusOr<v1::Job> job = LoadJob(tx, job_id);
      out[i] = job.ok() ? absl::StatusOr<SubmitOutcome>(SubmitOutcome{.job = *std::move(job), .deduplicated = true}) : job.status();
    }
    for (size_t i : d.repeats) {
      out[i] = out[d.first_in_batch.at({accounts.at(requests[i]->account()).account_id, requests[i]->request_id()})];
      if (out[i].ok()) out[i]->deduplicated = true;
    }
    return out;
  });
  if (written.ok()) return *std::move(written);
  if (requests.size() == 1) return {written.status()};
  // The whole batch failed (say another replica raced one request_id): each request on its own,
  // so that one cannot fail the others.
  Outcomes alone;
  for (const v1::SubmitJobRequest* r : requests) alone.push_back(SubmitBatch({r}).at(0));
  return alone;
}

}  // namespace tessera::intake
