// The scheduler host (DESIGN.md): holds every worker's Connect stream, keeps leases alive, runs
// the matching loop over the scheduler/ core, and feeds what workers report into PostgreSQL.
//
// Threads, each with one job:
//  - ingest: drains the bounded inbound queue of worker messages in order and applies each drained
//    batch with a fixed number of statements (usage in one transaction, job state in another),
//    then acknowledges;
//  - match: on a NOTIFY, a freed GPU or a timer, matches queued jobs to free GPUs, persists the
//    placements in one statement, then pushes them down the streams;
//  - lease: expires workers silent past the lease timeout and requeues their jobs.
// Only the elected leader runs (Start with its epoch); a standby's host is stopped and refuses
// worker streams. Start/Stop may alternate as leadership comes and goes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "services/common/clock.h"
#include "services/scheduler/scheduler_repository.h"
#include "services/scheduler/worker_registry.h"
#include "services/scheduler/worker_session.h"
#include "services/store/notification_listener.h"

namespace tessera::scheduler_host {

struct SchedulerOptions {
  int64_t lease_timeout_ms = 10'000;
  int64_t match_interval_ms = 1'000;       // a round at least this often, besides wake-ups
  size_t max_inbound_messages = 100'000;   // beyond this a stream is refused, not buffered
  size_t max_ingest_batch = 2'000;
  int max_queued_jobs_per_round = 20'000;
};

class SchedulerHost final : public StreamHandler {
 public:
  SchedulerHost(store::Database& db, const Clock& clock, SchedulerOptions options);
  ~SchedulerHost() override;

  // Becomes the active scheduler for leadership `epoch`: rebuilds its view from PostgreSQL and
  // starts the loops. Stop closes every worker stream (they reconnect to the new leader).
  absl::Status Start(int64_t epoch);
  void Stop();
  bool running() const { return running_.load(); }

  void OnMessage(const std::shared_ptr<WorkerSession>& session, v1::WorkerMessage message) override;
  void OnClosed(const std::shared_ptr<WorkerSession>& session) override;

  SchedulerRepository& repository() { return repo_; }
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
    std::vector<std::shared_ptr<WorkerSession>> finished_sessions;
    bool empty() const { return usage.empty() && events.started.empty() && events.progress.empty() && events.finished.empty(); }
  };

  void IngestLoop();
  void ProcessBatch(std::vector<Inbound>& batch);
  void FlushSegment(Segment& segment);
  void HandleHello(const std::shared_ptr<WorkerSession>& session, const v1::Hello& hello);
  void MatchLoop();
  void MatchRound();
  void LeaseLoop();
  void OnNotification(const std::string& channel, const std::string& payload);
  void WakeMatcher();

  store::Database& db_;
  const Clock& clock_;
  const SchedulerOptions options_;
  SchedulerRepository repo_;
  WorkerRegistry registry_;

  std::mutex inbound_mu_;
  std::condition_variable inbound_cv_;
  std::deque<Inbound> inbound_ ABSL_GUARDED_BY(inbound_mu_);

  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool wake_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(wake_mu_) = false;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::mutex lifecycle_mu_;  // serialises Start and Stop

  std::map<int64_t, std::string> wait_reasons_;  // match thread only

  std::unique_ptr<store::NotificationListener> listener_;
  std::thread ingest_thread_, match_thread_, lease_thread_;
};

}  // namespace tessera::scheduler_host
