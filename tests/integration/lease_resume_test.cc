// A worker that loses the scheduler for longer than its lease keeps running its job (the agent's
// grace period); when it comes back the scheduler resumes the lease if nothing took its place,
// and otherwise cancels the job there and refuses its late reports.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/escaping.h"
#include "kernels/compute_backend.h"
#include "services/worker/agent.h"
#include "tests/integration/running_server.h"
#include "tests/support/ledger_invariants.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

v1::Job GetJob(RunningServer& s, int64_t job_id) {
  v1::GetJobRequest get;
  get.set_job_id(job_id);
  v1::Job job;
  REQUIRE(s.jobs->GetJob(Ctx().get(), get, &job).ok());
  return job;
}

v1::Job WaitForState(RunningServer& s, int64_t job_id, v1::JobState state) {
  v1::Job job;
  for (int i = 0; i < 200; ++i) {
    job = GetJob(s, job_id);
    if (job.state() == state) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("job " << job_id << " is " << v1::JobState_Name(job.state()) << ", not " << v1::JobState_Name(state));
  return job;
}

v1::WorkerMessage Usage(int64_t job_id, uint64_t seq) {
  v1::WorkerMessage m;
  m.mutable_usage()->set_job_id(job_id);
  m.mutable_usage()->set_attempt(1);
  m.mutable_usage()->set_seq(seq);
  m.mutable_usage()->set_gpu_ms(500);
  m.mutable_usage()->set_measured_at_ms(SystemClock().NowMs());
  return m;
}

bool IsUsageAck(const v1::ServerMessage& m) { return m.has_usage_ack(); }

// A 30 s job submitted, assigned to `worker`, started there with one usage report accepted; then
// the worker's stream goes away. Returns the job's id.
int64_t RunThenVanish(RunningServer& s, int64_t worker, const std::string& request_id) {
  v1::SubmitJobResponse submitted;
  auto request = SleepRequest(request_id, 2'000'000);
  request.mutable_spec()->mutable_sleep()->set_duration_ms(30'000);
  REQUIRE(s.Submit(request, &submitted).ok());
  const int64_t job_id = submitted.job().job_id();
  WorkerConnection conn(s.channel, worker);
  REQUIRE(conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_assignment(); }).assignment().job_id() == job_id);
  v1::WorkerMessage started;
  started.mutable_started()->set_job_id(job_id);
  started.mutable_started()->set_attempt(1);
  conn.Send(started);
  conn.Send(Usage(job_id, 1));
  REQUIRE(conn.ReadUntil(IsUsageAck).usage_ack().accepted());
  return job_id;
}

std::function<void(v1::Hello&)> Running(int64_t job_id) {
  return [job_id](v1::Hello& h) {
    v1::RunningJob* r = h.add_running();
    r->set_job_id(job_id);
    r->set_attempt(1);
  };
}

}  // namespace

