// A marketplace on a fresh test database, driven through the real repositories (no gRPC): accounts,
// a funded customer, a registered worker, and helpers to submit, match, report and settle.
#pragma once

#include <catch2/catch.hpp>

#include "scheduler/market.h"
#include "services/billing/billing_repository.h"
#include "services/billing/payout_repository.h"
#include "services/billing/report_repository.h"
#include "services/billing/settlement.h"
#include "services/intake/job_repository.h"
#include "services/scheduler/scheduler_repository.h"
#include "tests/support/ledger_invariants.h"
#include "tests/support/test_database.h"

namespace tessera::testing {

class Marketplace {
 public:
  static constexpr int64_t kFeeBps = 1'000;

  Marketplace()
      : jobs(db.store(), kFeeBps), billing(db.store()), payouts(db.store()), reports(db.store()), scheduler(db.store()),
        settlement(db.store()) {}

  void CreateAccount(const std::string& name, v1::AccountKind kind) {
    v1::CreateAccountRequest r;
    r.set_name(name);
    r.set_kind(kind);
    REQUIRE(billing.CreateAccount(r).ok());
  }

  void Deposit(const std::string& account, int64_t amount, const std::string& key) {
    v1::DepositRequest r;
    r.set_account(account);
    r.set_amount_utok(amount);
    r.set_idempotency_key(key);
    auto t = billing.Deposit(r);
    REQUIRE(t.ok());
  }

