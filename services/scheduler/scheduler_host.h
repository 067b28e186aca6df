// The scheduler host (DESIGN.md): holds every worker's Connect stream, keeps leases alive, runs
// the scheduling core (scheduler::Market) and feeds what workers report into PostgreSQL.
//
// Threads, each with one job:
//  - ingest: drains the bounded inbound queue of worker messages in order and applies each drained
//    batch with a fixed number of statements (usage in one transaction, job state in another),
//    then acknowledges; finished jobs are handed to the scheduling thread;
//  - scheduling: the only owner of the Market. It applies events in order (hellos, closed streams,
//    cancels, finished jobs, new jobs from NOTIFY, expired leases), ticks the market, persists each
//    round's decisions in one transaction and only then sends them down the streams.
// The market is rebuilt from PostgreSQL at Start (recovery) and after a failed write (PostgreSQL is
// the store of record; the market is its index). Only the elected leader runs (Start with its
// epoch); a standby's host is stopped and refuses worker streams.
// Started with HostThreads::kCaller it runs no thread of its own: the caller (the deterministic
// simulation) drives it with Step, which does what the two threads would, in the same order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <set>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "scheduler/market.h"
#include "services/common/clock.h"
#include "services/common/random_source.h"
#include "services/scheduler/host_observer.h"
#include "services/scheduler/gpu_verifier.h"
#include "services/scheduler/hello_plan.h"
#include "services/scheduler/scheduler_store.h"
#include "services/scheduler/trust_repository.h"
#include "services/scheduler/worker_registry.h"
#include "services/scheduler/worker_session.h"
#include "services/store/notification_source.h"
#include "services/store/notifications.h"

namespace tessera::scheduler_host {

struct SchedulerOptions {
  int64_t lease_timeout_ms = 10'000;
  int64_t tick_interval_ms = 1'000;        // a full market pass (reservations, preemption) this often
  int64_t reconcile_interval_ms = 10'000;  // the queue is compared with PostgreSQL this often
  size_t max_inbound_messages = 100'000;   // beyond this a stream is refused, not buffered
  size_t max_ingest_batch = 2'000;
  size_t wait_reasons_per_tick = 256;      // queued jobs whose wait reason is refreshed per tick
  int64_t reputation_interval_ms = 10'000; // reputations are recomputed from the store this often
  TrustLimits trust;
  VerifierOptions verifier;
  scheduler::MarketOptions market;
};

// Everything the host works with that has side effects, from its owner, so that tests and the
// simulation drive and watch the real host. Each outlives the host.
struct HostParts {
  SchedulerStore& store;                    // the store of record (the PostgreSQL repository in the product)
  ChallengeStore* challenges;               // proof of GPU; needed only with options.verifier.enabled
  store::NotificationSource& notifications; // cancels, submits, extensions, quarantines from other processes
  const Clock& clock;
  RandomSource& random;                     // re-check times, challenge rows
  HostObserver& observer;
};

// Who runs the host's loops: its own ingest and scheduling threads (the product), or the caller
// through SchedulerHost::Step (the simulation).
enum class HostThreads { kOwn, kCaller };

class SchedulerHost final : public StreamHandler {
 public:
  SchedulerHost(HostParts parts, SchedulerOptions options);
  ~SchedulerHost() override;

  // Becomes the active scheduler for leadership `epoch`: rebuilds the market from PostgreSQL and
  // starts the loops. Stop closes every worker stream (they reconnect to the new leader).
  absl::Status Start(int64_t epoch, HostThreads threads = HostThreads::kOwn);
  void Stop();
  bool running() const { return running_.load(); }

  // HostThreads::kCaller only: applies every worker message received (in ingest batches), then runs
  // one scheduling round on the events they and the notifications posted.
  void Step();
  // HostThreads::kCaller only, between Steps (the simulation's checks): the scheduling core, or null
  // while it is to be rebuilt from the store.
  const scheduler::Market* market() const { return market_stale_ ? nullptr : market_.get(); }

