// Group commit for SubmitJob: concurrent submits wait while one transaction is in flight and are
// then written together in the next (JobRepository::SubmitBatch), so that N clients cost one
// commit and one lock on each account's balance instead of N. A lone submit is written at once;
// nothing waits for a timer.
#pragma once

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "services/intake/job_repository.h"

namespace tessera::intake {

class SubmitBatcher {
 public:
  explicit SubmitBatcher(JobRepository& jobs, size_t max_batch = 256);
  ~SubmitBatcher();  // writes what is pending, then stops

  // Blocks until the request's transaction has committed (or failed).
  absl::StatusOr<SubmitOutcome> Submit(const v1::SubmitJobRequest& request);

 private:
  struct Pending {
    const v1::SubmitJobRequest* request;
    std::promise<absl::StatusOr<SubmitOutcome>> outcome;
  };
  void Run();

  JobRepository& jobs_;
  const size_t max_batch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread committer_;
};

}  // namespace tessera::intake
