#include "services/intake/submit_batcher.h"

namespace tessera::intake {

SubmitBatcher::SubmitBatcher(JobRepository& jobs, size_t max_batch)
    : jobs_(jobs), max_batch_(max_batch), committer_([this] { Run(); }) {}

SubmitBatcher::~SubmitBatcher() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  committer_.join();
}

absl::StatusOr<SubmitOutcome> SubmitBatcher::Submit(const v1::SubmitJobRequest& request) {
  std::future<absl::StatusOr<SubmitOutcome>> outcome;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return absl::UnavailableError("intake is shutting down");
    Pending& p = pending_.emplace_back(Pending{.request = &request, .outcome = {}});
    outcome = p.outcome.get_future();
  }
  cv_.notify_one();
  return outcome.get();
}

void SubmitBatcher::Run() {
  while (true) {
    std::vector<Pending> batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !pending_.empty() || stopping_; });
      if (pending_.empty()) return;  // stopping, nothing left
      while (!pending_.empty() && batch.size() < max_batch_) {
        batch.push_back(std::move(pending_.front()));
        pending_.pop_front();
      }
    }
    std::vector<const v1::SubmitJobRequest*> requests;
    for (const Pending& p : batch) requests.push_back(p.request);
    std::vector<absl::StatusOr<SubmitOutcome>> outcomes = jobs_.SubmitBatch(requests);
    for (size_t i = 0; i < batch.size(); ++i) batch[i].outcome.set_value(std::move(outcomes[i]));
  }
}

}  // namespace tessera::intake
