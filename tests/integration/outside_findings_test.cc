// What outsiders found broken (issue 16), each reproduced against the real repositories and a
// throwaway PostgreSQL: a proof request that told another customer a job existed, deposits that
// broke the ledger at the int64 edge, a submitted job returned with fields missing, a worker that
// could not be retired and registered again without punishing its owner, and a hello that ignored
// a changed name or ask.
#include <catch2/catch.hpp>
#include <google/protobuf/util/message_differencer.h>

#include "services/common/money.h"
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
    auto hello = m.scheduler.ActivateWorker(m.worker, nullptr, false);
    CHECK(hello.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(hello.status().message()), Catch::Contains("retired"));
  }
}

TEST_CASE("a hello with another name, region or ask applies it, audited; an unchanged one writes nothing",
          "[integration][scheduler]") {
  Funded m;
  const std::string id = std::to_string(m.worker);
  const int64_t audits = m.Count("audit_log");
  REQUIRE(m.scheduler.ActivateWorker(m.worker, nullptr, false, false, {"w1", "test", 1'000'000}).ok());
  CHECK(m.Count("audit_log") == audits);
  auto changed = m.scheduler.ActivateWorker(m.worker, nullptr, false, false, {"rig-b", "", 1'500'000});
  REQUIRE(changed.ok());
  CHECK(changed->first.ask_utok_per_gpu_hour == 1'500'000);
  CHECK(m.db.Scalar("SELECT name || ' ' || region || ' ' || ask_utok_per_gpu_hour FROM workers WHERE worker_id = " + id) ==
        "rig-b test 1500000");
  CHECK(m.db.Scalar("SELECT detail FROM audit_log WHERE action = 'worker.reconfigure' AND subject = 'worker/" + id + "'") ==
        "in its hello: name 'w1' → 'rig-b'; ask 1000000 → 1500000 µT/GPU-h");
}