TEST_CASE("a worker back from a long blip resumes its lease when nothing took its place", "[integration][scheduler][blip]") {
  RunningServer s;
  CreateFundedMarket(s.channel);
  const int64_t worker = RegisterWorker(s.channel, 1'000'000, 1, "GPU-blip");
  const int64_t job_id = RunThenVanish(s, worker, "long");
  // Silent past the 2 s lease: the lease ends and the job is queued again, with no worker to take it.
  CHECK(WaitForState(s, job_id, v1::JOB_STATE_QUEUED).attempt() == 1);
  CHECK(s.db.Scalar("SELECT state FROM assignments WHERE job_id = " + std::to_string(job_id)) == "ENDED");

  // Back, still running it: the same attempt goes on, and the reports it buffered are accepted.
  WorkerConnection back(s.channel, worker, Running(job_id));
  const v1::Job resumed = WaitForState(s, job_id, v1::JOB_STATE_RUNNING);
  CHECK(resumed.attempt() == 1);
  CHECK(s.db.Scalar("SELECT state || ' ' || end_reason FROM assignments WHERE job_id = " + std::to_string(job_id)) == "LIVE ");
  CHECK(s.db.Scalar("SELECT count(*) FROM job_events WHERE message LIKE 'lease resumed%' AND job_id = " + std::to_string(job_id)) ==
        "1");
  back.Send(Usage(job_id, 2));
  CHECK(back.ReadUntil(IsUsageAck).usage_ack().accepted());

  v1::WorkerMessage finished;
  finished.mutable_finished()->set_job_id(job_id);
  finished.mutable_finished()->set_attempt(1);
  finished.mutable_finished()->set_succeeded(true);
  finished.mutable_finished()->set_last_usage_seq(2);
  back.Send(finished);
  WaitForState(s, job_id, v1::JOB_STATE_SUCCEEDED);
  for (int i = 0; i < 100 && s.db.Scalar("SELECT hold_state FROM jobs") == "PENDING"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(s.db.Scalar("SELECT count(*) FROM usage_reports WHERE settled") == "2");
  for (const auto& [name, violations] : LedgerInvariants()) {
    INFO(name);
    CHECK(s.db.Scalar(violations) == "0");
  }
}

TEST_CASE("a worker back after its job moved elsewhere is told to stop it; its late reports are refused",
          "[integration][scheduler][blip]") {
  RunningServer s;
  CreateFundedMarket(s.channel);
  const int64_t stale = RegisterWorker(s.channel, 1'000'000, 1, "GPU-stale");
  const int64_t other = RegisterWorker(s.channel, 1'500'000, 1, "GPU-other");
  const int64_t job_id = RunThenVanish(s, stale, "moved");
  WaitForState(s, job_id, v1::JOB_STATE_QUEUED);
  WorkerConnection taker(s.channel, other);
  const v1::ServerMessage second = taker.ReadUntil([](const v1::ServerMessage& m) { return m.has_assignment(); });
  CHECK(second.assignment().job_id() == job_id);
  CHECK(second.assignment().attempt() == 2);

  WorkerConnection back(s.channel, stale, Running(job_id));
  const v1::ServerMessage cancel = back.ReadUntil([](const v1::ServerMessage& m) { return m.has_cancel(); });
  CHECK(cancel.cancel().job_id() == job_id);
  CHECK(cancel.cancel().attempt() == 1);
  back.Send(Usage(job_id, 2));
  const v1::ServerMessage refused = back.ReadUntil(IsUsageAck);
  CHECK_FALSE(refused.usage_ack().accepted());
  CHECK(s.db.Scalar("SELECT count(*) FROM usage_reports WHERE worker_id = " + std::to_string(stale)) == "1");
  CHECK(GetJob(s, job_id).attempt() == 2);
}

namespace {

// A crashed agent's state directory: its id, its key, and its journal holding `journaled`, signed.
std::filesystem::path StateDirLeftBy(int64_t worker, const std::vector<v1::WorkerMessage>& journaled) {
  char tmpl[] = "/tmp/tessera-agent-XXXXXX";
  const std::filesystem::path state_dir = mkdtemp(tmpl);
  std::ofstream(state_dir / "worker-id") << worker << "\n";
  std::ofstream(state_dir / "worker.ed25519") << absl::BytesToHexString(TestWorkerKey().secret_key);
  auto journal = worker::OutboxJournal::Open(state_dir / "outbox.journal");
  REQUIRE(journal.ok());
  for (const v1::WorkerMessage& m : journaled) REQUIRE((*journal)->Append(Signed(m, worker)).ok());
  return state_dir;
}

// A 300 ms job assigned to `worker` on a stream that went away before its JobStarted: the
// scheduler never saw it start, so it stays ASSIGNED. Returns its id.
int64_t AssignedNeverSeenStarted(RunningServer& s, int64_t worker, const std::string& request_id) {
  v1::SubmitJobResponse submitted;
  auto request = SleepRequest(request_id, 2'000'000);
  request.mutable_spec()->mutable_sleep()->set_duration_ms(300);
  REQUIRE(s.Submit(request, &submitted).ok());
  const int64_t job_id = submitted.job().job_id();
  {
    WorkerConnection conn(s.channel, worker);
    REQUIRE(conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_assignment(); }).assignment().job_id() == job_id);
  }
  CHECK(GetJob(s, job_id).state() == v1::JOB_STATE_ASSIGNED);
  return job_id;
}

// A real agent of gpuco's worker restarted on `state_dir`, reporting usage every 50 ms.
worker::AgentOptions RestartedAgentOptions(RunningServer& s, const std::filesystem::path& state_dir) {
  worker::AgentOptions options;
  options.server = "127.0.0.1:" + std::to_string(s.server->port());
  options.provider_account = "gpuco";
  options.api_key = IssueKey(s.db.url(), v1::ROLE_PROVIDER, "gpuco");
  options.name = "w1";
  options.region = "test";
  options.ask_utok_per_gpu_hour = 1'000'000;
  options.state_dir = state_dir;
  options.runner.usage_interval_ms = 50;
  return options;
}

}  // namespace

