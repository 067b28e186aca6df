// Signed usage over the real server: a report that is tampered with, signed by another key,
// unsigned, replayed with other content, over-claimed, dated in the future or sent for a lease the
// worker never held is refused with its reason, charges nothing, and is recorded as a fraud signal
// with its evidence; an honest report and its identical resend are accepted once.
#include <thread>

#include "services/common/worker_signing.h"
#include "tests/integration/running_server.h"

namespace tessera {
namespace {

using testing::RunningServer;
using testing::WorkerConnection;

bool IsAssignment(const v1::ServerMessage& m) { return m.has_assignment(); }
bool IsUsageAck(const v1::ServerMessage& m) { return m.has_usage_ack(); }

// One worker holding one running job, talking over its stream.
struct LeasedWorker {
  LeasedWorker() {
    testing::CreateFundedMarket(s.channel);
    worker = testing::RegisterWorker(s.channel, 1'000'000, 1, "GPU-signed");
    connection = std::make_unique<WorkerConnection>(s.channel, worker);
    v1::SubmitJobResponse submitted;
    REQUIRE(s.Submit(testing::SleepRequest("signed", 2'000'000), &submitted).ok());
    job = connection->ReadUntil(IsAssignment).assignment().job_id();
  }

  v1::UsageReport Report(uint64_t seq, int64_t gpu_ms) const {
    v1::UsageReport r;
    r.set_job_id(job);
    r.set_attempt(1);
    r.set_seq(seq);
    r.set_gpu_ms(gpu_ms);
    r.set_measured_at_ms(SystemClock().NowMs());
    return r;
  }

  // Sends `report` as it is (already signed, or not) and returns the server's ack.
  v1::UsageAck SendRaw(const v1::UsageReport& report) {
    v1::WorkerMessage m;
    *m.mutable_usage() = report;
    REQUIRE(connection->stream->Write(m));
    return connection->ReadUntil(IsUsageAck).usage_ack();
  }
  v1::UsageAck Send(v1::UsageReport report) {
    SignUsage(testing::TestWorkerKey(), worker, &report);
    return SendRaw(report);
  }

  std::string Signals() {
    return s.db.Scalar("SELECT coalesce(string_agg(kind || ':' || coalesce(seq::text, '-'), ',' ORDER BY signal_id), '')"
                       " FROM fraud_signals WHERE worker_id = " + std::to_string(worker));
  }
  // The signals once `want` are there, or after 5 s: one found as the stream is closed is written
  // with the ingest segment, which may land just after the close.
  std::string SignalsOnce(const std::string& want) {
    std::string got = Signals();
    for (int i = 0; i < 100 && got != want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      got = Signals();
    }
    return got;
  }
  std::string Stored() { return s.db.Scalar("SELECT count(*) FROM usage_reports WHERE job_id = " + std::to_string(job)); }

