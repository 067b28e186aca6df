// The scheduler host's lease table: the workers it holds leases for, their stream (if connected)
// and when they were last heard. Which GPUs are busy is the scheduling core's business (Market).
// Thread-safe: streams touch it from gRPC threads, the scheduling thread attaches and expires.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "services/scheduler/worker_session.h"

namespace tessera::scheduler_host {

class WorkerRegistry {
 public:
  // Starts the lease clock of a worker that has not connected to this host (yet); no-op if tracked.
  void Track(int64_t worker_id, int64_t now_ms);
  // Binds a worker that passed hello to its session (closing an older one). Replacing a connected
  // stream is counted and logged (a warning at once, then at most every kReplacementLogMs): two
  // agents sharing one identity replace each other many times a second.
  void Attach(int64_t worker_id, const std::shared_ptr<WorkerSession>& session, int64_t now_ms);
  // The stream ended; the lease clock keeps running from the last message.
  void Detach(const std::shared_ptr<WorkerSession>& session);
  void Touch(int64_t worker_id, int64_t now_ms);

  // Workers silent for longer than `lease_timeout_ms`; they are dropped from the registry.
  std::vector<std::pair<int64_t, std::shared_ptr<WorkerSession>>> TakeExpired(int64_t now_ms, int64_t lease_timeout_ms);
  std::shared_ptr<WorkerSession> SessionOf(int64_t worker_id) const;
  std::vector<int64_t> ConnectedWorkers() const;
  // Times a new stream replaced a connected one of this worker, since this host started.
  int64_t StreamReplacements(int64_t worker_id) const;

  static constexpr int64_t kReplacementLogMs = 10'000;
  // Closes every stream and forgets every worker (the host stepped down).
  void CloseAll(const grpc::Status& status);

 private:
  struct Entry {
    std::shared_ptr<WorkerSession> session;  // null while disconnected
    int64_t last_seen_ms = 0;
  };

  struct Replacements {
    int64_t total = 0;
    int64_t unlogged = 0;
    int64_t logged_at_ms = 0;
  };

  mutable std::mutex mu_;
  std::map<int64_t, Entry> workers_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Replacements> replacements_ ABSL_GUARDED_BY(mu_);  // kept across expiry
};

}  // namespace tessera::scheduler_host
