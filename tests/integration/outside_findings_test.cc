// What outsiders found broken (issue 16), each reproduced against the real repositories and a
// throwaway PostgreSQL: a proof request that told another customer a job existed, deposits that
// broke the ledger at the int64 edge, a submitted job returned with fields missing, a worker that
// could not be retired and registered again without punishing its owner, and a hello that ignored
// a changed name or ask.
#include <catch2/catch.hpp>
#include <google/protobuf/util/message_differencer.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <set>
#include <thread>

#include "services/common/money.h"
#include "services/intake/job_spec_validator.h"
#include "tests/integration/marketplace_fixture.h"

using namespace tessera;
using testing::Marketplace;

using Funded = testing::FundedMarketplace;

TEST_CASE("a usage proof of a requeued job is NOT_FOUND to everyone but its customer and provider", "[integration][billing][auth]") {
  Funded m;
  m.CreateAccount("globex", v1::ACCOUNT_KIND_CUSTOMER);
  m.CreateAccount("otherco", v1::ACCOUNT_KIND_PROVIDER);
  const int64_t second = m.RegisterWorker("gpuco", "w2", 1'000'000, 1);
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 2'000'000));
  REQUIRE(submitted.ok());
  const int64_t job = submitted->job.job_id();
  REQUIRE(m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)}).size() == 1);
  REQUIRE(m.Report(m.worker, job, 1, 1, 500)[0].stored);
  REQUIRE(m.scheduler.Requeue({}, {m.worker}, "lease expired").ok());
  REQUIRE(m.MatchOnce({Marketplace::Offer(second, 1'000'000, 1)}).size() == 1);
  REQUIRE(m.Report(second, job, 2, 1, 700)[0].stored);
  m.SettleAll();

  v1::GetUsageProofRequest request;
  request.set_job_id(job);
  request.set_seq(1);  // both attempts have a seq 1: ambiguous to those who may see them
  const auto proof_for = [&](billing::UsageViewer viewer) { return m.billing.GetUsageProof(request, viewer).status(); };
  CHECK(proof_for({.customer = "acme", .provider = ""}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(proof_for({.customer = "", .provider = "gpuco"}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(proof_for({}).code() == absl::StatusCode::kInvalidArgument);  // an admin
  // Another customer, or another provider, cannot tell this job from one that never existed.
  const absl::Status other_customer = proof_for({.customer = "globex", .provider = ""});
  const absl::Status other_provider = proof_for({.customer = "", .provider = "otherco"});
  request.set_job_id(job + 1'000);
  const absl::Status never = proof_for({.customer = "globex", .provider = ""});
  CHECK(other_customer.code() == absl::StatusCode::kNotFound);
  CHECK(other_provider.code() == absl::StatusCode::kNotFound);
  CHECK(never.code() == absl::StatusCode::kNotFound);
  request.set_job_id(job);
  request.set_attempt(2);
  CHECK(m.billing.GetUsageProof(request, {.customer = "acme", .provider = ""}).ok());
  CHECK(proof_for({.customer = "globex", .provider = ""}).code() == absl::StatusCode::kNotFound);
}

TEST_CASE("deposits are bounded by the network's supply limit, refused before anything is written", "[integration][billing]") {
  Funded m;
  const auto deposit = [&](int64_t amount, const std::string& key) {
    v1::DepositRequest r;
    r.set_account("acme");
    r.set_amount_utok(amount);
    r.set_idempotency_key(key);
    return m.billing.Deposit(r);
  };
  const int64_t transfers = m.Count("transfers");
  // The report's reproduction: a whale deposit near INT64_MAX, then anyone's deposit.
  const auto whale = deposit(9'223'372'036'000'000'000, "whale");
  CHECK(whale.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(whale.status().message()), Catch::Contains("supply limit"));
  CHECK(m.Count("transfers") == transfers);
  CHECK(deposit(1'000'000, "after").ok());

  // Up to the limit exactly, and not one µT more; a retry of an accepted deposit still answers.
  const int64_t outstanding = 100'000'000 + 1'000'000;
  REQUIRE(deposit(kMaxTokenSupplyUtok - outstanding, "to-the-edge").ok());
  CHECK(deposit(1, "one-more").status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(deposit(kMaxTokenSupplyUtok - outstanding, "to-the-edge").ok());
  CHECK(m.Balance("acme").available_utok() == kMaxTokenSupplyUtok);
  CHECK(m.LedgerSum() == 0);
  m.CheckInvariants();
  // Jobs still settle at the edge: no bigint overflow anywhere in the ledger's arithmetic.
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "edge", 2'000'000));
  REQUIRE(submitted.ok());
  REQUIRE(m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)}).size() == 1);
  REQUIRE(m.Report(m.worker, submitted->job.job_id(), 1, 1, 3'600'000)[0].stored);
  m.Finish(m.worker, submitted->job.job_id(), 1, true);
  m.SettleAll();
  CHECK(m.LedgerSum() == 0);
}

