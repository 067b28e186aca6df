// The scheduler host over the real server: two-sided requirements, preemption and wait reasons,
// each written to PostgreSQL and pushed down the worker streams.
#include <catch2/catch.hpp>

#include <thread>

#include "tests/integration/running_server.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

bool IsAssignment(const v1::ServerMessage& m) { return m.has_assignment(); }

v1::Job WaitForReason(RunningServer& s, int64_t job_id) {
  v1::GetJobRequest get;
  get.set_job_id(job_id);
  v1::Job job;
  for (int i = 0; i < 100 && job.wait_reason().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    REQUIRE(s.jobs->GetJob(Ctx().get(), get, &job).ok());
  }
  return job;
}

}  // namespace

TEST_CASE("a job lands only where both its requirements and the provider's policy hold", "[integration][scheduler]") {
  RunningServer s;
  CreateFundedMarket(s.channel);
  CreateAccount(s.channel, "rival", v1::ACCOUNT_KIND_CUSTOMER);
  // The cheapest worker refuses acme; the next one is in the wrong region for the job; the
  // dearest one fits.
  const int64_t refuses = RegisterWorker(s.channel, 1'000'000, 1, "GPU-refuses", [](v1::RegisterWorkerRequest& r) {
    r.mutable_policy()->add_denied_accounts("acme");
  });
  const int64_t elsewhere = RegisterWorker(s.channel, 1'500'000, 1, "GPU-elsewhere", [](v1::RegisterWorkerRequest& r) {
    r.set_region("us-east");
  });
  const int64_t fits = RegisterWorker(s.channel, 2'000'000, 1, "GPU-fits");
  WorkerConnection a(s.channel, refuses), b(s.channel, elsewhere), c(s.channel, fits);

  auto request = SleepRequest("picky", 3'000'000);
  request.mutable_spec()->add_regions("test");
  request.mutable_spec()->set_min_compute_capability("8.0");
  request.mutable_spec()->set_min_gpu_memory_mib(40'000);
  v1::SubmitJobResponse submitted;
  REQUIRE(s.Submit(request, &submitted).ok());
  const v1::ServerMessage assigned = c.ReadUntil(IsAssignment);
  CHECK(assigned.assignment().job_id() == submitted.job().job_id());
  CHECK(assigned.assignment().price_utok_per_gpu_hour() == 2'000'000);  // pay-as-ask, never the bid

  // Nothing else can hold it: more memory than any GPU has waits, and says so.
  auto huge = SleepRequest("huge", 3'000'000);
  huge.mutable_spec()->set_min_gpu_memory_mib(200'000);
  REQUIRE(s.Submit(huge, &submitted).ok());
  const v1::Job waiting = WaitForReason(s, submitted.job().job_id());
  CHECK(waiting.state() == v1::JOB_STATE_QUEUED);
  CHECK(waiting.wait_reason() == "no GPU matches the job's model, memory, compute capability, region and reputation");

  // The policy is stored and listed; a hello may replace it (the provider reconfigured the agent).
  v1::ListWorkersResponse listed;
  REQUIRE(s.workers->ListWorkers(Ctx().get(), {}, &listed).ok());
  REQUIRE(listed.workers_size() == 3);
  CHECK(listed.workers(0).policy().denied_accounts(0) == "acme");
  CHECK(listed.workers(0).reputation() == 500);
}

TEST_CASE("a provider's new policy arrives with the hello and applies at once", "[integration][scheduler]") {
  RunningServer s;
  CreateFundedMarket(s.channel);
  const int64_t worker = RegisterWorker(s.channel, 1'000'000, 1, "GPU-policy");
  WorkerConnection conn(s.channel, worker, [](v1::Hello& h) {
    (*h.mutable_policy()->mutable_min_bid_utok_per_gpu_hour())["H100"] = 4'000'000;
  });
  v1::SubmitJobResponse low, high;
  REQUIRE(s.Submit(SleepRequest("low", 3'000'000), &low).ok());
  REQUIRE(s.Submit(SleepRequest("high", 4'000'000), &high).ok());
  const v1::ServerMessage assigned = conn.ReadUntil(IsAssignment);
  CHECK(assigned.assignment().job_id() == high.job().job_id());  // the lower bid is below the provider's minimum
  CHECK(assigned.assignment().price_utok_per_gpu_hour() == 1'000'000);
  CHECK(WaitForReason(s, low.job().job_id()).wait_reason() ==
        "no provider's policy accepts the job (bid per model, duration, account or spot)");
  CHECK(s.db.Scalar("SELECT length(policy) > 0 FROM workers") == "t");

  // A malformed policy is refused with the field named, and nothing changes.
  grpc::ClientContext context;
  auto stream = s.workers->Connect(&context);
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(worker);
  hello.mutable_hello()->mutable_policy()->set_max_job_duration_ms(-1);
  REQUIRE(stream->Write(hello));
  v1::ServerMessage ignored;
  while (stream->Read(&ignored)) {
  }
  const grpc::Status refused = stream->Finish();
  CHECK(refused.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(refused.error_message(), Catch::Contains("policy.max_job_duration_ms"));
}

TEST_CASE("an on-demand job preempts a spot job: cancel to the worker, the spot job requeued", "[integration][scheduler]") {
  RunningServer s;
  CreateFundedMarket(s.channel);
  const int64_t worker = RegisterWorker(s.channel, 1'000'000, 1, "GPU-preempt");
  WorkerConnection conn(s.channel, worker);

  auto spot = SleepRequest("spot", 2'000'000);
  spot.mutable_spec()->set_priority_class(v1::PRIORITY_CLASS_SPOT);
  spot.mutable_spec()->set_max_attempts(1);  // preemption must not use up attempts
  v1::SubmitJobResponse spot_job, on_demand;
  REQUIRE(s.Submit(spot, &spot_job).ok());
  const v1::ServerMessage first = conn.ReadUntil(IsAssignment);
  REQUIRE(first.assignment().job_id() == spot_job.job().job_id());
  v1::WorkerMessage started;
  started.mutable_started()->set_job_id(spot_job.job().job_id());
  started.mutable_started()->set_attempt(1);
  conn.Send(started);

  REQUIRE(s.Submit(SleepRequest("urgent", 2'000'000), &on_demand).ok());
  const v1::ServerMessage cancel = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_cancel(); });
  CHECK(cancel.cancel().job_id() == spot_job.job().job_id());
  CHECK(cancel.cancel().reason() == "preempted by an on-demand job");
  const v1::ServerMessage second = conn.ReadUntil(IsAssignment);
  CHECK(second.assignment().job_id() == on_demand.job().job_id());
  const std::string spot_id = std::to_string(spot_job.job().job_id());
  CHECK(s.db.Scalar("SELECT state FROM jobs WHERE job_id = " + spot_id) == "QUEUED");
  CHECK(s.db.Scalar("SELECT end_reason FROM assignments WHERE job_id = " + spot_id) == "preempted by an on-demand job");
  CHECK(s.db.Scalar("SELECT message FROM job_events WHERE job_id = " + spot_id + " ORDER BY event_id DESC LIMIT 1") ==
        "preempted by an on-demand job; requeued");

  // When the on-demand job finishes, the spot job gets the GPU back as attempt 2.
  v1::WorkerMessage finished;
  finished.mutable_finished()->set_job_id(on_demand.job().job_id());
  finished.mutable_finished()->set_attempt(1);
  finished.mutable_finished()->set_succeeded(true);
  conn.Send(finished);
  const v1::ServerMessage again = conn.ReadUntil(IsAssignment);
  CHECK(again.assignment().job_id() == spot_job.job().job_id());
  CHECK(again.assignment().attempt() == 2);
}
