// Usage ingest + settlement throughput on a durable local PostgreSQL (issue 4): J jobs run at once
// on simulated workers; one ingest thread stores their usage reports in batches, exactly as the
// scheduler host's ingest does (SchedulerRepository::IngestUsage), while the settlement loop's pass
// (Settlement::SettleOnce) turns them into ledger transfers and Merkle-committed batches. The
// figure is reports stored and settled per second, end to end.
//
// In the same run, the machine's ceiling: a plain COPY of the same rows into an unindexed table on
// the same PostgreSQL, committed durably. Our rate is reported as a share of it.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <pqxx/pqxx>
#include <thread>

#include "scheduler/market.h"
#include "services/billing/billing_repository.h"
#include "services/billing/settlement.h"
#include "services/intake/job_repository.h"
#include "services/scheduler/scheduler_repository.h"
#include "services/server/tessera_server.h"
#include "bench/bench_database.h"

using namespace tessera;
using bench::Check;
using SteadyClock = std::chrono::steady_clock;

namespace {

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

int main(int argc, char** argv) {
  int jobs = 1'000, reports_per_job = 500, batch = 2'000, settle_batch = server::ServerOptions{}.settle_batch_reports;
  CLI::App app{"Tessera usage ingest + settlement benchmark"};
  app.add_option("--jobs", jobs, "Jobs running at once");
  app.add_option("--reports-per-job", reports_per_job);
  app.add_option("--ingest-batch", batch, "Reports per ingest transaction (the host drains up to 2,000)");
  app.add_option("--settle-batch", settle_batch, "Reports per settlement transaction");
  bool sequential = false;
  app.add_flag("--sequential", sequential, "Settle only after everything is ingested (separates the two costs)");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  bench::BenchDatabase bench_db;
  auto* db = &bench_db.db;
  auto* pg = &bench_db.pg;

  // Setup: a funded customer, 16 workers of 64 GPUs, `jobs` single-GPU jobs all running.
  billing::BillingRepository billing(**db);
  intake::JobRepository intake(**db, 1'000);
  scheduler_host::SchedulerRepository scheduler(**db);
  billing::Settlement settlement(**db);
  for (auto [name, kind] : {std::pair{"acme", v1::ACCOUNT_KIND_CUSTOMER}, {"gpuco", v1::ACCOUNT_KIND_PROVIDER}}) {
    v1::CreateAccountRequest r;
    r.set_name(name);
    r.set_kind(kind);
    Check(billing.CreateAccount(r).status(), "account");
  }
  v1::DepositRequest deposit;
  deposit.set_account("acme");
  deposit.set_amount_utok(1'000'000'000'000'000);
  deposit.set_idempotency_key("fund");
  Check(billing.Deposit(deposit).status(), "deposit");
  scheduler.set_epoch(0);
  scheduler::Market market;
  const int workers = (jobs + 63) / 64;
  std::vector<int64_t> worker_ids;
  for (int w = 0; w < workers; ++w) {
    v1::RegisterWorkerRequest r;
    r.set_provider_account("gpuco");
    r.set_name("w" + std::to_string(w));
    r.set_region("bench");
    r.set_ask_utok_per_gpu_hour(1'000'000);
    scheduler::WorkerSpec spec{.worker_id = 0, .region = "bench", .reputation = 500, .ask_utok_per_gpu_hour = 1'000'000,
                               .gpus = {}, .policy = {}, .job_kinds = {}};
    for (int g = 0; g < 64; ++g) {
      v1::Gpu* gpu = r.add_gpus();
      gpu->set_index(g);
      gpu->set_model("H100");
      gpu->set_memory_mib(81'559);
      gpu->set_compute_capability("9.0");
      gpu->set_uuid("GPU-" + std::to_string(w) + "-" + std::to_string(g));
      spec.gpus.push_back({.model = "H100", .memory_mib = 81'559, .compute_capability = 90});
    }
    auto registered = scheduler.RegisterWorker(r);
    Check(registered.status(), "register worker");
    spec.worker_id = registered->worker_id();
    worker_ids.push_back(spec.worker_id);
    market.UpsertWorker(spec);
  }
  std::vector<v1::SubmitJobRequest> requests(static_cast<size_t>(jobs));
  std::vector<const v1::SubmitJobRequest*> pointers;
  for (int j = 0; j < jobs; ++j) {
    v1::SubmitJobRequest& r = requests[static_cast<size_t>(j)];
    r.set_account("acme");
    r.set_request_id("job-" + std::to_string(j));
    r.mutable_spec()->set_kind("sleep");
    r.mutable_spec()->set_gpu_count(1);
    r.mutable_spec()->set_bid_utok_per_gpu_hour(2'000'000);
    r.mutable_spec()->set_max_duration_ms(30LL * 24 * 3'600'000);
    r.mutable_spec()->mutable_sleep()->set_duration_ms(0);
    pointers.push_back(&r);
  }
  std::vector<scheduler::JobPlacement> placements;
  std::vector<std::pair<int64_t, int64_t>> running;  // job, worker
  for (auto& outcome : intake.SubmitBatch(pointers)) {
    Check(outcome.status(), "submit");
    scheduler::JobRequirements req{.job_id = outcome->job.job_id(), .account = "acme", .kind = "sleep", .gpu_count = 1, .gpu_models = {},
                                   .min_memory_mib = 0, .min_compute_capability = 0, .regions = {}, .min_reputation = 0,
                                   .same_host = true, .bid_utok_per_gpu_hour = 2'000'000, .max_duration_ms = 1,
                                   .priority = scheduler::Priority::kOnDemand, .submitted_at_ms = 0};
    for (auto& p : market.AddJob(req, 0).placements) placements.push_back(std::move(p));
  }
  auto persisted = scheduler.PersistDecisions(placements, {});
  Check(persisted.status(), "placements");
  for (const auto& a : persisted->assigned) running.emplace_back(a.job_id, a.worker_id);
  {
    // Each job reports a second of GPU time per report: its lease must be old enough for that
    // (ingest refuses more GPU-ms than a lease's wall time × GPUs).
    pqxx::connection conn((*pg)->url());
    pqxx::nontransaction(conn).exec0("UPDATE assignments SET created_at = now() - interval '30 days'");
  }
  if (static_cast<int>(running.size()) != jobs) {
    std::fprintf(stderr, "only %zu of %d jobs running\n", running.size(), jobs);
    return 1;
  }

  // The run: reports arrive round-robin over the running jobs (seq 1, 2, … per job), as 1,000
  // jobs each reporting every second would send them.
  const int64_t total = static_cast<int64_t>(jobs) * reports_per_job;
  std::atomic<bool> ingest_done{false};
  std::atomic<int64_t> settled{0};
  const auto start = SteadyClock::now();
  std::thread settler([&] {
    while (sequential && !ingest_done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    while (true) {
      auto stats = settlement.SettleOnce(settle_batch);
      Check(stats.status(), "settle");
      settled += stats->reports_settled;
      if (stats->reports_settled == 0) {
        if (ingest_done && settled >= total) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  });
  std::vector<scheduler_host::UsageIn> chunk;
  auto ingest = [&] {
    absl::StatusOr<std::vector<scheduler_host::UsageOutcome>> outcomes = scheduler.IngestUsage(chunk);
    Check(outcomes.status(), "ingest");
    for (const auto& o : *outcomes) {
      if (!o.stored) Check(absl::InternalError("report refused: " + o.reason), "ingest");
    }
    chunk.clear();
  };
  for (int seq = 1; seq <= reports_per_job; ++seq) {
    for (const auto& [job, worker] : running) {
      scheduler_host::UsageIn u{.worker_id = worker, .report = {}};
      u.report.set_job_id(job);
      u.report.set_attempt(1);
      u.report.set_seq(static_cast<uint64_t>(seq));
      u.report.set_gpu_ms(1'000);
      u.report.set_measured_at_ms(seq * 1'000LL);
      chunk.push_back(std::move(u));
      if (static_cast<int>(chunk.size()) == batch) ingest();
    }
  }
  if (!chunk.empty()) ingest();
  const auto ingested_at = SteadyClock::now();
  ingest_done = true;
  settler.join();
  const auto settled_at = SteadyClock::now();

  // Invariants: every report charged once, and the ledger balanced.
  pqxx::connection conn((*pg)->url());
  int64_t unsettled = 0, sum = 0, batches = 0;
  {
    pqxx::nontransaction check(conn);
    unsettled = check.exec("SELECT count(*) FROM usage_reports WHERE NOT settled")[0][0].as<int64_t>();
    sum = check.exec("SELECT sum(balance_utok) FROM ledger_accounts")[0][0].as<int64_t>();
    batches = check.exec("SELECT count(*) FROM settlement_batches")[0][0].as<int64_t>();
    check.exec0("CREATE TABLE copy_ceiling (job_id bigint, attempt int, worker_id bigint, seq bigint, gpu_ms bigint, measured_at_ms bigint)");
  }

  // The ceiling: COPY the same rows into an unindexed table, one durable transaction.
  const auto copy_start = SteadyClock::now();
  {
    pqxx::work tx(conn);
    pqxx::stream_to stream(tx, "copy_ceiling", std::vector<std::string>{"job_id", "attempt", "worker_id", "seq", "gpu_ms", "measured_at_ms"});
    for (int seq = 1; seq <= reports_per_job; ++seq) {
      for (const auto& [job, worker] : running) stream << std::make_tuple(job, 1, worker, seq, 1'000, seq * 1'000LL);
    }
    stream.complete();
    tx.commit();
  }
  const double copy_s = Seconds(SteadyClock::now() - copy_start);

  const double total_s = Seconds(settled_at - start);
  const double rate = static_cast<double>(total) / total_s, ceiling = static_cast<double>(total) / copy_s;
  std::printf("%d jobs running, %lld usage reports (ingest batches of %d, settlement batches of %d), durable PostgreSQL\n", jobs,
              static_cast<long long>(total), batch, settle_batch);
  std::printf("  ingest alone               %8.0f reports/s (%.2f s)\n", static_cast<double>(total) / Seconds(ingested_at - start),
              Seconds(ingested_at - start));
  std::printf("  ingested + settled         %8.0f reports/s (%.2f s; %lld settlement batches, %lld left unsettled)\n", rate,
              total_s, static_cast<long long>(batches), static_cast<long long>(unsettled));
  std::printf("  COPY ceiling (same rows)   %8.0f rows/s (%.2f s); ours is %.1f%% of it\n", ceiling, copy_s, 100 * rate / ceiling);
  std::printf("  ledger sum %lld (must be 0)\n", static_cast<long long>(sum));
  return unsettled == 0 && sum == 0 ? 0 : 1;
}