TEST_CASE("SubmitJob returns the job exactly as GetJob reads it", "[integration][intake]") {
  Funded m;
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 2'000'000, 90'000));
  REQUIRE(submitted.ok());
  auto read = m.jobs.Get(submitted->job.job_id());
  REQUIRE(read.ok());
  CHECK(submitted->job.max_duration_ms() == 90'000);
  CHECK(submitted->job.hold_state() == v1::ESCROW_HOLD_STATE_PENDING);
  std::string difference;
  google::protobuf::util::MessageDifferencer differ;
  differ.ReportDifferencesToString(&difference);
  CHECK(differ.Compare(submitted->job, *read));
  INFO(difference);
  CHECK(difference.empty());
}

TEST_CASE("a retired worker frees its machine to register again: no quarantine, no signal, its reputation kept",
          "[integration][scheduler][trust]") {
  Funded m;
  const std::string old_id = std::to_string(m.worker);
  m.db.Scalar("UPDATE workers SET reputation = 727 WHERE worker_id = " + old_id + " RETURNING 1");
  const auto register_again = [&](const std::string& name) {
    v1::RegisterWorkerRequest r;
    r.set_provider_account("gpuco");
    r.set_name(name);
    r.set_region("test");
    r.set_ask_utok_per_gpu_hour(1'000'000);
    for (int i = 0; i < 2; ++i) {
      v1::Gpu* g = r.add_gpus();
      g->set_index(i);
      g->set_model("H100");
      g->set_memory_mib(80'000);
      g->set_compute_capability("9.0");
      g->set_uuid("GPU-w1-" + std::to_string(i));  // the same GPUs as worker w1
    }
    return m.scheduler.RegisterWorker(r);
  };

  SECTION("without retiring, the same GPUs are a clone (as before)") {
    auto again = register_again("w1-reinstalled");
    REQUIRE(again.ok());
    CHECK(again->state() == v1::WORKER_STATE_QUARANTINED);
  }
  SECTION("retired first: a clean registration") {
    // A worker holding a lease is not retired under its job.
    auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 2'000'000));
    REQUIRE(submitted.ok());
    REQUIRE(m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)}).size() == 1);
    CHECK(m.scheduler.RetireWorker(m.worker, 0, "reinstalled", "").status().code() == absl::StatusCode::kFailedPrecondition);
    REQUIRE(m.scheduler.Requeue({}, {m.worker}, "lease expired").ok());
    m.db.Scalar("UPDATE workers SET reputation = 727 WHERE worker_id = " + old_id + " RETURNING 1");

    // Only its own provider (or an admin) retires it; to another provider it does not exist.
    m.CreateAccount("otherco", v1::ACCOUNT_KIND_PROVIDER);
    const int64_t otherco = std::stoll(m.db.Scalar("SELECT account_id FROM accounts WHERE name = 'otherco'"));
    const int64_t gpuco = std::stoll(m.db.Scalar("SELECT account_id FROM accounts WHERE name = 'gpuco'"));
    CHECK(m.scheduler.RetireWorker(m.worker, otherco, "mine now", "").status().code() == absl::StatusCode::kNotFound);
    auto retired = m.scheduler.RetireWorker(m.worker, gpuco, "reinstalled", "");
    REQUIRE(retired.ok());
    CHECK(retired->state() == v1::WORKER_STATE_RETIRED);
    CHECK(m.scheduler.RetireWorker(m.worker, gpuco, "again", "").ok());  // idempotent
    CHECK(m.db.Scalar("SELECT count(*) FROM audit_log WHERE action = 'worker.retire' AND subject = 'worker/" + old_id +
                      "' AND detail = 'reinstalled'") == "1");

    auto again = register_again("w1-reinstalled");
    REQUIRE(again.ok());
    CHECK(again->state() == v1::WORKER_STATE_PENDING_VERIFICATION);
    CHECK(m.Count("fraud_signals") == 0);
    CHECK(m.db.Scalar("SELECT reputation FROM workers WHERE worker_id = " + old_id) == "727");
    // The retired identity never connects again.
    auto hello = m.scheduler.ApplyHello(Marketplace::Hello(m.worker), false);
    CHECK(hello.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(hello.status().message()), Catch::Contains("retired"));
  }
}

