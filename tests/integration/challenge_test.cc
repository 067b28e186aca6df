// Proof of GPU through the real server: a worker is PENDING_VERIFICATION, offered no job, until it
// passes a challenge; an honest CPU worker passes; a random root, wrong rows, an impossible time, a
// CPU claiming an H100, a time longer than the round trip, an unsigned or late answer all fail it,
// which quarantines the worker with the evidence until an admin releases it.
#include <catch2/catch.hpp>

#include <sodium.h>

#include <mutex>
#include <thread>

#include "kernels/compute_backend.h"
#include "services/common/gpu_challenge_proof.h"
#include "services/worker/challenge_responder.h"
#include "tests/integration/running_server.h"

namespace tessera {
namespace {

using testing::Ctx;
using testing::RunningServer;
using testing::TestWorkerKey;
using testing::WorkerConnection;

std::function<void(server::ServerOptions&)> Verifying(uint32_t n = 64, int64_t recheck_ms = 0, int64_t overhead_ms = 5'000) {
  return [=](server::ServerOptions& o) {
    o.scheduler.verifier.enabled = true;
    o.scheduler.verifier.challenge_n = n;
    o.scheduler.verifier.recheck_mean_interval_ms = recheck_ms;
    o.scheduler.verifier.overhead_ms = overhead_ms;
  };
}

int64_t RegisterCpuWorker(const std::shared_ptr<grpc::Channel>& channel, const std::string& uuid, const std::string& model = "CPU") {
  return testing::RegisterWorker(channel, 1'000'000, 1, uuid, [&](v1::RegisterWorkerRequest& r) {
    r.mutable_gpus(0)->set_model(model);
    r.mutable_gpus(0)->set_compute_capability(model == "CPU" ? "0.0" : "9.0");
  });
}

std::string StateOf(testing::TestDatabase& db, int64_t worker_id) {
  return db.Scalar("SELECT state FROM workers WHERE worker_id = " + std::to_string(worker_id));
}

// The products of a challenge, computed honestly by the CPU backend, and the commitment to them
// (unsigned: the caller may change it first).
struct Answer {
  std::map<uint32_t, CommittedProduct> products;
  v1::WorkerMessage commit;
};

Answer Compute(const v1::Challenge& challenge) {
  Answer out;
  auto backend = kernels::MakeCpuBackend();
  v1::ChallengeCommit& commit = *out.commit.mutable_challenge_commit();
  commit.set_challenge_id(challenge.challenge_id());
  for (const v1::GpuChallenge& g : challenge.gpus()) {
    absl::StatusOr<kernels::ChallengeRun> run = backend->RunChallenge({.seed = g.seed(), .n = g.n()}, g.gpu_index());
    REQUIRE(run.ok());
    const CommittedProduct& c = out.products[g.gpu_index()] = CommitProduct(std::move(run->product), g.n());
    v1::GpuCommitment* gc = commit.add_gpus();
    gc->set_gpu_index(g.gpu_index());
    gc->set_root(std::string(c.root.begin(), c.root.end()));
    gc->set_elapsed_us(static_cast<uint64_t>(run->elapsed_us) + 1);
  }
  return out;
}

v1::WorkerMessage Opening(const Answer& answer, const v1::OpenRows& open, const v1::RowPick& pick) {
  v1::WorkerMessage m;
  v1::ChallengeOpening& o = *m.mutable_challenge_opening();
  o.set_challenge_id(open.challenge_id());
  o.set_gpu_index(pick.gpu_index());
  for (uint32_t row : pick.rows()) {
    const RowOpening opened = OpenRow(answer.products.at(pick.gpu_index()), row);
    v1::OpenedRow* r = o.add_rows();
    r->set_row(row);
    r->mutable_values()->Add(opened.values.begin(), opened.values.end());
    for (const Hash& h : opened.path) r->add_path(std::string(h.begin(), h.end()));
  }
  return m;
}

void Sign(v1::WorkerMessage& m, int64_t worker_id) {
  if (m.has_challenge_commit()) SignChallengeCommit(TestWorkerKey(), worker_id, m.mutable_challenge_commit());
  if (m.has_challenge_opening()) SignChallengeOpening(TestWorkerKey(), worker_id, m.mutable_challenge_opening());
}

// How a dishonest worker changes its answer before signing it.
struct Cheat {
  std::function<void(v1::ChallengeCommit&)> commit = {};
  std::function<void(v1::ChallengeOpening&)> opening = {};
  bool sign = true;
};

// Answers the next challenge on `conn` (honestly unless `cheat` says otherwise) and returns the verdict.
v1::ChallengeResult Respond(WorkerConnection& conn, const Cheat& cheat = {}) {
  const v1::ServerMessage challenge = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_challenge(); });
  Answer answer = Compute(challenge.challenge());
  if (cheat.commit) cheat.commit(*answer.commit.mutable_challenge_commit());
  if (cheat.sign) Sign(answer.commit, conn.worker_id);
  REQUIRE(conn.stream->Write(answer.commit));
  v1::ServerMessage next = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_open_rows() || m.has_challenge_result(); });
  if (next.has_challenge_result()) return next.challenge_result();
  for (const v1::RowPick& pick : next.open_rows().gpus()) {
    v1::WorkerMessage opening = Opening(answer, next.open_rows(), pick);
    if (cheat.opening) cheat.opening(*opening.mutable_challenge_opening());
    Sign(opening, conn.worker_id);
    REQUIRE(conn.stream->Write(opening));
  }
  return conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_challenge_result(); }).challenge_result();
}

