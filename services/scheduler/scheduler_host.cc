#include "services/scheduler/scheduler_host.h"

#include <spdlog/spdlog.h>

#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "services/common/grpc_status.h"

namespace tessera::scheduler_host {
namespace {

v1::ServerMessage CancelMessage(int64_t job_id, uint32_t attempt, const std::string& reason) {
  v1::ServerMessage m;
  m.mutable_cancel()->set_job_id(job_id);
  m.mutable_cancel()->set_attempt(attempt);
  m.mutable_cancel()->set_reason(reason);
  return m;
}

// One report covers about a second; anything beyond an hour of 64 GPUs is not a measurement.
constexpr int64_t kMaxGpuMsPerReport = 64LL * 3'600'000;

bool PlausibleUsage(const v1::UsageReport& usage) {
  return usage.job_id() > 0 && usage.attempt() > 0 && usage.seq() >= 1 && usage.seq() <= static_cast<uint64_t>(INT64_MAX) &&
         usage.gpu_ms() >= 0 && usage.gpu_ms() <= kMaxGpuMsPerReport;
}

v1::ServerMessage UsageAckMessage(const v1::UsageReport& usage, bool accepted) {
  v1::ServerMessage ack;
  ack.mutable_usage_ack()->set_job_id(usage.job_id());
  ack.mutable_usage_ack()->set_attempt(usage.attempt());
  ack.mutable_usage_ack()->set_through_seq(usage.seq());
  ack.mutable_usage_ack()->set_accepted(accepted);
  return ack;
}

}  // namespace

SchedulerHost::SchedulerHost(store::Database& db, const Clock& clock, SchedulerOptions options)
    : db_(db), clock_(clock), options_(options), repo_(db) {}

SchedulerHost::~SchedulerHost() { Stop(); }

absl::Status SchedulerHost::Start(int64_t epoch) {
  std::lock_guard lifecycle(lifecycle_mu_);
  if (running_) return absl::OkStatus();
  repo_.set_epoch(epoch);
  stop_ = false;
  {
    std::lock_guard lock(wake_mu_);
    stopping_ = false;
  }
  wait_reasons_.clear();
  // Recovery: every worker that may hold a lease gets a lease clock from now; those that do not
  // reconnect in time are expired and their jobs requeued.
  absl::StatusOr<std::vector<int64_t>> leased = repo_.WorkersWithLeases();
  if (!leased.ok()) return leased.status();
  for (int64_t id : *leased) registry_.Track(id, clock_.NowMs());
  listener_ = std::make_unique<store::NotificationListener>(
      db_.url(), std::vector<std::string>{"tessera_jobs", "tessera_cancels"},
      [this](const std::string& channel, const std::string& payload) { OnNotification(channel, payload); });
  ingest_thread_ = std::thread([this] { IngestLoop(); });
  match_thread_ = std::thread([this] { MatchLoop(); });
  lease_thread_ = std::thread([this] { LeaseLoop(); });
  running_ = true;
  return absl::OkStatus();
}

void SchedulerHost::Stop() {
  std::lock_guard lifecycle(lifecycle_mu_);
  if (!running_.exchange(false)) return;
  stop_ = true;
  {
    std::lock_guard lock(wake_mu_);
    stopping_ = true;
  }
  wake_cv_.notify_all();
  inbound_cv_.notify_all();
  for (std::thread* t : {&ingest_thread_, &match_thread_, &lease_thread_}) {
    if (t->joinable()) t->join();
  }
  listener_.reset();
  registry_.CloseAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "scheduler stepped down; reconnect to the leader"));
  std::lock_guard lock(inbound_mu_);
  inbound_.clear();
}

