// The host's life (start as leader, stop) and what comes in: worker streams, NOTIFYs, events for
// the scheduling thread. Ingest, hellos, the scheduling loop, the market's sync with the store and
// the proof-of-GPU re-checks have files of their own (host_*.cc).
#include "services/scheduler/scheduler_host.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "services/common/grpc_status.h"

namespace tessera::scheduler_host {

SchedulerHost::SchedulerHost(HostParts parts, SchedulerOptions options)
    : notifications_(parts.notifications),
      challenges_(parts.challenges),
      clock_(parts.clock),
      random_(parts.random),
      observer_(parts.observer),
      options_(options),
      repo_(parts.store) {
  if (options_.verifier.enabled && challenges_ != nullptr) {
    verifier_ = std::make_unique<GpuVerifier>(*challenges_, clock_, random_, options_.verifier,
                                              [this](int64_t worker_id, v1::WorkerState state) {
                                                Post([&](MarketEvents& e) { e.verified.emplace_back(worker_id, state); });
                                              });
  }
}

SchedulerHost::~SchedulerHost() { Stop(); }

absl::Status SchedulerHost::Start(int64_t epoch, HostThreads threads) {
  std::lock_guard lifecycle(lifecycle_mu_);
  if (running_) return absl::OkStatus();
  if (options_.verifier.enabled && verifier_ == nullptr) {
    return absl::FailedPreconditionError("GPU verification is enabled but the host was given no challenge store");
  }
  if (options_.verifier.enabled && threads == HostThreads::kCaller) {
    // The verifier checks answers on a thread of its own: a caller-driven run would not be deterministic.
    return absl::FailedPreconditionError("a caller-driven scheduler host runs without GPU verification (options.verifier.enabled)");
  }
  threads_ = threads;
  repo_.set_epoch(epoch);
  repo_.ForgetLeases();  // another leader may have ingested since this one last did
  stop_ = false;
  {
    std::lock_guard lock(events_mu_);
    stopping_ = false;
    events_ = MarketEvents{};
  }
  wait_reasons_.clear();
  // Recovery: every worker that may hold a lease gets a lease clock from now; those that do not
  // reconnect in time are expired and their jobs requeued. No worker is connected yet, so the
  // rebuild places nothing.
  scheduler::Decisions none;
  if (absl::Status s = Rebuild(none); !s.ok()) return s;
  market_stale_ = false;
  read_back_pending_ = false;  // the listener asks for it once its LISTENs are in place
  recheck_at_ms_.clear();
  if (verifier_ != nullptr) {
    if (absl::Status s = verifier_->Start(); !s.ok()) return s;
  }
  const int64_t now_ms = clock_.NowMs();
  due_ = {.tick_ms = now_ms, .reconcile_ms = now_ms + options_.reconcile_interval_ms, .touch_ms = now_ms + kTouchWorkersEveryMs,
          .reputation_ms = now_ms + options_.reputation_interval_ms};
  listener_ = notifications_.Listen(
      store::SchedulerChannels(),
      [this](const std::string& channel, const std::string& payload) { OnNotification(channel, payload); },
      // A job committed after the rebuild's snapshot but before the LISTEN took effect (or while
      // the listener reconnects) was notified to no one: once listening, the queue is compared
      // with PostgreSQL, and what was missed is placed now rather than at the periodic reconcile;
      // so are cancels, extensions and quarantines notified meanwhile.
      [this] {
        Post([](MarketEvents& e) {
          e.reconcile = true;
          e.read_back_notified = true;
        });
      });
  if (threads_ == HostThreads::kOwn) {
    ingest_thread_ = std::thread([this] { IngestLoop(); });
    scheduling_thread_ = std::thread([this] { SchedulingLoop(); });
  }
  running_ = true;
  return absl::OkStatus();
}

void SchedulerHost::Stop() {
  std::lock_guard lifecycle(lifecycle_mu_);
  if (!running_.exchange(false)) return;
  stop_ = true;
  {
    std::lock_guard lock(events_mu_);
    stopping_ = true;
  }
  events_cv_.notify_all();
  inbound_cv_.notify_all();
  for (std::thread* t : {&ingest_thread_, &scheduling_thread_}) {
    if (t->joinable()) t->join();
  }
  if (verifier_ != nullptr) verifier_->Stop();
  listener_.reset();
  registry_.CloseAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "scheduler stepped down; reconnect to the leader"));
  market_.reset();
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
      session->Close(ToGrpcStatus(ResourceExhaustedWithRetry("scheduler inbound queue is full; reconnect later", 1'000)));
      return;
    }
    inbound_.push_back({session, std::move(message)});
  }
  inbound_cv_.notify_one();
}

void SchedulerHost::OnClosed(const std::shared_ptr<WorkerSession>& session) {
  registry_.Detach(session);
  if (verifier_ != nullptr && session->worker_id() != 0) verifier_->OnClosed(session);
  if (const int64_t worker_id = session->worker_id(); worker_id != 0) {
    Post([&](MarketEvents& e) { e.disconnected.push_back(worker_id); });
  }
}

void SchedulerHost::Step() {
  for (std::vector<Inbound> batch = TakeBatch(); !batch.empty(); batch = TakeBatch()) {
    const auto started = std::chrono::steady_clock::now();
    ProcessBatch(batch);
    observer_.OnIngestBatch({.messages = batch.size(), .latency_us = MicrosecondsSince(started)});
  }
  MarketEvents events;
  {
    std::lock_guard lock(events_mu_);
    std::swap(events, events_);
  }
  RunRound(events);
}

void SchedulerHost::Post(const std::function<void(MarketEvents&)>& add) {
  {
    std::lock_guard lock(events_mu_);
    add(events_);
  }
  events_cv_.notify_one();
}

void SchedulerHost::OnNotification(const std::string& channel, const std::string& payload) {
  const std::optional<store::Notification> note = store::DecodeNotification(channel, payload);
  if (!note) {
    // Not a payload this build knows: compare what it follows with PostgreSQL instead.
    spdlog::warn("notification on {} not understood ({}); reconciling", channel, payload);
    Post([](MarketEvents& e) {
      e.reconcile = true;
      e.read_back_notified = true;
    });
    return;
  }
  Post([&](MarketEvents& e) {
    if (const auto* n = std::get_if<store::JobSubmitted>(&*note)) e.submitted.push_back(n->job_id);
    if (const auto* n = std::get_if<store::JobCancelled>(&*note)) e.cancelled.push_back(*n);
    if (const auto* n = std::get_if<store::JobExtended>(&*note)) e.extended.push_back(*n);
    if (const auto* n = std::get_if<store::WorkerQuarantined>(&*note)) e.quarantined.push_back(n->worker_id);
  });
}

}  // namespace tessera::scheduler_host