// A failed challenge: the worker is quarantined with a CHALLENGE_FAILED signal carrying the
// reason, and its stream is ended.
void ExpectQuarantined(RunningServer& s, WorkerConnection& conn, const v1::ChallengeResult& result, const std::string& reason) {
  CHECK_FALSE(result.passed());
  CHECK_THAT(result.reason(), Catch::Contains(reason));
  CHECK(result.state() == v1::WORKER_STATE_QUARANTINED);
  v1::ServerMessage rest;
  while (conn.stream->Read(&rest)) {
  }
  CHECK(conn.stream->Finish().error_code() == grpc::StatusCode::PERMISSION_DENIED);
  const std::string id = std::to_string(conn.worker_id);
  CHECK(StateOf(s.db, conn.worker_id) == "QUARANTINED");
  CHECK_THAT(s.db.Scalar("SELECT evidence FROM fraud_signals WHERE kind = 'CHALLENGE_FAILED' AND worker_id = " + id), Catch::Contains(reason));
  CHECK(s.db.Scalar("SELECT outcome FROM gpu_challenges WHERE worker_id = " + id + " ORDER BY challenge_id DESC LIMIT 1") == "FAILED");
  CHECK(testing::RefusedHello(s.channel, conn.worker_id).error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

}  // namespace

TEST_CASE("an honest CPU worker proves its hardware with the agent's responder, and only then gets a job", "[integration][challenge]") {
  RunningServer s(Verifying(0));  // the size by model: 256 for a CPU
  testing::CreateFundedMarket(s.channel);
  const int64_t worker = RegisterCpuWorker(s.channel, "CPU-honest");
  CHECK(StateOf(s.db, worker) == "PENDING_VERIFICATION");
  v1::SubmitJobResponse job;
  REQUIRE(s.Submit(testing::SleepRequest("before-pass", 2'000'000), &job).ok());

  WorkerConnection conn(s.channel, worker);
  const v1::ServerMessage challenge = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_challenge() || m.has_assignment(); });
  REQUIRE(challenge.has_challenge());  // no job before the proof
  REQUIRE(challenge.challenge().gpus_size() == 1);
  CHECK(challenge.challenge().gpus(0).n() == 256);
  CHECK(StateOf(s.db, worker) == "PENDING_VERIFICATION");
  auto backend = kernels::MakeCpuBackend();
  std::mutex write_mu;
  worker::ChallengeResponder responder(*backend, TestWorkerKey(), worker, {0}, [&](const v1::WorkerMessage& m) {
    std::lock_guard lock(write_mu);
    conn.stream->Write(m);
  });
  responder.OnChallenge(challenge.challenge());
  responder.OnOpenRows(conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_open_rows(); }).open_rows());
  const v1::ChallengeResult result = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_challenge_result(); }).challenge_result();
  INFO(result.reason());
  CHECK(result.passed());
  CHECK(result.state() == v1::WORKER_STATE_ACTIVE);
  const v1::ServerMessage assignment = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_assignment(); });
  CHECK(assignment.assignment().job_id() == job.job().job_id());

  const std::string id = std::to_string(worker);
  CHECK(StateOf(s.db, worker) == "ACTIVE");
  CHECK(s.db.Scalar("SELECT verified_at IS NOT NULL FROM workers WHERE worker_id = " + id) == "t");
  CHECK(s.db.Scalar("SELECT action FROM audit_log WHERE subject = 'worker/" + id + "' ORDER BY audit_id DESC LIMIT 1") == "worker.verified");
  v1::GetWorkerTrustRequest get;
  get.set_worker_id(worker);
  v1::WorkerTrust trust;
  REQUIRE(v1::AdminService::NewStub(s.channel)->GetWorkerTrust(Ctx().get(), get, &trust).ok());
  CHECK(trust.verified_at_ms() > 0);
  REQUIRE(trust.challenges_size() == 1);
  const v1::GpuChallengeRecord& record = trust.challenges(0);
  CHECK(record.outcome() == v1::CHALLENGE_OUTCOME_PASSED);
  CHECK(record.reason() == v1::CHALLENGE_REASON_REGISTRATION);
  CHECK_THAT(record.detail(), Catch::Contains("GPU 0 (CPU): n = 256"));
  REQUIRE(record.gpus_size() == 1);
  CHECK(record.gpus(0).seed() == challenge.challenge().gpus(0).seed());
  CHECK(record.gpus(0).root().size() == 32);
  CHECK(record.gpus(0).opened_rows_size() == 8);
  CHECK(record.observed_ms() >= static_cast<int64_t>(record.gpus(0).elapsed_us() / 1000));
  // The stored root is the true product's: anyone can recompute it from the seed.
  const CommittedProduct truth = CommitProduct(kernels::ChallengeProduct({.seed = record.gpus(0).seed(), .n = 256}), 256);
  CHECK(record.gpus(0).root() == std::string(truth.root.begin(), truth.root.end()));
}