  // A lease that outlives a slow machine: these streams send no heartbeats.
  RunningServer s{[](server::ServerOptions& o) { o.scheduler.lease_timeout_ms = 60'000; }};
  int64_t worker = 0;
  int64_t job = 0;
  std::unique_ptr<WorkerConnection> connection;
};

TEST_CASE("a signed report is accepted, and its identical resend is a duplicate, not a replay", "[integration][signing]") {
  LeasedWorker w;
  v1::UsageReport first = w.Report(1, 500);
  SignUsage(testing::TestWorkerKey(), w.worker, &first);
  CHECK(w.SendRaw(first).accepted());
  const v1::UsageAck again = w.SendRaw(first);  // the agent's outbox resends after a reconnect
  CHECK(again.accepted());
  CHECK(again.reason().empty());
  CHECK(w.Stored() == "1");
  CHECK(w.Signals().empty());
  // The stored signature lets anyone check what the worker attested.
  CHECK(w.s.db.Scalar("SELECT length(signature) FROM usage_reports WHERE job_id = " + std::to_string(w.job)) == "64");
}

TEST_CASE("tampered, foreign-signed and unsigned reports are refused and recorded", "[integration][signing]") {
  LeasedWorker w;
  v1::UsageReport tampered = w.Report(1, 500);
  SignUsage(testing::TestWorkerKey(), w.worker, &tampered);
  tampered.set_gpu_ms(1'500);  // changed after signing
  v1::UsageAck ack = w.SendRaw(tampered);
  CHECK_FALSE(ack.accepted());
  CHECK(ack.reason() == "bad signature");

  v1::UsageReport foreign = w.Report(1, 500);
  SignUsage(WorkerKeyPair::Generate(), w.worker, &foreign);  // not the registered key
  CHECK_FALSE(w.SendRaw(foreign).accepted());
  CHECK_FALSE(w.SendRaw(w.Report(1, 500)).accepted());  // no signature at all

  CHECK(w.Stored() == "0");
  CHECK(w.Signals() == "BAD_SIGNATURE:1,BAD_SIGNATURE:1,BAD_SIGNATURE:1");
  CHECK_THAT(w.s.db.Scalar("SELECT evidence FROM fraud_signals ORDER BY signal_id DESC LIMIT 1"), Catch::Contains("is unsigned"));
  // The stream stays usable for the honest report.
  CHECK(w.Send(w.Report(1, 500)).accepted());
}

TEST_CASE("a seq reused with other content, or not after the last, is a replay", "[integration][signing]") {
  LeasedWorker w;
  CHECK(w.Send(w.Report(1, 500)).accepted());
  const v1::UsageAck changed = w.Send(w.Report(1, 900));  // validly signed, but seq 1 said 500
  CHECK_FALSE(changed.accepted());
  CHECK(changed.reason() == "seq 1 was already reported with other content");
  CHECK(w.Send(w.Report(5, 100)).accepted());
  const v1::UsageAck backwards = w.Send(w.Report(4, 100));
  CHECK_FALSE(backwards.accepted());
  CHECK(backwards.reason() == "seq 4 is not after the last stored seq 5");
  CHECK(w.Stored() == "2");
  CHECK(w.Signals() == "REPLAYED_REPORT:1,REPLAYED_REPORT:4");
  CHECK(w.s.db.Scalar("SELECT gpu_ms_reported FROM lease_ingest WHERE job_id = " + std::to_string(w.job)) == "600");
}

TEST_CASE("a report claiming more GPU time than its lease has lasted is refused", "[integration][signing]") {
  LeasedWorker w;
  // The lease is a moment old and holds one GPU: ten minutes of GPU time is impossible.
  const v1::UsageAck ack = w.Send(w.Report(1, 600'000));
  CHECK_FALSE(ack.accepted());
  CHECK_THAT(ack.reason(), Catch::Contains("600000 GPU-ms in total on a lease"));
  CHECK_THAT(ack.reason(), Catch::Contains("with 1 GPUs"));
  CHECK(w.Signals() == "OVER_CLAIM:1");
  // Claims add up: two reports each within the bound but together over it are caught too.
  CHECK(w.Send(w.Report(2, 1'000)).accepted());
  CHECK_FALSE(w.Send(w.Report(3, 60'000)).accepted());
  CHECK(w.Signals() == "OVER_CLAIM:1,OVER_CLAIM:3");
  // Nothing refused was charged.
  for (int i = 0; i < 50 && w.s.db.Scalar("SELECT count(*) FROM usage_reports WHERE settled") != "1"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(w.s.db.Scalar("SELECT sum(gpu_ms) FROM usage_reports WHERE job_id = " + std::to_string(w.job)) == "1000");
}

TEST_CASE("a report dated in the server's future is refused", "[integration][signing]") {
  LeasedWorker w;
  v1::UsageReport r = w.Report(1, 100);
  r.set_measured_at_ms(SystemClock().NowMs() + 3'600'000);
  const v1::UsageAck ack = w.Send(r);
  CHECK_FALSE(ack.accepted());
  CHECK_THAT(ack.reason(), Catch::Contains("ahead of the server's clock"));
  CHECK(w.Signals() == "FUTURE_DATED:1");
}

TEST_CASE("a report for a lease the worker never held is a fraud signal; one for a lease that ended is not", "[integration][signing]") {
  LeasedWorker w;
  v1::UsageReport other = w.Report(1, 100);
  other.set_job_id(w.job + 1'000);  // no such lease of this worker, ever
  const v1::UsageAck ack = w.Send(other);
  CHECK_FALSE(ack.accepted());
  CHECK_THAT(ack.reason(), Catch::Contains("it never held one"));
  CHECK(w.Signals() == "UNLEASED_REPORT:1");

  // After a cancel the lease has ended: a late honest report is refused without suspicion.
  v1::CancelJobRequest cancel;
  cancel.set_job_id(w.job);
  v1::Job cancelled;
  REQUIRE(w.s.jobs->CancelJob(testing::Ctx().get(), cancel, &cancelled).ok());
  w.connection->ReadUntil([](const v1::ServerMessage& m) { return m.has_cancel(); });
  const v1::UsageAck late = w.Send(w.Report(1, 100));
  CHECK_FALSE(late.accepted());
  CHECK(late.reason() == "no live lease of job " + std::to_string(w.job) + " attempt 1 on this worker");
  CHECK(w.Signals() == "UNLEASED_REPORT:1");
}

TEST_CASE("a result that is not signed by the worker's key does not finish the job", "[integration][signing]") {
  LeasedWorker w;
  v1::WorkerMessage m;
  m.mutable_finished()->set_job_id(w.job);
  m.mutable_finished()->set_attempt(1);
  m.mutable_finished()->set_succeeded(true);
  SignFinished(WorkerKeyPair::Generate(), w.worker, m.mutable_finished());
  REQUIRE(w.connection->stream->Write(m));
  v1::ServerMessage in;
  while (w.connection->stream->Read(&in)) CHECK_FALSE(in.has_finished_ack());
  const grpc::Status closed = w.connection->stream->Finish();
  CHECK(closed.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(closed.error_message() == "the result of job " + std::to_string(w.job) + " is not signed by this worker's key");
  CHECK(w.SignalsOnce("BAD_RESULT_SIGNATURE:-") == "BAD_RESULT_SIGNATURE:-");
  CHECK(w.s.db.Scalar("SELECT state FROM jobs WHERE job_id = " + std::to_string(w.job)) != "SUCCEEDED");
}

TEST_CASE("registration needs the machine's public key", "[integration][signing]") {
  RunningServer s;
  testing::CreateFundedMarket(s.channel);
  v1::RegisterWorkerRequest r;
  r.set_provider_account("gpuco");
  r.set_name("keyless");
  r.set_region("test");
  r.set_ask_utok_per_gpu_hour(1);
  v1::Gpu* gpu = r.add_gpus();
  gpu->set_model("H100");
  gpu->set_uuid("GPU-keyless");
  gpu->set_compute_capability("9.0");
  v1::RegisterWorkerResponse out;
  const grpc::Status st = s.workers->RegisterWorker(testing::Ctx().get(), r, &out);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message() == "public_key must be the machine's 32-byte Ed25519 public key, got 0 bytes");
  r.set_public_key(testing::TestWorkerKey().public_key);
  REQUIRE(s.workers->RegisterWorker(testing::Ctx().get(), r, &out).ok());
  v1::ListWorkersResponse listed;
  REQUIRE(s.workers->ListWorkers(testing::Ctx().get(), {}, &listed).ok());
  CHECK(listed.workers(0).public_key() == testing::TestWorkerKey().public_key);
}

}  // namespace
}  // namespace tessera