TEST_CASE("a hello with another name, region or ask applies it, audited; an unchanged one writes nothing",
          "[integration][scheduler]") {
  Funded m;
  const std::string id = std::to_string(m.worker);
  const int64_t audits = m.Count("audit_log");
  REQUIRE(m.scheduler.ApplyHello(Marketplace::Hello(m.worker, {"w1", "test", 1'000'000, {}}), false).ok());
  CHECK(m.Count("audit_log") == audits);
  auto changed = m.scheduler.ApplyHello(Marketplace::Hello(m.worker, {"rig-b", "", 1'500'000, {}}), false);
  REQUIRE(changed.ok());
  CHECK(changed->worker.ask_utok_per_gpu_hour == 1'500'000);
  CHECK(m.db.Scalar("SELECT name || ' ' || region || ' ' || ask_utok_per_gpu_hour FROM workers WHERE worker_id = " + id) ==
        "rig-b test 1500000");
  CHECK(m.db.Scalar("SELECT detail FROM audit_log WHERE action = 'worker.reconfigure' AND subject = 'worker/" + id + "'") ==
        "in its hello: name 'w1' → 'rig-b'; ask 1000000 → 1500000 µT/GPU-h");
}

TEST_CASE("a job that never starts is cancelled at its queue timeout and its whole escrow comes back", "[integration][scheduler]") {
  Funded m;
  auto impatient = Marketplace::SleepJob("acme", "impatient", 2'000'000);
  impatient.mutable_spec()->set_queue_timeout_ms(1);
  auto submitted = m.jobs.Submit(impatient);
  REQUIRE(submitted.ok());
  const int64_t job = submitted->job.job_id();
  CHECK(submitted->job.queue_deadline_ms() >= submitted->job.created_at_ms() + 1);
  // The network's default (a day) applies where the spec sets none; a started job has no deadline.
  auto patient = m.jobs.Submit(Marketplace::SleepJob("acme", "patient", 2'000'000));
  REQUIRE(patient.ok());
  CHECK(patient->job.queue_deadline_ms() - patient->job.created_at_ms() == intake::kDefaultQueueTimeoutMs);
  auto started = Marketplace::SleepJob("acme", "started", 2'000'000);
  started.mutable_spec()->set_queue_timeout_ms(1);
  auto running = m.jobs.Submit(started);
  REQUIRE(running.ok());
  m.db.Scalar("UPDATE jobs SET attempt = 1, state = 'RUNNING' WHERE job_id = " + std::to_string(running->job.job_id()));
  m.db.Scalar("UPDATE jobs SET wait_reason = 'no worker runs job kind ''sleep''' WHERE job_id = " + std::to_string(job));
  const int64_t available_before = m.Balance("acme").available_utok();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));

  auto cancelled = m.scheduler.CancelExpiredQueued(100);
  REQUIRE(cancelled.ok());
  CHECK(*cancelled == std::vector<int64_t>{job});
  CHECK(m.scheduler.CancelExpiredQueued(100)->empty());  // once
  auto now = m.jobs.Get(job);
  REQUIRE(now.ok());
  CHECK(now->state() == v1::JOB_STATE_CANCELLED);
  CHECK(now->queue_deadline_ms() == 0);
  CHECK(m.db.Scalar("SELECT message FROM job_events WHERE job_id = " + std::to_string(job) + " ORDER BY event_id DESC LIMIT 1") ==
        "queue timeout: not started within 1 ms (no worker runs job kind 'sleep'); the escrow is released");
  CHECK(m.jobs.Get(patient->job.job_id())->state() == v1::JOB_STATE_QUEUED);
  m.SettleAll();
  CHECK(m.Balance("acme").available_utok() == available_before + submitted->job.hold_utok());
  CHECK(m.jobs.Get(job)->hold_state() == v1::ESCROW_HOLD_STATE_VOIDED);  // nothing was charged
  CHECK(m.LedgerSum() == 0);
  m.CheckInvariants();

  // Out of range: refused, naming the field.
  auto forever = Marketplace::SleepJob("acme", "forever", 2'000'000);
  forever.mutable_spec()->set_queue_timeout_ms(intake::kMaxQueueTimeoutMs + 1);
  CHECK_THAT(std::string(intake::ValidateSubmitRequest(forever).message()), Catch::StartsWith("spec.queue_timeout_ms"));
}