TEST_CASE("a worker that commits to a random root fails, is quarantined with the evidence, and an admin can lift it",
          "[integration][challenge]") {
  RunningServer s(Verifying());
  testing::CreateFundedMarket(s.channel);
  const int64_t worker = RegisterCpuWorker(s.channel, "CPU-random-root");
  {
    WorkerConnection conn(s.channel, worker);
    const v1::ChallengeResult result = Respond(conn, {.commit = [](v1::ChallengeCommit& c) {
                                                 std::string root(32, '\0');
                                                 randombytes_buf(root.data(), root.size());
                                                 c.mutable_gpus(0)->set_root(root);
                                               }});
    ExpectQuarantined(s, conn, result, "does not open the committed root");
  }
  v1::ReleaseWorkerRequest release;
  release.set_worker_id(worker);
  release.set_reason("checked the card in person");
  v1::WorkerTrust trust;
  REQUIRE(v1::AdminService::NewStub(s.channel)->ReleaseWorker(Ctx().get(), release, &trust).ok());
  REQUIRE(trust.challenges_size() == 1);
  CHECK(trust.challenges(0).outcome() == v1::CHALLENGE_OUTCOME_FAILED);
  CHECK(trust.verified_at_ms() > 0);  // the admin vouched: no challenge on its next connection
  WorkerConnection back(s.channel, worker);
  for (int i = 0; i < 50 && StateOf(s.db, worker) != "ACTIVE"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(StateOf(s.db, worker) == "ACTIVE");
}

TEST_CASE("wrong rows fail a challenge: a changed value, and a true row opened in place of the picked one", "[integration][challenge]") {
  RunningServer s(Verifying());
  testing::CreateFundedMarket(s.channel);
  SECTION("a changed value") {
    const int64_t worker = RegisterCpuWorker(s.channel, "CPU-wrong-value");
    WorkerConnection conn(s.channel, worker);
    ExpectQuarantined(s, conn, Respond(conn, {.opening = [](v1::ChallengeOpening& o) { o.mutable_rows(0)->set_values(5, 12345); }}),
                      "is not row");
  }
  SECTION("another row than picked") {
    const int64_t worker = RegisterCpuWorker(s.channel, "CPU-wrong-row");
    WorkerConnection conn(s.channel, worker);
    ExpectQuarantined(s, conn, Respond(conn, {.opening = [](v1::ChallengeOpening& o) {
                                         auto* rows = o.mutable_rows();
                                         if (rows->size() > 1) rows->SwapElements(0, 1);
                                       }}),
                      "was picked");
  }
}

TEST_CASE("timing fails a challenge: an impossible time, a CPU claiming an H100, and more compute than the round trip",
          "[integration][challenge]") {
  SECTION("impossibly fast") {
    RunningServer s(Verifying(256));
    testing::CreateFundedMarket(s.channel);
    const int64_t worker = RegisterCpuWorker(s.channel, "CPU-fast");
    WorkerConnection conn(s.channel, worker);
    ExpectQuarantined(s, conn, Respond(conn, {.commit = [](v1::ChallengeCommit& c) { c.mutable_gpus(0)->set_elapsed_us(1); }}),
                      "impossibly fast for a CPU");
  }
  SECTION("an H100 that computes like the CPU backend") {
    RunningServer s(Verifying(256));
    testing::CreateFundedMarket(s.channel);
    const int64_t worker = RegisterCpuWorker(s.channel, "GPU-claimed-h100", "H100");
    WorkerConnection conn(s.channel, worker);
    ExpectQuarantined(s, conn, Respond(conn), "too slow for a H100");
  }
  SECTION("reporting more compute than the whole round trip took") {
    RunningServer s(Verifying(64));
    testing::CreateFundedMarket(s.channel);
    const int64_t worker = RegisterCpuWorker(s.channel, "CPU-long-claim");
    WorkerConnection conn(s.channel, worker);
    // 1.2 s fits a CPU's range for n = 64, but the answer comes within milliseconds.
    ExpectQuarantined(s, conn, Respond(conn, {.commit = [](v1::ChallengeCommit& c) { c.mutable_gpus(0)->set_elapsed_us(1'200'000); }}),
                      "but the commitment came");
  }
}

TEST_CASE("an unsigned or late answer fails; a stream closed mid-challenge leaves the worker pending for a new one",
          "[integration][challenge]") {
  RunningServer s(Verifying(64, 0, 300));
  testing::CreateFundedMarket(s.channel);
  SECTION("unsigned") {
    const int64_t worker = RegisterCpuWorker(s.channel, "CPU-unsigned");
    WorkerConnection conn(s.channel, worker);
    ExpectQuarantined(s, conn, Respond(conn, {.sign = false}), "the commitment is not signed by the worker's key");
  }
  SECTION("no answer by the deadline") {
    const int64_t worker = RegisterCpuWorker(s.channel, "CPU-silent");
    WorkerConnection conn(s.channel, worker);
    const v1::ServerMessage challenge = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_challenge(); });
    CHECK(challenge.challenge().commit_deadline_ms() < 1'000);  // 300 ms allowance + what a CPU may take on n = 64
    const v1::ChallengeResult result = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_challenge_result(); }).challenge_result();
    ExpectQuarantined(s, conn, result, "no commitment within");
  }
  SECTION("a closed stream abandons the challenge; the next connection gets a new one") {
    const int64_t worker = RegisterCpuWorker(s.channel, "CPU-flaky");
    int64_t first = 0;
    {
      WorkerConnection conn(s.channel, worker);
      first = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_challenge(); }).challenge().challenge_id();
    }
    const std::string outcome = "SELECT outcome FROM gpu_challenges WHERE challenge_id = " + std::to_string(first);
    for (int i = 0; i < 100 && s.db.Scalar(outcome) != "ABANDONED"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    CHECK(s.db.Scalar(outcome) == "ABANDONED");
    CHECK(StateOf(s.db, worker) == "PENDING_VERIFICATION");
    WorkerConnection again(s.channel, worker);
    const v1::ChallengeResult result = Respond(again);
    CHECK(result.passed());
    CHECK(result.challenge_id() > first);
    CHECK(StateOf(s.db, worker) == "ACTIVE");
  }
}

