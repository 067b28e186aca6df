// What every Workload does the same way: its work (Run) on a thread of its own, a cancel flag the
// work polls, the progress it reports, and its outcome once it ends. An exception from the work
// fails the job with its text and never the agent. A subclass implements Run and, in its own
// destructor, calls StopAndJoin() so that Run never outlives the members it uses.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "services/worker/workload.h"

namespace tessera::worker {

class ThreadedWorkload : public Workload {
 public:
  void Start() final;
  void Cancel() final { cancel_ = true; }
  bool Wait(std::chrono::milliseconds timeout) final;
  WorkloadProgress Progress() const final;
  absl::StatusOr<v1::JobResult> Outputs() final;

 protected:
  ~ThreadedWorkload() override;  // the thread is joined by then (StopAndJoin)
  virtual absl::StatusOr<v1::JobResult> Run() = 0;
  bool cancelled() const { return cancel_.load(); }
  const std::atomic<bool>& cancel_flag() const { return cancel_; }  // for kernels that poll it
  void SetProgress(WorkloadProgress progress);
  // Cancels the work and waits for Run to return.
  void StopAndJoin();

 private:
  std::atomic<bool> cancel_{false};
  mutable std::mutex mu_;
  std::condition_variable ended_;
  bool done_ = false;                                                                   // guarded by mu_
  absl::StatusOr<v1::JobResult> outcome_ = absl::FailedPreconditionError("not started");  // guarded by mu_
  WorkloadProgress progress_;                                                           // guarded by mu_
  std::thread thread_;
};

}  // namespace tessera::worker
