// Fraud signals and reputation against a real PostgreSQL: cloned GPU UUIDs, crowds behind one
// network (the sybil scenario, through the real server and its matcher), the reputation formula on
// lease outcomes and signals, the telemetry anomaly score, and an operator's quarantine and release.
#include <cmath>
#include <thread>

#include "services/scheduler/trust_repository.h"
#include "tests/integration/marketplace_fixture.h"
#include "tests/integration/running_server.h"

namespace tessera {
namespace {

using testing::Ctx;
using testing::RunningServer;
using testing::WorkerConnection;

std::string SignalsOf(testing::TestDatabase& db, int64_t worker) {
  return db.Scalar("SELECT coalesce(string_agg(kind, ',' ORDER BY signal_id), '') FROM fraud_signals WHERE worker_id = " +
                   std::to_string(worker));
}

int64_t Register(const std::shared_ptr<grpc::Channel>& channel, int64_t ask, const std::string& uuid, v1::RegisterWorkerResponse* out) {
  v1::RegisterWorkerRequest r;
  r.set_provider_account("gpuco");
  r.set_name(uuid);
  r.set_region("test");
  r.set_ask_utok_per_gpu_hour(ask);
  r.set_public_key(testing::TestWorkerKey().public_key);
  v1::Gpu* gpu = r.add_gpus();
  gpu->set_model("H100");
  gpu->set_memory_mib(80'000);
  gpu->set_compute_capability("9.0");
  gpu->set_uuid(uuid);
  REQUIRE(v1::WorkerService::NewStub(channel)->RegisterWorker(Ctx().get(), r, out).ok());
  return out->worker_id();
}

TEST_CASE("a GPU UUID claimed by a second worker quarantines it and signals both", "[integration][fraud]") {
  RunningServer s;
  testing::CreateFundedMarket(s.channel);
  v1::RegisterWorkerResponse first, clone;
  const int64_t a = Register(s.channel, 1'000'000, "GPU-cloned", &first);
  const int64_t b = Register(s.channel, 1'000'000, "GPU-cloned", &clone);
  CHECK(first.state() == v1::WORKER_STATE_PENDING_VERIFICATION);
  CHECK(clone.state() == v1::WORKER_STATE_QUARANTINED);
  CHECK(SignalsOf(s.db, a) == "DUPLICATE_GPU_UUID");
  CHECK(SignalsOf(s.db, b) == "DUPLICATE_GPU_UUID");
  CHECK(s.db.Scalar("SELECT quarantine_reason FROM workers WHERE worker_id = " + std::to_string(b)) ==
        "GPU GPU-cloned is also registered to worker " + std::to_string(a));

  // The clone cannot join the market…
  const grpc::Status refused = testing::RefusedHello(s.channel, b);
  CHECK(refused.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(refused.error_message(), Catch::Contains("quarantined"));
  // …until an operator, having looked at the evidence, releases it.
  auto admin = v1::AdminService::NewStub(s.channel);
  v1::GetWorkerTrustRequest get;
  get.set_worker_id(b);
  v1::WorkerTrust trust;
  REQUIRE(admin->GetWorkerTrust(Ctx().get(), get, &trust).ok());
  CHECK(trust.state() == v1::WORKER_STATE_QUARANTINED);
  REQUIRE(trust.signals_size() == 1);
  CHECK(trust.signals(0).evidence() == trust.quarantine_reason());
  v1::ReleaseWorkerRequest release;
  release.set_worker_id(b);
  CHECK(admin->ReleaseWorker(Ctx().get(), release, &trust).error_code() == grpc::StatusCode::INVALID_ARGUMENT);  // no reason
  release.set_reason("same card moved to a new chassis; old worker retired");
  REQUIRE(admin->ReleaseWorker(Ctx().get(), release, &trust).ok());
  CHECK(trust.state() == v1::WORKER_STATE_OFFLINE);
  CHECK(admin->ReleaseWorker(Ctx().get(), release, &trust).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  WorkerConnection welcomed(s.channel, b);
  CHECK(s.db.Scalar("SELECT string_agg(action, ',' ORDER BY audit_id) FROM audit_log WHERE subject = 'worker/" + std::to_string(b) +
                    "'") == "worker.quarantine,worker.release");
}

TEST_CASE("sybils: 50 workers behind one subnet or on cloned GPUs are flagged, and reputation keeps jobs off them",
          "[integration][fraud][sybil]") {
  RunningServer s([](server::ServerOptions& o) {
    o.scheduler.trust.max_workers_per_subnet = 10;
    o.scheduler.reputation_interval_ms = 100;
    o.scheduler.lease_timeout_ms = 60'000;  // 27 streams without heartbeats, opened one by one
  });
  testing::CreateFundedMarket(s.channel);
  // An honest worker elsewhere (its registration address is set as a machine on another network
  // would have it: every test client connects from 127.0.0.1), dearer than the sybils.
  v1::RegisterWorkerResponse r;
  const int64_t honest = Register(s.channel, 2'000'000, "GPU-honest", &r);
  s.db.Scalar("UPDATE workers SET registered_subnet = '10.9.9.0/24' WHERE worker_id = " + std::to_string(honest));
  // 50 sybils from one /24: 25 on GPUs of their own, 25 claiming one cloned GPU.
  std::vector<int64_t> sybils, clones;
  for (int i = 0; i < 25; ++i) sybils.push_back(Register(s.channel, 1'000'000, "GPU-sybil-" + std::to_string(i), &r));
  for (int i = 0; i < 25; ++i) {
    clones.push_back(Register(s.channel, 1'000'000, "GPU-clone", &r));
    CHECK(r.state() == (i == 0 ? v1::WORKER_STATE_PENDING_VERIFICATION : v1::WORKER_STATE_QUARANTINED));
  }
  CHECK(SignalsOf(s.db, honest).empty());
  CHECK(s.db.Scalar("SELECT count(DISTINCT worker_id) FROM fraud_signals WHERE kind = 'SUBNET_CROWD'") == "26");
  CHECK(s.db.Scalar("SELECT count(*) FROM workers WHERE state = 'QUARANTINED'") == "24");
  CHECK(s.db.Scalar("SELECT count(*) FROM workers w WHERE w.worker_id <> " + std::to_string(honest) +
                    " AND NOT EXISTS (SELECT 1 FROM fraud_signals f WHERE f.worker_id = w.worker_id)") == "0");  // all 50 flagged

  // Reputation follows: the honest worker keeps the prior, a flagged one falls to 0.5 · e^-0.75.
  // (Wait for a refresh that ran after the last registration: every sybil at most 236.)
  const std::string others_max = "SELECT max(reputation) FROM workers WHERE worker_id <> " + std::to_string(honest);
  std::string reputations;
  for (int i = 0; i < 100; ++i) {
    reputations = s.db.Scalar("SELECT string_agg(DISTINCT reputation::text, ',') FROM workers WHERE worker_id = " +
                              std::to_string(sybils[0]) + " OR worker_id = " + std::to_string(honest));
    if (reputations == "236,500" && s.db.Scalar(others_max) == "236") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(reputations == "236,500");
  CHECK(s.db.Scalar(others_max) == "236");

  std::vector<std::unique_ptr<WorkerConnection>> streams;
  streams.push_back(std::make_unique<WorkerConnection>(s.channel, honest));
  for (int64_t id : sybils) streams.push_back(std::make_unique<WorkerConnection>(s.channel, id));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the market has the reputations of the last refresh

  auto placed_on = [&](const std::string& request_id, int32_t min_reputation) {
    auto request = testing::SleepRequest(request_id, 2'000'000);
    request.mutable_spec()->set_min_reputation(min_reputation);
    v1::SubmitJobResponse submitted;
    REQUIRE(s.Submit(request, &submitted).ok());
    const std::string job = std::to_string(submitted.job().job_id());
    std::string worker;
    for (int i = 0; i < 100 && worker.empty(); ++i) {
      worker = s.db.Scalar("SELECT worker_id FROM assignments WHERE job_id = " + job);
      if (worker.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return worker;
  };
  // A job that asks for reputation goes to the honest worker although every sybil is cheaper…
  CHECK(placed_on("careful", 400) == std::to_string(honest));
  // …and one that does not care takes the cheapest ask, a sybil.
  const std::string careless = placed_on("careless", 0);
  CHECK(careless != std::to_string(honest));
  CHECK_FALSE(careless.empty());
}

TEST_CASE("reputation: smoothed lease outcomes, damped by signals, zero in quarantine", "[integration][fraud]") {
  testing::FundedMarketplace m;
  scheduler_host::TrustRepository trust(m.db.store());
  auto run = [&](const std::string& id, bool succeeded) {
    auto submitted = m.jobs.Submit(testing::Marketplace::SleepJob("acme", id, 2'000'000));
    REQUIRE(submitted.ok());
    const auto placed = m.MatchOnce({testing::Marketplace::Offer(m.worker, 1'000'000, 2)});
    REQUIRE(placed.size() == 1);
    m.Finish(m.worker, placed[0].job_id, placed[0].attempt, succeeded);
  };
  auto reputation = [&] {
    REQUIRE(trust.RefreshReputations().ok());
    return std::stoi(m.db.Scalar("SELECT reputation FROM workers WHERE worker_id = " + std::to_string(m.worker)));
  };
  CHECK(reputation() == 500);  // the prior: (0 + 1) / (0 + 2)
  for (int i = 0; i < 3; ++i) run("ok" + std::to_string(i), true);
  run("bad", false);
  CHECK(reputation() == 667);  // (3 + 1) / (4 + 2)
  m.db.Scalar("INSERT INTO fraud_signals (worker_id, kind, evidence) VALUES (" + std::to_string(m.worker) + ", 'BAD_SIGNATURE', 't')");
  CHECK(reputation() == static_cast<int>(std::lround(1000.0 * 4 / 6 * std::exp(-1.0))));
  auto changed = trust.RefreshReputations();
  REQUIRE(changed.ok());
  CHECK(changed->empty());  // nothing moved: nothing is rewritten
  REQUIRE(trust.Quarantine(m.worker, "test", "").ok());
  CHECK(reputation() == 0);
}

TEST_CASE("a worker whose telemetry is unlike its GPU model's peers gets an anomaly score and loses reputation",
          "[integration][fraud]") {
  testing::FundedMarketplace m;
  scheduler_host::TrustRepository trust(m.db.store());
  // Six single-GPU H100 workers (the fixture's own has 2 GPUs and no telemetry), each with a lease
  // whose ingest record carries a minute and a half of metered GPU time.
  std::vector<int64_t> workers;
  std::vector<scheduler::WorkerSpec> offers;
  for (int i = 0; i < 6; ++i) {
    workers.push_back(m.RegisterWorker("gpuco", "h" + std::to_string(i), 1'000'000, 1));
    offers.push_back(testing::Marketplace::Offer(workers.back(), 1'000'000, 1));
    REQUIRE(m.jobs.Submit(testing::Marketplace::SleepJob("acme", "t" + std::to_string(i), 2'000'000)).ok());
  }
  const auto placed = m.MatchOnce(offers);
  REQUIRE(placed.size() == 6);
  // Utilization ppm × GPU-ms / 10⁶ and millijoules over 90,000 GPU-ms: five draw ~700 W at 90 %; the
  // sixth says 100 % busy while drawing 20 W, which no H100 under load does.
  const std::vector<std::pair<int64_t, int64_t>> telemetry = {{81'000, 63'000}, {80'100, 63'900}, {81'900, 62'100},
                                                              {80'550, 64'800}, {81'450, 63'450}, {90'000, 1'800}};
  for (size_t i = 0; i < placed.size(); ++i) {
    const auto it = std::find(workers.begin(), workers.end(), placed[i].worker_id);
    const auto& [utilization, energy] = telemetry[static_cast<size_t>(it - workers.begin())];
    m.db.Scalar("INSERT INTO lease_ingest VALUES (" + std::to_string(placed[i].job_id) + ", 1, " + std::to_string(placed[i].worker_id) +
                ", 1, 90000, " + std::to_string(utilization) + ", " + std::to_string(energy * 1'000) + ", 90000)");
  }
  REQUIRE(trust.RefreshReputations().ok());
  const std::string liar = std::to_string(workers[5]);
  CHECK(std::stod(m.db.Scalar("SELECT anomaly_score FROM workers WHERE worker_id = " + liar)) > 10);
  CHECK(std::stod(m.db.Scalar("SELECT max(anomaly_score) FROM workers WHERE worker_id <> " + liar)) < 3.5);
  CHECK(std::stoi(m.db.Scalar("SELECT reputation FROM workers WHERE worker_id = " + liar)) < 150);
  CHECK(m.db.Scalar("SELECT min(reputation) FROM workers WHERE worker_id <> " + liar) == "500");
  CHECK(SignalsOf(m.db, workers[5]) == "TELEMETRY_ANOMALY");
  CHECK_THAT(m.db.Scalar("SELECT evidence FROM fraud_signals WHERE worker_id = " + liar),
             Catch::Contains("telemetry unlike other H100 workers: mean utilization 100.0%"));
  REQUIRE(trust.RefreshReputations().ok());
  CHECK(SignalsOf(m.db, workers[5]) == "TELEMETRY_ANOMALY");  // signalled once, when it crossed the threshold
}

TEST_CASE("an operator's quarantine ends the worker's stream and its job runs elsewhere", "[integration][fraud]") {
  RunningServer s;
  testing::CreateFundedMarket(s.channel);
  const int64_t suspect = testing::RegisterWorker(s.channel, 1'000'000, 1, "GPU-suspect");
  WorkerConnection on_suspect(s.channel, suspect);
  v1::SubmitJobResponse submitted;
  REQUIRE(s.Submit(testing::SleepRequest("moves", 2'000'000), &submitted).ok());
  on_suspect.ReadUntil([](const v1::ServerMessage& m) { return m.has_assignment(); });

  auto admin = v1::AdminService::NewStub(s.channel);
  v1::QuarantineWorkerRequest q;
  q.set_worker_id(suspect);
  q.set_reason("energy draw impossible for its claimed H100");
  v1::WorkerTrust trust;
  REQUIRE(admin->QuarantineWorker(Ctx().get(), q, &trust).ok());
  CHECK(trust.state() == v1::WORKER_STATE_QUARANTINED);
  CHECK(trust.reputation() == 0);
  v1::ServerMessage in;
  while (on_suspect.stream->Read(&in)) {
  }
  const grpc::Status closed = on_suspect.stream->Finish();
  CHECK(closed.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(closed.error_message() == "worker " + std::to_string(suspect) + " is quarantined");

  // Its lease expires (it cannot reconnect) and the job goes back to the queue, for another worker.
  const std::string job = std::to_string(submitted.job().job_id());
  for (int i = 0; i < 100 && s.db.Scalar("SELECT state FROM jobs WHERE job_id = " + job) != "QUEUED"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(s.db.Scalar("SELECT state FROM jobs WHERE job_id = " + job) == "QUEUED");
  const int64_t other = testing::RegisterWorker(s.channel, 1'000'000, 1, "GPU-other");
  WorkerConnection on_other(s.channel, other);
  const v1::ServerMessage moved = on_other.ReadUntil([](const v1::ServerMessage& m) { return m.has_assignment(); });
  CHECK(moved.assignment().job_id() == submitted.job().job_id());
  CHECK(moved.assignment().attempt() == 2);  // the suspect's lease expired

  v1::ListFraudSignalsRequest list;
  list.set_kind(v1::FRAUD_SIGNAL_KIND_ADMIN_QUARANTINE);
  v1::ListFraudSignalsResponse signals;
  REQUIRE(admin->ListFraudSignals(Ctx().get(), list, &signals).ok());
  REQUIRE(signals.signals_size() == 1);
  CHECK(signals.signals(0).worker_id() == suspect);
  CHECK(signals.signals(0).evidence() == "quarantined by an operator: energy draw impossible for its claimed H100");
}

}  // namespace
}  // namespace tessera
