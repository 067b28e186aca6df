#include "services/worker/threaded_workload.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace tessera::worker {

ThreadedWorkload::~ThreadedWorkload() { StopAndJoin(); }

void ThreadedWorkload::StopAndJoin() {
  cancel_ = true;
  if (thread_.joinable()) thread_.join();
}

void ThreadedWorkload::Start() {
  thread_ = std::thread([this] {
    absl::StatusOr<v1::JobResult> outcome;
    try {
      outcome = Run();
    } catch (const std::exception& e) {
      outcome = absl::InternalError(absl::StrCat("workload error: ", e.what()));
    }
    {
      std::lock_guard lock(mu_);
      outcome_ = std::move(outcome);
      done_ = true;
    }
    ended_.notify_all();
  });
}

bool ThreadedWorkload::Wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return ended_.wait_for(lock, timeout, [&] { return done_; });
}

WorkloadProgress ThreadedWorkload::Progress() const {
  std::lock_guard lock(mu_);
  return progress_;
}

absl::StatusOr<v1::JobResult> ThreadedWorkload::Outputs() {
  std::lock_guard lock(mu_);
  return outcome_;
}

void ThreadedWorkload::SetProgress(WorkloadProgress progress) {
  std::lock_guard lock(mu_);
  progress_ = progress;
}

}  // namespace tessera::worker