  int64_t RegisterWorker(const std::string& provider, const std::string& name, int64_t ask, int gpus) {
    v1::RegisterWorkerRequest r;
    r.set_provider_account(provider);
    r.set_name(name);
    r.set_region("test");
    r.set_ask_utok_per_gpu_hour(ask);
    for (int i = 0; i < gpus; ++i) {
      v1::Gpu* g = r.add_gpus();
      g->set_index(i);
      g->set_model("H100");
      g->set_memory_mib(80'000);
      g->set_compute_capability("9.0");
      g->set_uuid("GPU-" + name + "-" + std::to_string(i));
    }
    auto response = scheduler.RegisterWorker(r);
    REQUIRE(response.ok());
    REQUIRE(scheduler.ApplyHello(Hello(response->worker_id()), false).ok());
    return response->worker_id();
  }

  // An agent's hello of `worker_id` (no runs), as the scheduler host hands it to the repository.
  static v1::Hello Hello(int64_t worker_id, const scheduler_host::WorkerProfile& profile = {},
                         const v1::ProviderPolicy* policy = nullptr) {
    v1::Hello hello;
    hello.set_worker_id(worker_id);
    hello.set_name(profile.name);
    hello.set_region(profile.region);
    hello.set_ask_utok_per_gpu_hour(profile.ask_utok_per_gpu_hour);
    for (const std::string& kind : profile.job_kinds) hello.add_job_kinds(kind);
    if (policy != nullptr) *hello.mutable_policy() = *policy;
    return hello;
  }

  static v1::SubmitJobRequest SleepJob(const std::string& account, const std::string& request_id, int64_t bid,
                                       int64_t max_duration_ms = 3'600'000) {
    v1::SubmitJobRequest r;
    r.set_account(account);
    r.set_request_id(request_id);
    v1::JobSpec* s = r.mutable_spec();
    s->set_kind("sleep");
    s->set_gpu_count(1);
    s->set_bid_utok_per_gpu_hour(bid);
    s->set_max_duration_ms(max_duration_ms);
    s->mutable_sleep()->set_duration_ms(1'000);
    return r;
  }

  // The market's decisions for every queued job over the given workers (all their GPUs free).
  scheduler::Decisions Decide(const std::vector<scheduler::WorkerSpec>& workers) {
    scheduler::Market market;
    for (const scheduler::WorkerSpec& w : workers) market.UpsertWorker(w);
    auto ids = scheduler.QueuedJobIds();
    REQUIRE(ids.ok());
    auto queued = scheduler.LoadQueuedJobs(*ids);
    REQUIRE(queued.ok());
    scheduler::Decisions decisions;
    for (const scheduler::JobRequirements& job : *queued) {
      for (auto& p : market.AddJob(job, 0).placements) decisions.placements.push_back(std::move(p));
    }
    return decisions;
  }

  // Runs one matching round and persists it.
  std::vector<scheduler_host::LiveAssignment> MatchOnce(const std::vector<scheduler::WorkerSpec>& workers) {
    auto persisted = scheduler.PersistDecisions(Decide(workers).placements, {});
    REQUIRE(persisted.ok());
    return persisted->assigned;
  }

  static scheduler::WorkerSpec Offer(int64_t worker_id, int64_t ask, int gpus) {
    scheduler::WorkerSpec w{.worker_id = worker_id, .region = "test", .reputation = 500, .ask_utok_per_gpu_hour = ask,
                            .gpus = {}, .policy = {}, .job_kinds = {}};
    for (int i = 0; i < gpus; ++i) w.gpus.push_back({.model = "H100", .memory_mib = 80'000, .compute_capability = 90});
    return w;
  }

  std::vector<scheduler_host::UsageOutcome> Report(int64_t worker_id, int64_t job_id, uint32_t attempt, uint64_t seq,
                                                   int64_t gpu_ms) {
    scheduler_host::UsageIn in{.worker_id = worker_id, .report = {}};
    in.report.set_job_id(job_id);
    in.report.set_attempt(attempt);
    in.report.set_seq(seq);
    in.report.set_gpu_ms(gpu_ms);
    // These tests are about money, not time: their leases are made old enough for any usage they
    // report (ingest refuses more GPU-ms than a lease's wall time allows).
    db.Scalar("UPDATE assignments SET created_at = now() - interval '30 days' WHERE job_id = " + std::to_string(job_id) +
              " AND attempt = " + std::to_string(attempt));
    auto out = scheduler.IngestUsage({in});
    REQUIRE(out.ok());
    return *out;
  }

  void Finish(int64_t worker_id, int64_t job_id, uint32_t attempt, bool succeeded) {
    scheduler_host::StateEvents events;
    v1::JobFinished f;
    f.set_job_id(job_id);
    f.set_attempt(attempt);
    f.set_succeeded(succeeded);
    events.finished.emplace_back(worker_id, f);
    REQUIRE(scheduler.ApplyStateEvents(events).ok());
  }

  void SettleAll() {
    for (int i = 0; i < 10; ++i) {
      auto stats = settlement.SettleOnce(1'000);
      REQUIRE(stats.ok());
      if (stats->reports_settled == 0 && stats->jobs_released == 0) return;
    }
  }

  // Every money invariant of tests/support/ledger_invariants.h, each a named CHECK.
  void CheckInvariants() {
    for (const auto& [name, violations] : LedgerInvariants()) {
      INFO(name);
      CHECK(db.Scalar(violations) == "0");
    }
  }

  int64_t LedgerSum() { return std::stoll(db.Scalar("SELECT coalesce(sum(balance_utok), 0) FROM ledger_accounts")); }
  int64_t Count(const std::string& table) { return std::stoll(db.Scalar("SELECT count(*) FROM " + table)); }

  TestDatabase db;
  intake::JobRepository jobs;
  billing::BillingRepository billing;
  billing::PayoutRepository payouts;
  billing::ReportRepository reports;
  scheduler_host::SchedulerRepository scheduler;
  billing::Settlement settlement;
};

// A marketplace open for business: the customer `acme` with 100 tokens, the provider `gpuco` and
// its worker `w1` (2 GPUs asking 1 token per GPU-hour).
struct FundedMarketplace : Marketplace {
  FundedMarketplace() {
    CreateAccount("acme", v1::ACCOUNT_KIND_CUSTOMER);
    CreateAccount("gpuco", v1::ACCOUNT_KIND_PROVIDER);
    Deposit("acme", 100'000'000, "d1");
    worker = RegisterWorker("gpuco", "w1", 1'000'000, 2);
  }
  v1::Balance Balance(const std::string& account) {
    auto b = billing.GetBalance(account);
    REQUIRE(b.ok());
    return *b;
  }
  int64_t worker = 0;
};

}  // namespace tessera::testing