// Issue 16, bug 1 (simulation seed 7347833): an agent that ran a job to the end and crashed before
// the scheduler acknowledged the result (nor saw the job start) restarts with that result in its
// journal. Its hello must name the run: the scheduler then keeps the lease for the result instead
// of assigning the attempt again, which the agent would run a second time on GPUs that the old
// result frees for another job.
TEST_CASE("a worker restarted with a journaled result gets the result accepted, not the attempt to run again",
          "[integration][scheduler][blip]") {
  RunningServer s;
  CreateFundedMarket(s.channel);
  const int64_t worker = RegisterWorker(s.channel, 1'000'000, 1, "GPU-journal");
  const int64_t job_id = AssignedNeverSeenStarted(s, worker, "journaled");

  // The state directory the agent left: its id, its key, and the journal with the signed result.
  v1::WorkerMessage finished;
  finished.mutable_finished()->set_job_id(job_id);
  finished.mutable_finished()->set_attempt(1);
  finished.mutable_finished()->set_succeeded(true);
  const std::filesystem::path state_dir = StateDirLeftBy(worker, {finished});

  // Restarted within the lease (2 s here), as a real agent.
  const SystemClock clock;
  {
    worker::Agent agent(RestartedAgentOptions(s, state_dir), kernels::MakeCpuBackend(), clock);
    REQUIRE(agent.Connect().ok());
    const absl::StatusOr<int64_t> id = agent.RegisterOrLoad();
    REQUIRE(id.ok());
    REQUIRE(*id == worker);
    std::thread run([&] { agent.Run(); });
    const v1::Job done = WaitForState(s, job_id, v1::JOB_STATE_SUCCEEDED);
    CHECK(done.attempt() == 1);
    // Long enough for a second run of the 300 ms job to report usage and finish.
    std::this_thread::sleep_for(std::chrono::milliseconds(1'500));
    agent.Stop();
    run.join();
  }
  // The journal holds the one result, acknowledged; a second run would have added its usage and result.
  const auto entries = worker::OutboxJournal::Read(state_dir / "outbox.journal");
  REQUIRE(entries.ok());
  CHECK(entries->size() == 1);
  for (const worker::OutboxJournal::Entry& e : *entries) {
    INFO(e.message.ShortDebugString());
    CHECK(e.message.has_finished());
    CHECK(e.acked);
  }
  CHECK(s.db.Scalar("SELECT count(*) FROM usage_reports WHERE job_id = " + std::to_string(job_id)) == "0");
  std::filesystem::remove_all(state_dir);
}

// The follow-up to bug 1: an agent that crashed mid-run, before the scheduler saw the job start,
// restarts with that run's usage in its journal and no result. Its hello names the run as lost:
// the lease is requeued as for a run the scheduler saw start, not assigned again as attempt 1
// (which the agent would run a second time under the seqs it already reported).
TEST_CASE("a worker restarted mid-run with journaled usage gets the attempt requeued, not run again",
          "[integration][scheduler][blip]") {
  RunningServer s;
  CreateFundedMarket(s.channel);
  const int64_t worker = RegisterWorker(s.channel, 1'000'000, 1, "GPU-midrun");
  const int64_t job_id = AssignedNeverSeenStarted(s, worker, "midrun");
  const std::filesystem::path state_dir = StateDirLeftBy(worker, {Usage(job_id, 1)});

  const SystemClock clock;
  {
    worker::Agent agent(RestartedAgentOptions(s, state_dir), kernels::MakeCpuBackend(), clock);
    REQUIRE(agent.Connect().ok());
    REQUIRE(agent.RegisterOrLoad().ok());
    std::thread run([&] { agent.Run(); });
    // Requeued, then placed again (the only worker) as attempt 2, which runs and succeeds.
    const v1::Job done = WaitForState(s, job_id, v1::JOB_STATE_SUCCEEDED);
    CHECK(done.attempt() == 2);
    agent.Stop();
    run.join();
  }
  const std::string job = std::to_string(job_id);
  CHECK(s.db.Scalar("SELECT end_reason FROM assignments WHERE job_id = " + job + " AND attempt = 1") ==
        "worker restarted without the job");
  // Attempt 1 never ran again: no result of it, and its one journaled report (late: the lease had
  // ended) was refused without suspicion.
  CHECK(s.db.Scalar("SELECT count(*) FROM usage_reports WHERE job_id = " + job + " AND attempt = 1") == "0");
  CHECK(s.db.Scalar("SELECT count(*) FROM fraud_signals") == "0");
  CHECK(s.db.Scalar("SELECT count(*) FROM job_events WHERE job_id = " + job + " AND state = 'SUCCEEDED' AND attempt = 1") == "0");
  std::filesystem::remove_all(state_dir);
}

// Issue 17 (the simulation running the real host found it): a run whose JobStarted was lost with
// its stream, named as running in the reconnect's hello, is RUNNING from that hello. Left ASSIGNED,
// an agent restart later would get the attempt assigned again and run it a second time under the
// usage seqs it had already reported, which the scheduler flags as replays of an honest worker.
TEST_CASE("a hello naming a run whose start was lost makes the job RUNNING", "[integration][scheduler][blip]") {
  RunningServer s;
  CreateFundedMarket(s.channel);
  const int64_t worker = RegisterWorker(s.channel, 1'000'000, 1, "GPU-lost-start");
  const int64_t job_id = AssignedNeverSeenStarted(s, worker, "lost-start");
  WorkerConnection back(s.channel, worker, Running(job_id));
  const v1::Job running = WaitForState(s, job_id, v1::JOB_STATE_RUNNING);
  CHECK(running.attempt() == 1);
  const std::string job = std::to_string(job_id);
  CHECK(s.db.Scalar("SELECT state FROM assignments WHERE job_id = " + job + " AND attempt = 1") == "LIVE");
  CHECK(s.db.Scalar("SELECT count(*) FROM job_events WHERE job_id = " + job + " AND state = 'RUNNING'") == "1");
  // Its usage goes on under the same attempt.
  back.Send(Usage(job_id, 1));
  CHECK(back.ReadUntil(IsUsageAck).usage_ack().accepted());
}
