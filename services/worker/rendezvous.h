// How the workers of one job find one collective communicator: node rank 0 creates the id
// (ncclGetUniqueId) and offers it through the scheduler, which passes it, with every node's GPU
// count, to the others; each node then knows its first global rank and the world size.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>

#include "absl/status/statusor.h"
#include "kernels/compute_backend.h"
#include "services/worker/job_reporter.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::worker {

class CommunicatorSource {
 public:
  virtual ~CommunicatorSource() = default;
  // Null for a job on one worker. A node rank > 0 blocks until the id arrives, the wait is
  // cancelled (CANCELLED) or it times out (DEADLINE_EXCEEDED).
  virtual absl::StatusOr<std::optional<kernels::Communicator>> Join() = 0;
};

class JobRendezvous final : public CommunicatorSource {
 public:
  JobRendezvous(const v1::Assignment& assignment, JobReporter& reporter, kernels::ComputeBackend& backend, int64_t timeout_ms);

  absl::StatusOr<std::optional<kernels::Communicator>> Join() override;
  // The scheduler passed node rank 0's id.
  void Deliver(const v1::Rendezvous& rendezvous);
  // Ends a wait in Join at once.
  void Cancel();

 private:
  const v1::Assignment& assignment_;
  JobReporter& reporter_;
  kernels::ComputeBackend& backend_;
  const int64_t timeout_ms_;

  std::mutex mu_;
  std::condition_variable changed_;
  std::optional<v1::Rendezvous> delivered_;  // guarded by mu_
  bool cancelled_ = false;                   // guarded by mu_
};

}  // namespace tessera::worker