void SchedulerHost::OnMessage(const std::shared_ptr<WorkerSession>& session, v1::WorkerMessage message) {
  if (!running_) {
    session->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "this scheduler is a standby; connect to the leader"));
    return;
  }
  {
    std::lock_guard lock(inbound_mu_);
    if (inbound_.size() >= options_.max_inbound_messages) {
      session->Close(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "scheduler inbound queue is full; reconnect later"));
      return;
    }
    inbound_.push_back({session, std::move(message)});
  }
  inbound_cv_.notify_one();
}

void SchedulerHost::OnClosed(const std::shared_ptr<WorkerSession>& session) { registry_.Detach(session); }

void SchedulerHost::WakeMatcher() {
  {
    std::lock_guard lock(wake_mu_);
    wake_ = true;
  }
  wake_cv_.notify_one();
}

void SchedulerHost::OnNotification(const std::string& channel, const std::string& payload) {
  if (channel == "tessera_cancels") {
    std::istringstream in(payload);
    int64_t job_id = 0, worker_id = 0;
    uint32_t attempt = 0;
    if (in >> job_id >> attempt >> worker_id) {
      if (auto session = registry_.SessionOf(worker_id)) session->Send(CancelMessage(job_id, attempt, "cancelled by the customer"));
      registry_.Release(worker_id, job_id, attempt);
    }
  }
  WakeMatcher();
}

void SchedulerHost::IngestLoop() {
  while (!stop_) {
    std::vector<Inbound> batch;
    {
      std::unique_lock lock(inbound_mu_);
      inbound_cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return !inbound_.empty() || stop_; });
      while (!inbound_.empty() && batch.size() < options_.max_ingest_batch) {
        batch.push_back(std::move(inbound_.front()));
        inbound_.pop_front();
      }
    }
    if (!batch.empty()) ProcessBatch(batch);
  }
}

void SchedulerHost::ProcessBatch(std::vector<Inbound>& batch) {
  const int64_t now_ms = clock_.NowMs();
  Segment segment;
  for (Inbound& in : batch) {
    v1::WorkerMessage& m = in.message;
    if (m.has_hello()) {
      FlushSegment(segment);  // keep each stream's order: what came before the hello first
      HandleHello(in.session, m.hello());
      continue;
    }
    const int64_t worker_id = in.session->worker_id();
    if (worker_id == 0) {
      in.session->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "the first message on a stream must be hello"));
      continue;
    }
    registry_.Touch(worker_id, now_ms);
    switch (m.body_case()) {
      case v1::WorkerMessage::kStarted:
        segment.events.started.emplace_back(worker_id, m.started());
        break;
      case v1::WorkerMessage::kProgress:
        segment.events.progress.emplace_back(worker_id, m.progress());
        break;
      case v1::WorkerMessage::kUsage:
        if (!PlausibleUsage(m.usage())) {
          in.session->Send(UsageAckMessage(m.usage(), false));  // refused at the edge, never stored
          break;
        }
        segment.usage.push_back({.worker_id = worker_id, .report = m.usage()});
        segment.usage_sessions.push_back(in.session);
        break;
      case v1::WorkerMessage::kFinished:
        segment.events.finished.emplace_back(worker_id, m.finished());
        segment.finished_sessions.push_back(in.session);
        break;
      default:
        break;  // heartbeat: the touch above is all it does
    }
  }
  FlushSegment(segment);
}

