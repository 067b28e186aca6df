// The host's life (start as leader, stop) and what comes in: worker streams, NOTIFYs, events for
// the scheduling thread. Ingest, hellos, the scheduling loop, the market's sync with the store and
// the proof-of-GPU re-checks have files of their own (host_*.cc).
#include "services/scheduler/scheduler_host.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "services/common/grpc_status.h"

namespace tessera::scheduler_host {

SchedulerHost::SchedulerHost(SchedulerStore& store, store::Database& db, const Clock& clock, RandomSource& random,
                             HostObserver& observer, SchedulerOptions options)
    : db_(db),
      clock_(clock),
      random_(random),
      observer_(observer),
      options_(options),
      repo_(store),
      verifier_(db, clock, random, options.verifier, [this](int64_t worker_id, v1::WorkerState state) {
        Post([&](MarketEvents& e) { e.verified.emplace_back(worker_id, state); });
      }) {}

SchedulerHost::~SchedulerHost() { Stop(); }

absl::Status SchedulerHost::Start(int64_t epoch) {
  std::lock_guard lifecycle(lifecycle_mu_);
  if (running_) return absl::OkStatus();
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
  if (options_.verifier.enabled) {
    if (absl::Status s = verifier_.Start(); !s.ok()) return s;
  }
  listener_ = std::make_unique<store::NotificationListener>(
      db_.url(), store::SchedulerChannels(),
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
  ingest_thread_ = std::thread([this] { IngestLoop(); });
  scheduling_thread_ = std::thread([this] { SchedulingLoop(); });
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
  verifier_.Stop();
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
  if (options_.verifier.enabled && session->worker_id() != 0) verifier_.OnClosed(session);
  if (const int64_t worker_id = session->worker_id(); worker_id != 0) {
    Post([&](MarketEvents& e) { e.disconnected.push_back(worker_id); });
  }
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
