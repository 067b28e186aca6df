// The scheduler host's in-memory view of the workers it holds leases for: their GPUs, which of
// them are busy with which assignment, their stream (if connected) and when they were last heard.
// It is a cache of PostgreSQL, rebuilt from it at start and at each hello; every decision taken
// from it is persisted before it is acted on. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "scheduler/matcher.h"
#include "services/scheduler/scheduler_repository.h"
#include "services/scheduler/worker_session.h"

namespace tessera::scheduler_host {

class WorkerRegistry {
 public:
  // A worker whose lease clock runs although it has not connected to this host (yet).
  void Track(int64_t worker_id, int64_t now_ms);
  // Binds a worker that passed hello to its session, with its live assignments' GPUs busy.
  void Attach(const WorkerRecord& record, const std::vector<LiveAssignment>& live,
              const std::shared_ptr<WorkerSession>& session, int64_t now_ms);
  // The stream ended; the lease clock keeps running from the last message.
  void Detach(const std::shared_ptr<WorkerSession>& session);
  void Touch(int64_t worker_id, int64_t now_ms);

  // Free GPUs of connected ACTIVE workers, for the matcher.
  std::vector<scheduler::WorkerOffer> Offers() const;
  // Marks a placement's GPUs busy; false if the worker is gone or a GPU is held by another
  // assignment (then nothing changes).
  bool Reserve(const scheduler::Placement& placement, uint32_t attempt);
  void Release(int64_t worker_id, int64_t job_id, uint32_t attempt);

  // Workers silent for longer than `lease_timeout_ms`; they are dropped from the registry.
  std::vector<std::pair<int64_t, std::shared_ptr<WorkerSession>>> TakeExpired(int64_t now_ms, int64_t lease_timeout_ms);
  std::shared_ptr<WorkerSession> SessionOf(int64_t worker_id) const;
  std::vector<int64_t> ConnectedWorkers() const;
  // Closes every stream and forgets every worker (the host stepped down).
  void CloseAll(const grpc::Status& status);

 private:
  struct Entry {
    WorkerRecord record;
    std::shared_ptr<WorkerSession> session;  // null while disconnected
    int64_t last_seen_ms = 0;
    // gpu index → (job_id, attempt) holding it
    std::map<uint32_t, std::pair<int64_t, uint32_t>> busy;
  };

  mutable std::mutex mu_;
  std::map<int64_t, Entry> workers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera::scheduler_host