void SchedulerHost::FlushSegment(Segment& segment) {
  if (segment.empty()) return;
  if (!segment.usage.empty()) {
    absl::StatusOr<std::vector<UsageOutcome>> outcomes = repo_.IngestUsage(segment.usage);
    if (!outcomes.ok()) {
      // Nothing was acknowledged: closing the streams makes the agents reconnect and resend.
      spdlog::error("usage ingest failed: {}", outcomes.status().ToString());
      for (auto& s : segment.usage_sessions) s->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "usage not stored; resend"));
    } else {
      for (size_t i = 0; i < outcomes->size(); ++i) {
        segment.usage_sessions[i]->Send(UsageAckMessage(segment.usage[i].report, (*outcomes)[i].stored));
      }
    }
  }
  const bool state_changes = !segment.events.started.empty() || !segment.events.progress.empty() || !segment.events.finished.empty();
  if (state_changes) {
    absl::StatusOr<std::vector<std::pair<int64_t, uint32_t>>> finished = repo_.ApplyStateEvents(segment.events);
    if (!finished.ok()) {
      spdlog::error("job events failed: {}", finished.status().ToString());
      for (auto& s : segment.finished_sessions) s->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "result not stored; resend"));
    } else {
      for (size_t i = 0; i < segment.events.finished.size(); ++i) {
        const auto& [worker_id, f] = segment.events.finished[i];
        registry_.Release(worker_id, f.job_id(), f.attempt());
        v1::ServerMessage ack;
        ack.mutable_finished_ack()->set_job_id(f.job_id());
        ack.mutable_finished_ack()->set_attempt(f.attempt());
        segment.finished_sessions[i]->Send(ack);
      }
      if (!segment.events.finished.empty()) WakeMatcher();
    }
  }
  segment = Segment{};
}

void SchedulerHost::HandleHello(const std::shared_ptr<WorkerSession>& session, const v1::Hello& hello) {
  if (session->worker_id() != 0) {
    session->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "hello was already sent on this stream"));
    return;
  }
  auto activated = repo_.ActivateWorker(hello.worker_id());
  if (!activated.ok()) {
    session->Close(ToGrpcStatus(activated.status()));
    return;
  }
  auto& [record, live] = *activated;
  std::set<std::pair<int64_t, uint32_t>> running;
  for (const v1::RunningJob& r : hello.running()) running.emplace(r.job_id(), r.attempt());

  // Reconcile what the worker runs with the live leases: keep the common ones, resend leases it
  // never started, requeue those it lost (it restarted), cancel those no longer leased to it.
  std::vector<LiveAssignment> keep, resend;
  std::vector<std::pair<int64_t, uint32_t>> lost;
  for (LiveAssignment& a : live) {
    const bool has = running.erase({a.job_id, a.attempt}) > 0;
    if (has) {
      keep.push_back(std::move(a));
    } else if (a.running) {
      lost.emplace_back(a.job_id, a.attempt);
    } else {
      resend.push_back(std::move(a));
    }
  }
  if (!lost.empty()) {
    if (auto r = repo_.Requeue(lost, {}, "worker restarted without the job"); !r.ok()) {
      session->Close(ToGrpcStatus(r.status()));
      return;
    }
  }
  session->set_worker_id(record.worker_id);
  std::vector<LiveAssignment> busy = keep;
  busy.insert(busy.end(), resend.begin(), resend.end());
  registry_.Attach(record, busy, session, clock_.NowMs());

  v1::ServerMessage welcome;
  welcome.mutable_welcome()->set_worker_id(record.worker_id);
  welcome.mutable_welcome()->set_lease_timeout_ms(options_.lease_timeout_ms);
  welcome.mutable_welcome()->set_heartbeat_interval_ms(std::max<int64_t>(100, options_.lease_timeout_ms / 4));
  session->Send(welcome);
  for (const auto& [job_id, attempt] : running) session->Send(CancelMessage(job_id, attempt, "lease is no longer live"));
  for (const LiveAssignment& a : resend) {
    v1::ServerMessage m;
    *m.mutable_assignment() = a.message;
    session->Send(m);
  }
  spdlog::info("worker {} connected ({} GPUs, {} jobs kept, {} resent, {} requeued)", record.worker_id,
               record.gpus.size(), keep.size(), resend.size(), lost.size());
  WakeMatcher();
}

void SchedulerHost::MatchLoop() {
  while (true) {
    {
      std::unique_lock lock(wake_mu_);
      wake_cv_.wait_for(lock, std::chrono::milliseconds(options_.match_interval_ms), [&] { return wake_ || stopping_; });
      if (stopping_) return;
      wake_ = false;
    }
    MatchRound();
  }
}

