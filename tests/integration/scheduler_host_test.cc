// The scheduler host over the real server: two-sided requirements, preemption and wait reasons,
// each written to PostgreSQL and pushed down the worker streams.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <optional>
#include <mutex>
#include <thread>

#include "services/scheduler/scheduler_repository.h"
#include "services/store/notification_listener.h"
#include "services/store/notifications.h"
#include "tests/integration/running_server.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

bool IsAssignment(const v1::ServerMessage& m) { return m.has_assignment(); }

// The job once its wait reason is set (and, if given, starts with `prefix`), or after 5 s.
v1::Job WaitForReason(RunningServer& s, int64_t job_id, const std::string& prefix = "") {
  v1::GetJobRequest get;
  get.set_job_id(job_id);
  v1::Job job;
  for (int i = 0; i < 100 && (job.wait_reason().empty() || !job.wait_reason().starts_with(prefix)); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    REQUIRE(s.jobs->GetJob(Ctx().get(), get, &job).ok());
  }
  return job;
}

}  // namespace

TEST_CASE("a job lands only where both its requirements and the provider's policy hold", "[integration][scheduler]") {
  // The workers' streams send no heartbeats: a 2 s lease expired under a loaded sanitized run, and
  // the market, its workers gone, said "no worker is registered" instead of the memory reason.
  RunningServer s([](server::ServerOptions& o) { o.scheduler.lease_timeout_ms = 60'000; });
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
  CHECK_THAT(waiting.wait_reason(), Catch::StartsWith("no GPU has 200000 MiB of memory (the most is "));

  // The policy is stored and listed; a hello may replace it (the provider reconfigured the agent).
  v1::ListWorkersResponse listed;
  REQUIRE(s.workers->ListWorkers(Ctx().get(), {}, &listed).ok());
  REQUIRE(listed.workers_size() == 3);
  const v1::Worker& first = listed.workers(2);  // newest first: the first registered is last
  CHECK(first.worker_id() == refuses);
  REQUIRE(first.policy().denied_accounts_size() == 1);
  CHECK(first.policy().denied_accounts(0) == "acme");
  CHECK(first.reputation() == 500);
}

TEST_CASE("a provider's new policy arrives with the hello and applies at once", "[integration][scheduler]") {
  RunningServer s([](server::ServerOptions& o) { o.scheduler.lease_timeout_ms = 60'000; });  // no heartbeats
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
  RunningServer s([](server::ServerOptions& o) { o.scheduler.lease_timeout_ms = 60'000; });  // no heartbeats
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

TEST_CASE("a spread job holds a lease on each of its workers and ends with the last of them", "[integration][scheduler]") {
  RunningServer s([](server::ServerOptions& o) { o.scheduler.lease_timeout_ms = 60'000; });  // no heartbeats
  CreateFundedMarket(s.channel);
  const int64_t cheap = RegisterWorker(s.channel, 1'000'000, 2, "GPU-spread-a");
  const int64_t dear = RegisterWorker(s.channel, 2'000'000, 2, "GPU-spread-b");
  WorkerConnection a(s.channel, cheap), b(s.channel, dear);

  auto request = SleepRequest("spread", 3'000'000);
  request.mutable_spec()->set_gpu_count(3);
  request.mutable_spec()->set_placement(v1::GPU_PLACEMENT_SPREAD);
  v1::SubmitJobResponse submitted;
  REQUIRE(s.Submit(request, &submitted).ok());
  const int64_t job_id = submitted.job().job_id();
  const v1::Assignment on_a = a.ReadUntil(IsAssignment).assignment();
  const v1::Assignment on_b = b.ReadUntil(IsAssignment).assignment();
  CHECK(on_a.job_id() == job_id);
  CHECK(on_b.job_id() == job_id);
  CHECK(on_a.gpu_indexes_size() == 2);  // the cheaper worker first, whole
  CHECK(on_b.gpu_indexes_size() == 1);
  CHECK(on_a.node_rank() == 0);
  CHECK(on_b.node_rank() == 1);
  CHECK(std::vector<int64_t>(on_b.node_worker_ids().begin(), on_b.node_worker_ids().end()) == std::vector<int64_t>{cheap, dear});
  CHECK(on_a.price_utok_per_gpu_hour() == 1'000'000);  // each worker is paid its own ask
  CHECK(on_b.price_utok_per_gpu_hour() == 2'000'000);

  // Each worker numbers its own usage from 1; both reports are stored.
  auto usage = [&](WorkerConnection& w, int64_t gpu_ms) {
    v1::WorkerMessage m;
    m.mutable_usage()->set_job_id(job_id);
    m.mutable_usage()->set_attempt(1);
    m.mutable_usage()->set_seq(1);
    m.mutable_usage()->set_gpu_ms(gpu_ms);
    w.Send(m);
    CHECK(w.ReadUntil([](const v1::ServerMessage& in) { return in.has_usage_ack(); }).usage_ack().accepted());
  };
  // 18 s of use needs a lease at least that old: the server refuses over-claims.
  s.db.Scalar("UPDATE assignments SET created_at = now() - interval '1 minute' WHERE job_id = " + std::to_string(job_id));
  usage(a, 36'000);  // 2 GPUs × 18 s at 1 token per GPU-hour
  usage(b, 18'000);  // 1 GPU × 18 s at 2 tokens
  auto finish = [&](WorkerConnection& w) {
    v1::WorkerMessage m;
    m.mutable_finished()->set_job_id(job_id);
    m.mutable_finished()->set_attempt(1);
    m.mutable_finished()->set_succeeded(true);
    w.Send(m);
    w.ReadUntil([](const v1::ServerMessage& in) { return in.has_finished_ack(); });
  };
  const std::string id = std::to_string(job_id);
  finish(a);
  CHECK(s.db.Scalar("SELECT state FROM jobs WHERE job_id = " + id) == "ASSIGNED");  // one worker still runs it
  finish(b);
  CHECK(s.db.Scalar("SELECT state FROM jobs WHERE job_id = " + id) == "SUCCEEDED");

  v1::GetJobInvoiceRequest invoice_request;
  invoice_request.set_job_id(job_id);
  v1::Invoice invoice;
  for (int i = 0; i < 100 && !invoice.final(); ++i) {
    REQUIRE(s.billing->GetJobInvoice(Ctx().get(), invoice_request, &invoice).ok());
    if (!invoice.final()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(invoice.final());
  REQUIRE(invoice.lines_size() == 2);
  CHECK(invoice.lines(0).worker_id() == cheap);
  CHECK(invoice.lines(0).charge_utok() == 10'000);
  CHECK(invoice.lines(1).worker_id() == dear);
  CHECK(invoice.lines(1).charge_utok() == 10'000);
  CHECK(invoice.charged_utok() == 20'000);
  CHECK(s.db.Scalar("SELECT sum(balance_utok) FROM ledger_accounts") == "0");

  // A failure on one worker fails the job and cancels it on the other.
  auto second = SleepRequest("spread-3", 3'000'000);
  second.mutable_spec()->set_gpu_count(3);
  second.mutable_spec()->set_placement(v1::GPU_PLACEMENT_SPREAD);
  REQUIRE(s.Submit(second, &submitted).ok());
  const int64_t failing = submitted.job().job_id();
  auto is_failing = [&](const v1::ServerMessage& m) { return m.has_assignment() && m.assignment().job_id() == failing; };
  (void)a.ReadUntil(is_failing);
  (void)b.ReadUntil(is_failing);
  v1::WorkerMessage failed;
  failed.mutable_finished()->set_job_id(failing);
  failed.mutable_finished()->set_attempt(1);
  failed.mutable_finished()->set_succeeded(false);
  failed.mutable_finished()->mutable_result()->set_error("out of memory");
  b.Send(failed);
  const v1::ServerMessage cancel = a.ReadUntil([&](const v1::ServerMessage& m) { return m.has_cancel() && m.cancel().job_id() == failing; });
  CHECK(cancel.cancel().reason() == "the job failed on another of its workers");
  CHECK(s.db.Scalar("SELECT state FROM jobs WHERE job_id = " + std::to_string(failing)) == "FAILED");
  CHECK(s.db.Scalar("SELECT count(*) FROM assignments WHERE state = 'LIVE' AND job_id = " + std::to_string(failing)) == "0");
}

TEST_CASE("a spread job that loses one worker is requeued and cancelled on the others", "[integration][scheduler]") {
  RunningServer s;  // lease timeout 2 s
  CreateFundedMarket(s.channel);
  const int64_t first = RegisterWorker(s.channel, 1'000'000, 2, "GPU-lose-a");
  const int64_t second = RegisterWorker(s.channel, 2'000'000, 2, "GPU-lose-b");
  auto a = std::make_unique<WorkerConnection>(s.channel, first);
  WorkerConnection b(s.channel, second);
  auto request = SleepRequest("lose", 3'000'000);
  request.mutable_spec()->set_gpu_count(4);
  request.mutable_spec()->set_placement(v1::GPU_PLACEMENT_SPREAD);
  v1::SubmitJobResponse submitted;
  REQUIRE(s.Submit(request, &submitted).ok());
  (void)a->ReadUntil(IsAssignment);
  (void)b.ReadUntil(IsAssignment);

  a.reset();  // the first worker goes silent; the second keeps its lease alive
  std::atomic<bool> beating{true};
  std::thread heartbeats([&] {
    while (beating) {
      v1::WorkerMessage beat;
      beat.mutable_heartbeat();
      if (!b.stream->Write(beat)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  const v1::ServerMessage cancel = b.ReadUntil([](const v1::ServerMessage& m) { return m.has_cancel(); });
  beating = false;
  heartbeats.join();
  CHECK(cancel.cancel().job_id() == submitted.job().job_id());
  CHECK(cancel.cancel().reason() == "the job lost another of its workers; it is requeued");
  const std::string id = std::to_string(submitted.job().job_id());
  CHECK(s.db.Scalar("SELECT state FROM jobs WHERE job_id = " + id) == "QUEUED");
  CHECK(s.db.Scalar("SELECT count(*) FROM assignments WHERE state = 'ENDED' AND job_id = " + id) == "2");
  CHECK(s.db.Scalar("SELECT state FROM workers WHERE worker_id = " + std::to_string(first)) == "OFFLINE");
  CHECK(WaitForReason(s, submitted.job().job_id()).wait_reason() == "needs 4 matching GPUs in one region; the most any region has is 2");
}

TEST_CASE("a long-waiting gang job reserves a worker; smaller jobs wait behind it", "[integration][scheduler]") {
  RunningServer s([](server::ServerOptions& o) {
    o.scheduler.market.reserve_after_ms = 300;
    o.scheduler.tick_interval_ms = 100;
    o.scheduler.lease_timeout_ms = 60'000;  // the test sends no heartbeats
  });
  CreateFundedMarket(s.channel);
  const int64_t worker = RegisterWorker(s.channel, 1'000'000, 2, "GPU-reserve");
  WorkerConnection conn(s.channel, worker);
  v1::SubmitJobResponse small, gang, later;
  REQUIRE(s.Submit(SleepRequest("small", 2'000'000), &small).ok());
  REQUIRE(conn.ReadUntil(IsAssignment).assignment().job_id() == small.job().job_id());
  auto gang_request = SleepRequest("gang", 2'000'000);
  gang_request.mutable_spec()->set_gpu_count(2);
  REQUIRE(s.Submit(gang_request, &gang).ok());
  CHECK(WaitForReason(s, gang.job().job_id(), "holds").wait_reason() ==
        "holds a reservation on worker " + std::to_string(worker) + "; waiting for its GPUs to free");

  // The free GPU is held for the gang: a later single-GPU job does not take it.
  REQUIRE(s.Submit(SleepRequest("later", 2'000'000), &later).ok());
  CHECK(WaitForReason(s, later.job().job_id(), "waiting behind").wait_reason() ==
        "waiting behind reserved gang job " + std::to_string(gang.job().job_id()));

  v1::WorkerMessage finished;
  finished.mutable_finished()->set_job_id(small.job().job_id());
  finished.mutable_finished()->set_attempt(1);
  finished.mutable_finished()->set_succeeded(true);
  conn.Send(finished);
  const v1::Assignment next = conn.ReadUntil(IsAssignment).assignment();
  CHECK(next.job_id() == gang.job().job_id());  // the reservation is served first
  CHECK(next.gpu_indexes_size() == 2);
}

TEST_CASE("a spread job's communicator id travels from node rank 0 through the scheduler", "[integration][scheduler]") {
  RunningServer s([](server::ServerOptions& o) { o.scheduler.lease_timeout_ms = 60'000; });  // no heartbeats
  CreateFundedMarket(s.channel);
  const int64_t first = RegisterWorker(s.channel, 1'000'000, 2, "GPU-rdv-a");
  const int64_t second = RegisterWorker(s.channel, 2'000'000, 2, "GPU-rdv-b");
  WorkerConnection a(s.channel, first);
  auto b = std::make_unique<WorkerConnection>(s.channel, second);
  auto request = SleepRequest("rendezvous", 3'000'000);
  request.mutable_spec()->set_gpu_count(3);
  request.mutable_spec()->set_placement(v1::GPU_PLACEMENT_SPREAD);
  v1::SubmitJobResponse submitted;
  REQUIRE(s.Submit(request, &submitted).ok());
  const int64_t job_id = submitted.job().job_id();
  REQUIRE(a.ReadUntil(IsAssignment).assignment().node_rank() == 0);
  REQUIRE(b->ReadUntil(IsAssignment).assignment().node_rank() == 1);
  auto offer = [&](WorkerConnection& from, const std::string& id) {
    v1::WorkerMessage m;
    m.mutable_rendezvous_offer()->set_job_id(job_id);
    m.mutable_rendezvous_offer()->set_attempt(1);
    m.mutable_rendezvous_offer()->set_unique_id(id);
    from.Send(m);
  };
  auto is_rendezvous = [](const v1::ServerMessage& m) { return m.has_rendezvous(); };

  offer(a, std::string(128, 'x'));
  const v1::Rendezvous got = b->ReadUntil(is_rendezvous).rendezvous();
  CHECK(got.job_id() == job_id);
  CHECK(got.unique_id() == std::string(128, 'x'));
  CHECK(std::vector<uint32_t>(got.node_gpu_counts().begin(), got.node_gpu_counts().end()) == std::vector<uint32_t>{2, 1});

  // The first offer of an attempt is kept; node rank 1 cannot offer one.
  offer(a, std::string(128, 'y'));
  CHECK(b->ReadUntil(is_rendezvous).rendezvous().unique_id() == std::string(128, 'x'));
  scheduler_host::SchedulerRepository repo(s.db.store());
  v1::RendezvousOffer from_rank_one;
  from_rank_one.set_job_id(job_id);
  from_rank_one.set_attempt(1);
  from_rank_one.set_unique_id("z");
  CHECK(repo.RecordRendezvous(second, from_rank_one).status().code() == absl::StatusCode::kPermissionDenied);
  offer(a, std::string(300, 'w'));  // over 256 bytes: ignored at the edge
  CHECK(s.db.Scalar("SELECT count(*) FROM job_rendezvous") == "1");
  CHECK(s.db.Scalar("SELECT encode(unique_id, 'escape') = repeat('x', 128) FROM job_rendezvous") == "t");

  // A reconnecting node gets it again after its hello.
  b.reset();
  WorkerConnection again(s.channel, second, [&](v1::Hello& hello) {
    v1::RunningJob* running = hello.add_running();
    running->set_job_id(job_id);
    running->set_attempt(1);
  });
  CHECK(again.ReadUntil(is_rendezvous).rendezvous().unique_id() == std::string(128, 'x'));
}

TEST_CASE("cancels, extensions and quarantines notified while the scheduler was not listening are applied once it listens",
          "[integration][scheduler][listen]") {
  RunningServer s([](server::ServerOptions& o) { o.scheduler.lease_timeout_ms = 60'000; });  // no heartbeats
  CreateFundedMarket(s.channel);
  const int64_t worker = RegisterWorker(s.channel, 1'000'000, 2, "GPU-gap");
  WorkerConnection conn(s.channel, worker);
  v1::SubmitJobResponse cancelled, extended;
  REQUIRE(s.Submit(SleepRequest("to-cancel", 2'000'000), &cancelled).ok());
  REQUIRE(s.Submit(SleepRequest("to-extend", 2'000'000), &extended).ok());
  for (int i = 0; i < 2; ++i) {
    const v1::ServerMessage assigned = conn.ReadUntil(IsAssignment);
    v1::WorkerMessage started;
    started.mutable_started()->set_job_id(assigned.assignment().job_id());
    started.mutable_started()->set_attempt(1);
    conn.Send(started);
  }
  const int64_t other = RegisterWorker(s.channel, 1'000'000, 1, "GPU-gap-other");
  WorkerConnection quarantined(s.channel, other);

  // Each change as its RPC commits it, but with its NOTIFY lost (as while the listener reconnects).
  const std::string cancel_id = std::to_string(cancelled.job().job_id());
  const std::string extend_id = std::to_string(extended.job().job_id());
  s.db.Scalar("UPDATE jobs SET state = 'CANCELLED' WHERE job_id = " + cancel_id);
  s.db.Scalar("UPDATE assignments SET state = 'ENDED', end_reason = 'cancelled', ended_at = now() WHERE job_id = " + cancel_id);
  s.db.Scalar("UPDATE jobs SET max_duration_ms = 120000 WHERE job_id = " + extend_id);
  s.db.Scalar("UPDATE workers SET state = 'QUARANTINED' WHERE worker_id = " + std::to_string(other));
  // The listener's connection drops; it reconnects, LISTENs again, and reads back what it missed.
  REQUIRE(s.db.Scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                      " WHERE query LIKE '%LISTEN%tessera_quarantine%' AND pid <> pg_backend_pid()") == "1");

  // Without the read-back these never come: a watchdog ends the streams rather than hang the test.
  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 300 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!done) {
      conn.context.TryCancel();
      quarantined.context.TryCancel();
    }
  });
  const v1::ServerMessage cancel = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_cancel() || m.has_extended(); });
  const v1::ServerMessage extend = conn.ReadUntil([](const v1::ServerMessage& m) { return m.has_cancel() || m.has_extended(); });
  v1::ServerMessage ignored;
  while (quarantined.stream->Read(&ignored)) {
  }
  const grpc::Status ended = quarantined.stream->Finish();
  done = true;
  watchdog.join();
  const v1::ServerMessage& c = cancel.has_cancel() ? cancel : extend;
  const v1::ServerMessage& x = cancel.has_extended() ? cancel : extend;
  REQUIRE(c.has_cancel());
  CHECK(c.cancel().job_id() == cancelled.job().job_id());
  REQUIRE(x.has_extended());
  CHECK(x.extended().job_id() == extended.job().job_id());
  CHECK(x.extended().max_duration_ms() == 120'000);
  CHECK(ended.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(ended.error_message(), Catch::Contains("is quarantined"));
}

namespace {

// Records what the host reports, for the test to read once the host has done its work.
class RecordingObserver final : public scheduler_host::HostObserver {
 public:
  void OnRound(const scheduler_host::RoundReport& round) override {
    std::lock_guard lock(mu_);
    placements_ += round.placements;
    ++rounds_;
    max_queued_ = std::max(max_queued_, round.queued_jobs);
    last_queued_ = round.queued_jobs;
  }
  void OnIngestBatch(const scheduler_host::IngestReport& batch) override {
    std::lock_guard lock(mu_);
    ingested_ += batch.messages;
  }
  void OnLeasesExpired(size_t workers, size_t jobs_requeued) override {
    std::lock_guard lock(mu_);
    expired_workers_ += workers;
    requeued_ += jobs_requeued;
  }
  size_t placements() { std::lock_guard lock(mu_); return placements_; }
  size_t rounds() { std::lock_guard lock(mu_); return rounds_; }
  size_t max_queued() { std::lock_guard lock(mu_); return max_queued_; }
  size_t last_queued() { std::lock_guard lock(mu_); return last_queued_; }
  size_t ingested() { std::lock_guard lock(mu_); return ingested_; }
  size_t expired_workers() { std::lock_guard lock(mu_); return expired_workers_; }
  size_t requeued() { std::lock_guard lock(mu_); return requeued_; }

 private:
  std::mutex mu_;
  size_t placements_ = 0, rounds_ = 0, max_queued_ = 0, last_queued_ = 0, ingested_ = 0, expired_workers_ = 0, requeued_ = 0;
};

}  // namespace

TEST_CASE("the host reports its rounds, ingest batches and lease expiries to its observer", "[integration][scheduler][observer]") {
  RecordingObserver observer;
  RunningServer s([&](server::ServerOptions& o) {
    o.scheduler_observer = &observer;
    o.scheduler.lease_timeout_ms = 1'500;
  });
  CreateFundedMarket(s.channel);
  const int64_t worker = RegisterWorker(s.channel, 1'000'000, 1, "GPU-observed");
  v1::SubmitJobResponse first, second;
  REQUIRE(s.Submit(SleepRequest("observed-1", 2'000'000), &first).ok());
  REQUIRE(s.Submit(SleepRequest("observed-2", 2'000'000), &second).ok());
  {
    WorkerConnection conn(s.channel, worker);
    const v1::ServerMessage assigned = conn.ReadUntil(IsAssignment);
    v1::WorkerMessage started;
    started.mutable_started()->set_job_id(assigned.assignment().job_id());
    started.mutable_started()->set_attempt(1);
    conn.Send(started);
    for (int i = 0; i < 100 && observer.ingested() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The stream is gone: after 1.5 s of silence its lease expires and the running job is requeued.
  for (int i = 0; i < 200 && observer.expired_workers() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(observer.placements() == 1);   // one GPU: the first job placed, the second waited
  CHECK(observer.max_queued() >= 1);   // the second job, queued behind it
  CHECK(observer.rounds() > 0);
  CHECK(observer.ingested() >= 1);     // the JobStarted, in a batch
  CHECK(observer.expired_workers() == 1);
  CHECK(observer.requeued() == 1);
  CHECK(s.db.Scalar("SELECT count(*) FROM assignments WHERE end_reason LIKE 'lease expired%'") == "1");
}

TEST_CASE("queued jobs the host cannot load wait for the periodic reconcile instead of spinning its loop",
          "[integration][scheduler][observer]") {
  // Before the fix a failed load asked for a reconcile at once: the queue's ids still read, the
  // jobs still failed to load, and the loop went round as fast as PostgreSQL answered.
  RecordingObserver observer;
  RunningServer s([&](server::ServerOptions& o) {
    o.scheduler_observer = &observer;
    o.scheduler.lease_timeout_ms = 60'000;  // rounds every 250 ms when idle
    o.scheduler.reconcile_interval_ms = 500;
  });
  CreateFundedMarket(s.channel);
  v1::SubmitJobResponse submitted;
  REQUIRE(s.Submit(SleepRequest("unloadable", 2'000'000), &submitted).ok());  // queued, no worker
  const std::string id = std::to_string(submitted.job().job_id());
  // The job leaves the queue the host knows, and comes back while its account cannot be read: the
  // reconcile finds its id (jobs alone) but cannot load it (jobs joined with accounts).
  s.db.Scalar("UPDATE jobs SET state = 'RUNNING' WHERE job_id = " + id + " RETURNING 1");
  for (int i = 0; i < 150 && observer.last_queued() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(observer.last_queued() == 0);  // a reconcile dropped it from the market
  s.db.Scalar("ALTER TABLE accounts RENAME TO accounts_away; UPDATE jobs SET state = 'QUEUED' WHERE job_id = " + id +
              " RETURNING 1");
  const size_t rounds_before = observer.rounds();
  std::this_thread::sleep_for(std::chrono::milliseconds(2'000));
  const size_t rounds = observer.rounds() - rounds_before;
  s.db.Scalar("ALTER TABLE accounts_away RENAME TO accounts; SELECT 1");
  INFO("scheduling rounds in 2 s while the job could not be loaded: " << rounds);
  CHECK(rounds < 40);  // a round every 250 ms, and one per reconcile: about 12
  // Once it can be read, the next reconcile loads it.
  for (int i = 0; i < 150 && observer.last_queued() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(observer.last_queued() == 1);
}

TEST_CASE("after a refused message a worker's stream is read no further, so its usage is stored without gaps",
          "[integration][scheduler][overload]") {
  // A one-message inbound queue refuses most of a flood. Before the fix, a report after a refused
  // one could still be stored (the stream was read on while it closed); the refused one, resent
  // after the reconnect, then came "before the last stored seq" and flagged an honest worker.
  RunningServer s([](server::ServerOptions& o) {
    o.scheduler.max_inbound_messages = 1;
    o.scheduler.lease_timeout_ms = 60'000;  // no heartbeats
  });
  CreateFundedMarket(s.channel);
  const int64_t worker = RegisterWorker(s.channel, 1'000'000, 1, "GPU-flood");
  v1::SubmitJobResponse submitted;
  REQUIRE(s.Submit(SleepRequest("flooded", 2'000'000), &submitted).ok());
  const int64_t job_id = submitted.job().job_id();
  grpc::Status ended;
  {
    WorkerConnection conn(s.channel, worker);
    REQUIRE(conn.ReadUntil(IsAssignment).assignment().job_id() == job_id);
    for (uint64_t seq = 1; seq <= 300; ++seq) {
      v1::WorkerMessage usage;
      usage.mutable_usage()->set_job_id(job_id);
      usage.mutable_usage()->set_attempt(1);
      usage.mutable_usage()->set_seq(seq);
      usage.mutable_usage()->set_gpu_ms(0);  // no over-claim however fast the flood
      usage.mutable_usage()->set_measured_at_ms(SystemClock().NowMs());
      if (!conn.stream->Write(Signed(usage, worker))) break;  // the server ended the stream
    }
    conn.stream->WritesDone();
    v1::ServerMessage in;
    while (conn.stream->Read(&in)) {
    }
    ended = conn.stream->Finish();
  }
  CHECK(ended.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  // What was queued before the refusal is still being ingested: read once it has settled.
  const std::string query = "SELECT count(*) || ' ' || coalesce(max(seq), 0) FROM usage_reports WHERE job_id = " + std::to_string(job_id);
  std::string stored = s.db.Scalar(query), before;
  for (int i = 0; i < 50 && stored != before; ++i) {
    before = stored;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stored = s.db.Scalar(query);
  }
  const int count = std::stoi(stored.substr(0, stored.find(' ')));
  const int last = std::stoi(stored.substr(stored.find(' ') + 1));
  CHECK(count == last);  // seqs 1..last, no gap
  CHECK(count < 300);    // the flood was refused part way
  CHECK(s.db.Scalar("SELECT count(*) FROM fraud_signals") == "0");
}

TEST_CASE("a submit's NOTIFY, written by the batched SQL, decodes as the job it queued", "[integration][scheduler][listen]") {
  RunningServer s;
  CreateFundedMarket(s.channel);
  std::mutex mu;
  std::condition_variable heard_cv;
  std::vector<std::optional<store::Notification>> heard;
  bool listening = false;
  store::NotificationListener listener(
      s.db.url(), {store::kJobsChannel},
      [&](const std::string& channel, const std::string& payload) {
        std::lock_guard lock(mu);
        heard.push_back(store::DecodeNotification(channel, payload));
        heard_cv.notify_all();
      },
      [&] {
        std::lock_guard lock(mu);
        listening = true;
        heard_cv.notify_all();
      });
  {
    std::unique_lock lock(mu);
    REQUIRE(heard_cv.wait_for(lock, std::chrono::seconds(10), [&] { return listening; }));
  }
  v1::SubmitJobResponse submitted;
  REQUIRE(s.Submit(SleepRequest("notified", 2'000'000), &submitted).ok());
  std::unique_lock lock(mu);
  REQUIRE(heard_cv.wait_for(lock, std::chrono::seconds(10), [&] { return !heard.empty(); }));
  REQUIRE(heard.front().has_value());
  CHECK(*heard.front() == store::Notification(store::JobSubmitted{.job_id = submitted.job().job_id()}));
}