TEST_CASE("balances list every bucket: the platform's fees and the treasury's too", "[integration][billing]") {
  Funded m;
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 2'000'000));
  REQUIRE(submitted.ok());
  REQUIRE(m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)}).size() == 1);
  REQUIRE(m.Report(m.worker, submitted->job.job_id(), 1, 1, 3'600'000)[0].stored);
  m.SettleAll();
  const auto bucket = [](const v1::Balance& b, v1::LedgerBucket which) {
    for (const v1::BucketBalance& x : b.buckets()) {
      if (x.bucket() == which) return std::optional<int64_t>(x.balance_utok());
    }
    return std::optional<int64_t>();
  };
  const v1::Balance platform = m.Balance("platform");
  CHECK(platform.kind() == v1::ACCOUNT_KIND_PLATFORM);
  CHECK(bucket(platform, v1::LEDGER_BUCKET_FEES) == 100'000);  // 10 % of 1 token
  const v1::Balance treasury = m.Balance("treasury");
  CHECK(bucket(treasury, v1::LEDGER_BUCKET_TREASURY) == -100'000'000);
  const v1::Balance acme = m.Balance("acme");
  CHECK(acme.buckets_size() == 2);
  CHECK(bucket(acme, v1::LEDGER_BUCKET_AVAILABLE) == acme.available_utok());
  CHECK(bucket(acme, v1::LEDGER_BUCKET_ESCROW) == acme.escrow_utok());
  CHECK(bucket(m.Balance("gpuco"), v1::LEDGER_BUCKET_EARNINGS) == 900'000);
}

TEST_CASE("lists page with opaque tokens: accounts, workers, usage groups", "[integration][api]") {
  Funded m;
  for (int i = 0; i < 5; ++i) m.CreateAccount("cust" + std::to_string(i), v1::ACCOUNT_KIND_CUSTOMER);
  std::set<std::string> names;
  v1::ListAccountsRequest request;
  request.set_page_size(2);
  int pages = 0;
  do {
    auto page = m.billing.ListAccounts(request);
    REQUIRE(page.ok());
    CHECK(page->accounts_size() <= 2);
    for (const v1::Account& a : page->accounts()) CHECK(names.insert(a.name()).second);
    request.set_page_token(page->next_page_token());
    ++pages;
  } while (!request.page_token().empty() && pages < 10);
  CHECK(pages == 4);  // 7 accounts: acme, gpuco and 5 more
  CHECK(names.size() == 7);
  request.set_page_token("1");
  CHECK(m.billing.ListAccounts(request).status().code() == absl::StatusCode::kInvalidArgument);

  for (int i = 2; i <= 4; ++i) m.RegisterWorker("gpuco", "w" + std::to_string(i), 1'000'000, 1);
  std::vector<int64_t> ids;
  int64_t before = INT64_MAX;
  while (true) {
    auto workers = m.scheduler.ListWorkers({.provider_account = "gpuco", .worker_id = 0, .before_worker_id = before, .limit = 2});
    REQUIRE(workers.ok());
    for (const v1::Worker& w : *workers) ids.push_back(w.worker_id());
    if (workers->size() < 2) break;
    before = workers->back().worker_id();
  }
  CHECK(ids.size() == 4);
  CHECK(std::is_sorted(ids.rbegin(), ids.rend()));  // newest first
}

TEST_CASE("a hello's job kinds are stored and listed with the worker", "[integration][scheduler]") {
  Funded m;
  scheduler_host::WorkerProfile profile;
  profile.job_kinds = {"sleep", "train_mlp", "gemm_bench"};
  auto activated = m.scheduler.ApplyHello(Marketplace::Hello(m.worker, profile), false);
  REQUIRE(activated.ok());
  CHECK(activated->worker.job_kinds == profile.job_kinds);
  auto listed = m.scheduler.ListWorkers({.provider_account = "", .worker_id = m.worker, .before_worker_id = INT64_MAX, .limit = 1});
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK(std::vector<std::string>(listed->at(0).job_kinds().begin(), listed->at(0).job_kinds().end()) == profile.job_kinds);
  // An agent that says nothing (older than the field) runs every kind again.
  activated = m.scheduler.ApplyHello(Marketplace::Hello(m.worker), false);
  REQUIRE(activated.ok());
  CHECK(activated->worker.job_kinds.empty());
}

// CI found it: `job watch` printed a job's last progress (RUNNING 99.9%) after its SUCCEEDED,
// because the job row and its events were read in two snapshots. Here another connection flips a
// job between RUNNING and SUCCEEDED (the terminal event with it, in one statement) while the
// watch's read runs: a read that returns the terminal event must return the job terminal too.
TEST_CASE("a watch read sees a job and its events in one snapshot", "[integration][intake]") {
  Funded m;
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "raced", 2'000'000));
  REQUIRE(submitted.ok());
  const std::string job = std::to_string(submitted->job.job_id());
  m.db.Scalar("UPDATE jobs SET attempt = 1, state = 'RUNNING' WHERE job_id = " + job);
  std::atomic<bool> done{false};
  std::atomic<int> flips{0};
  std::thread flipper([&] {
    pqxx::connection conn(m.db.url());
    pqxx::nontransaction tx(conn);
    while (!done.load()) {
      tx.exec("WITH e AS (INSERT INTO job_events (job_id, state, attempt, message) VALUES (" + job +
              ", 'SUCCEEDED', 1, 'finished') RETURNING 1) UPDATE jobs SET state = 'SUCCEEDED' WHERE job_id = " + job);
      tx.exec("WITH e AS (DELETE FROM job_events WHERE job_id = " + job + " AND state = 'SUCCEEDED' RETURNING 1)"
              " UPDATE jobs SET state = 'RUNNING' WHERE job_id = " + job);
      flips.fetch_add(1);
    }
  });
  int torn = 0;
  int terminal_reads = 0;
  for (int i = 0; i < 2'000 && (i < 200 || terminal_reads < 20); ++i) {
    absl::StatusOr<intake::JobChanges> changes = m.jobs.ChangesSince(submitted->job.job_id(), 0);
    if (!changes.ok()) continue;
    const bool event_terminal = std::any_of(changes->updates.begin(), changes->updates.end(),
                                            [](const v1::JobUpdate& u) { return u.state() == v1::JOB_STATE_SUCCEEDED; });
    terminal_reads += event_terminal ? 1 : 0;
    if (event_terminal != (changes->job.state() == v1::JOB_STATE_SUCCEEDED)) ++torn;
  }
  done = true;
  flipper.join();
  INFO("flips " << flips.load() << ", reads that saw the job end " << terminal_reads);
  CHECK(flips.load() > 0);
  CHECK(terminal_reads > 0);
  CHECK(torn == 0);
}