TEST_CASE("an idle ACTIVE worker is challenged again at random, and is offered no job until it passes", "[integration][challenge]") {
  RunningServer s(Verifying(64, 200));
  testing::CreateFundedMarket(s.channel);
  const int64_t worker = RegisterCpuWorker(s.channel, "CPU-rechecked");
  WorkerConnection conn(s.channel, worker);
  REQUIRE(Respond(conn).passed());
  // The re-check: PENDING_VERIFICATION while it runs, ACTIVE again after.
  const v1::ServerMessage again = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_challenge(); });
  CHECK(StateOf(s.db, worker) == "PENDING_VERIFICATION");
  CHECK(s.db.Scalar("SELECT reason FROM gpu_challenges WHERE challenge_id = " + std::to_string(again.challenge().challenge_id())) ==
        "RECHECK");
  Answer answer = Compute(again.challenge());
  Sign(answer.commit, worker);
  REQUIRE(conn.stream->Write(answer.commit));
  const v1::ServerMessage open = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_open_rows(); });
  for (const v1::RowPick& pick : open.open_rows().gpus()) {
    v1::WorkerMessage opening = Opening(answer, open.open_rows(), pick);
    Sign(opening, worker);
    REQUIRE(conn.stream->Write(opening));
  }
  CHECK(conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_challenge_result(); }).challenge_result().passed());
  CHECK(StateOf(s.db, worker) == "ACTIVE");
  CHECK(s.db.Scalar("SELECT string_agg(action, ',' ORDER BY audit_id) FROM audit_log WHERE subject = 'worker/" + std::to_string(worker) +
                    "'").rfind("worker.verified,worker.recheck,worker.verified", 0) == 0);
}

TEST_CASE("a GPU model the throughput table does not know cannot register while verification is on", "[integration][challenge]") {
  RunningServer s(Verifying());
  testing::CreateFundedMarket(s.channel);
  v1::RegisterWorkerRequest r;
  r.set_provider_account("gpuco");
  r.set_name("w");
  r.set_region("test");
  r.set_ask_utok_per_gpu_hour(1'000'000);
  r.set_public_key(TestWorkerKey().public_key);
  v1::Gpu* gpu = r.add_gpus();
  gpu->set_index(0);
  gpu->set_model("Imaginary 9000");
  gpu->set_memory_mib(1'000);
  gpu->set_compute_capability("9.0");
  gpu->set_uuid("GPU-imaginary");
  v1::RegisterWorkerResponse out;
  const grpc::Status refused = v1::WorkerService::NewStub(s.channel)->RegisterWorker(Ctx().get(), r, &out);
  CHECK(refused.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(refused.error_message(), Catch::Contains("'Imaginary 9000' cannot be verified") && Catch::Contains("H100"));
}

}  // namespace tessera