  void OnMessage(const std::shared_ptr<WorkerSession>& session, v1::WorkerMessage message) override;
  void OnClosed(const std::shared_ptr<WorkerSession>& session) override;

  const SchedulerOptions& options() const { return options_; }
  const WorkerRegistry& registry() const { return registry_; }

 private:
  struct Inbound {
    std::shared_ptr<WorkerSession> session;
    v1::WorkerMessage message;
  };
  struct Segment {
    std::vector<UsageIn> usage;
    std::vector<std::shared_ptr<WorkerSession>> usage_sessions;
    StateEvents events;
    std::vector<std::shared_ptr<WorkerSession>> started_sessions;
    std::vector<std::shared_ptr<WorkerSession>> finished_sessions;
    std::vector<FraudSignal> signals;  // refused at the edge (signatures)
    bool empty() const {
      return usage.empty() && events.started.empty() && events.progress.empty() && events.finished.empty() && signals.empty();
    }
  };
  // What the scheduling thread has to apply to the market, in this order.
  struct MarketEvents {
    std::vector<Inbound> hellos;
    std::vector<int64_t> disconnected;                       // workers whose stream closed
    std::vector<store::JobCancelled> cancelled;
    std::vector<int64_t> finished;                           // jobs that reached a terminal state
    std::vector<int64_t> submitted;                          // jobs announced by NOTIFY
    std::vector<store::JobExtended> extended;
    std::vector<int64_t> quarantined;                        // workers an operator took out
    std::vector<std::pair<std::shared_ptr<WorkerSession>, std::string>> draining;  // streams whose agents drain, and why
    std::vector<std::pair<int64_t, v1::WorkerState>> verified;  // passed a GPU challenge, now in this state
    bool reconcile = false;
    bool read_back_notified = false;  // the LISTEN was (re)made: what NOTIFY may have said meanwhile is read back
    bool empty() const {
      return hellos.empty() && disconnected.empty() && cancelled.empty() && finished.empty() && submitted.empty() &&
             extended.empty() && quarantined.empty() && draining.empty() && verified.empty() && !reconcile &&
             !read_back_notified;
    }
  };

  void RefreshReputations();
  void IngestLoop();
  // Takes up to one ingest batch off the inbound queue.
  std::vector<Inbound> TakeBatch();
  void ProcessBatch(std::vector<Inbound>& batch);
  // A hello, checked and identified here, is handed to the scheduling thread.
  void AcceptHello(Inbound& in);
  // Any other message of a stream: into the batch's segment, or answered or refused at once.
  void Route(Inbound& in, Segment& segment, int64_t now_ms);
  void FlushSegment(Segment& segment);
  void ForwardRendezvous(int64_t worker_id, const v1::RendezvousOffer& offer);
  void OnNotification(const std::string& channel, const std::string& payload);
  void Post(const std::function<void(MarketEvents&)>& add);