void SchedulerHost::MatchRound() {
  absl::StatusOr<std::vector<scheduler::PendingJob>> jobs = repo_.LoadQueuedJobs(options_.max_queued_jobs_per_round);
  if (!jobs.ok()) {
    spdlog::warn("matching: {}", jobs.status().ToString());
    return;
  }
  if (jobs->empty()) return;
  const scheduler::MatchResult result = scheduler::Match({.jobs = *std::move(jobs), .workers = registry_.Offers()});

  if (!result.placements.empty()) {
    absl::StatusOr<std::vector<LiveAssignment>> assigned = repo_.PersistPlacements(result.placements);
    if (!assigned.ok()) {
      spdlog::warn("persisting placements: {}", assigned.status().ToString());
    } else {
      std::vector<std::pair<int64_t, uint32_t>> orphaned;
      for (const LiveAssignment& a : *assigned) {
        scheduler::Placement p{.job_id = a.job_id, .worker_id = a.worker_id, .gpu_indexes = a.gpu_indexes, .price_utok_per_gpu_hour = 0};
        if (!registry_.Reserve(p, a.attempt)) {
          // The worker's lease expired while the round was being written: nobody would ever
          // expire this new lease, so return the job to the queue now.
          orphaned.emplace_back(a.job_id, a.attempt);
          continue;
        }
        v1::ServerMessage m;
        *m.mutable_assignment() = a.message;
        if (auto session = registry_.SessionOf(a.worker_id)) session->Send(m);
      }
      if (!orphaned.empty()) {
        if (auto r = repo_.Requeue(orphaned, {}, "worker went away before the assignment was sent"); !r.ok()) {
          spdlog::error("requeueing orphaned assignments: {}", r.status().ToString());
        }
      }
    }
  }
  // Persist only the reasons that changed, so that a long queue costs nothing per round.
  std::vector<scheduler::Waiting> changed;
  std::map<int64_t, std::string> reasons;
  for (const scheduler::Waiting& w : result.waiting) {
    auto it = wait_reasons_.find(w.job_id);
    if (it == wait_reasons_.end() || it->second != w.reason) changed.push_back(w);
    reasons[w.job_id] = w.reason;
  }
  wait_reasons_ = std::move(reasons);
  if (absl::Status s = repo_.UpdateWaitReasons(changed); !s.ok()) spdlog::warn("wait reasons: {}", s.ToString());
}

void SchedulerHost::LeaseLoop() {
  int64_t last_touch_ms = clock_.NowMs();
  const auto period = std::chrono::milliseconds(std::clamp<int64_t>(options_.lease_timeout_ms / 8, 20, 250));
  while (!stop_) {
    std::this_thread::sleep_for(period);
    const int64_t now_ms = clock_.NowMs();
    auto expired = registry_.TakeExpired(now_ms, options_.lease_timeout_ms);
    if (!expired.empty()) {
      std::vector<int64_t> ids;
      for (const auto& [id, session] : expired) ids.push_back(id);
      auto requeued = repo_.Requeue({}, ids, absl::StrCat("lease expired (worker silent for more than ", options_.lease_timeout_ms, " ms)"));
      if (!requeued.ok()) {
        spdlog::error("expiring leases: {}", requeued.status().ToString());
        for (int64_t id : ids) registry_.Track(id, now_ms - options_.lease_timeout_ms);  // retry next tick
        continue;
      }
      for (const auto& [id, session] : expired) {
        spdlog::info("worker {} lease expired; {} job(s) requeued", id, requeued->size());
        if (session) session->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "lease expired"));
      }
      WakeMatcher();
    }
    if (now_ms - last_touch_ms >= 5'000) {
      last_touch_ms = now_ms;
      if (absl::Status s = repo_.TouchWorkers(registry_.ConnectedWorkers()); !s.ok()) spdlog::warn("{}", s.ToString());
    }
  }
}

}  // namespace tessera::scheduler_host
