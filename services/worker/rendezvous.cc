#include "services/worker/rendezvous.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace tessera::worker {

JobRendezvous::JobRendezvous(const v1::Assignment& assignment, JobReporter& reporter, kernels::ComputeBackend& backend,
                             int64_t timeout_ms)
    : assignment_(assignment), reporter_(reporter), backend_(backend), timeout_ms_(timeout_ms) {}

absl::StatusOr<std::optional<kernels::Communicator>> JobRendezvous::Join() {
  if (assignment_.node_worker_ids_size() <= 1) return std::nullopt;
  if (assignment_.node_rank() == 0) {
    const std::string id = backend_.NewCommunicatorId();
    if (id.empty()) return absl::InternalError("could not create a communicator id");
    v1::WorkerMessage offer;
    offer.mutable_rendezvous_offer()->set_job_id(assignment_.job_id());
    offer.mutable_rendezvous_offer()->set_attempt(assignment_.attempt());
    offer.mutable_rendezvous_offer()->set_unique_id(id);
    reporter_.Send(std::move(offer));
    return kernels::Communicator{.unique_id = id, .first_rank = 0, .world_size = assignment_.spec().gpu_count()};
  }
  std::unique_lock lock(mu_);
  const bool arrived =
      changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms_), [&] { return delivered_.has_value() || cancelled_; });
  if (cancelled_) return absl::CancelledError("cancelled while waiting for the rendezvous");
  if (!arrived) return absl::DeadlineExceededError(absl::StrCat("no rendezvous from node rank 0 within ", timeout_ms_, " ms"));
  kernels::Communicator c{.unique_id = delivered_->unique_id(), .first_rank = 0, .world_size = 0};
  for (int node = 0; node < delivered_->node_gpu_counts_size(); ++node) {
    if (node < static_cast<int>(assignment_.node_rank())) c.first_rank += delivered_->node_gpu_counts(node);
    c.world_size += delivered_->node_gpu_counts(node);
  }
  return c;
}

void JobRendezvous::Deliver(const v1::Rendezvous& rendezvous) {
  {
    std::lock_guard lock(mu_);
    delivered_ = rendezvous;
  }
  changed_.notify_all();
}

void JobRendezvous::Cancel() {
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }
  changed_.notify_all();
}

}  // namespace tessera::worker