  // The scheduling thread: waits for events (or a tick's interval), then runs a round on them.
  void SchedulingLoop();
  void RunRound(MarketEvents& events);
  void ApplyEvents(MarketEvents& events, scheduler::Decisions& decisions);
  // Adds to `events` the cancels, extensions and quarantines that PostgreSQL holds for the market's
  // jobs and the connected workers and that the market has not applied: after a LISTEN gap.
  // False when PostgreSQL could not be read (it is tried again later).
  bool ReadBackNotified(MarketEvents& events);
  void SendCancel(const store::JobCancelled& c);
  void SendExtension(const store::JobExtended& x);
  // A spread job's lease on a worker still up ended because another of its workers was lost.
  void SendLeaseLost(const Requeued& r);
  void HandleHello(const std::shared_ptr<WorkerSession>& session, const v1::Hello& hello, scheduler::Decisions& decisions);
  // The market must hold exactly a reconnecting worker's live leases (it normally does); if not,
  // it is rebuilt from PostgreSQL before anything else is decided, and the rebuild opens the worker.
  void CheckMarketHolds(const std::vector<LiveAssignment>& leases);
  // After a hello: the welcome, a cancel of each run without a live lease, the leases the worker
  // never got, the limits of those it kept, and the communicator ids it waits for.
  void SendReconnectMessages(WorkerSession& session, const AppliedHello& hello);
  void ExpireLeases(scheduler::Decisions& decisions);
  // Jobs that never started, past their queue deadline: cancelled, and dropped from the market.
  void CancelExpiredQueued(int64_t now_ms, scheduler::Decisions& decisions);
  // Loads those of `job_ids` the market does not hold and that are QUEUED; returns how many.
  size_t AddQueuedJobs(const std::vector<int64_t>& job_ids, scheduler::Decisions& decisions);
  // The periodic reconcile of the market's queue with the store's, in two halves around a round's
  // decisions (RunRound): jobs no longer QUEUED in the store leave the market first (returns the
  // store's queue; nullopt when it could not be read); jobs QUEUED there that the market lacks join
  // it after the round's events, so none is placed on a worker those events drain or remove.
  std::optional<std::vector<int64_t>> DropJobsNotQueued(scheduler::Decisions& decisions);
  void AddJobsQueued(const std::vector<int64_t>& store_queue, scheduler::Decisions& decisions);
  // Loads the whole market from PostgreSQL; workers are schedulable only while connected.
  absl::Status Rebuild(scheduler::Decisions& decisions);
  // Persists the round's decisions, then sends them; placements that did not take effect are
  // withdrawn from the market (which may place others: repeated a few times).
  // Returns the leases written and the jobs preempted.
  std::pair<size_t, size_t> Commit(scheduler::Decisions decisions);
  void RefreshWaitReasons();
  // Proof of GPU: when an ACTIVE worker is next re-checked, and the re-checks now due of idle ones.
  void ScheduleRecheck(int64_t worker_id, int64_t now_ms);
  void StartDueRechecks(int64_t now_ms, scheduler::Decisions& decisions);

  store::NotificationSource& notifications_;
  ChallengeStore* const challenges_;
  const Clock& clock_;
  RandomSource& random_;
  HostObserver& observer_;
  const SchedulerOptions options_;
  SchedulerStore& repo_;
  WorkerRegistry registry_;
  std::unique_ptr<GpuVerifier> verifier_;  // with options.verifier.enabled

  std::mutex inbound_mu_;
  std::condition_variable inbound_cv_;
  std::deque<Inbound> inbound_ ABSL_GUARDED_BY(inbound_mu_);

  std::mutex events_mu_;
  std::condition_variable events_cv_;
  MarketEvents events_ ABSL_GUARDED_BY(events_mu_);
  bool stopping_ ABSL_GUARDED_BY(events_mu_) = false;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::mutex lifecycle_mu_;  // serialises Start and Stop

  static constexpr int64_t kTouchWorkersEveryMs = 5'000;  // connected workers' last_seen_at refreshed this often

  // Scheduling thread only.
  struct RoundsDue {  // when the periodic parts of a round are next due (clock ms)
    int64_t tick_ms = 0, reconcile_ms = 0, touch_ms = 0, reputation_ms = 0;
  } due_;
  std::unique_ptr<scheduler::Market> market_;
  bool market_stale_ = false;  // a write failed: rebuild before the next round
  bool read_back_pending_ = false;  // ReadBackNotified is owed
  std::map<int64_t, std::string> wait_reasons_;
  size_t wait_reason_cursor_ = 0;
  std::map<int64_t, int64_t> recheck_at_ms_;  // connected ACTIVE workers

  HostThreads threads_ = HostThreads::kOwn;
  std::unique_ptr<store::NotificationSubscription> listener_;
  std::thread ingest_thread_, scheduling_thread_;
};

}  // namespace tessera::scheduler_host
