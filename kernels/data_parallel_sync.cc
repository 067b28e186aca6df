#include "kernels/data_parallel_sync.h"

namespace tessera::kernels {

bool RankBarrier::ArriveAndWait(bool ready, const std::atomic<bool>& stop, std::chrono::milliseconds poll) {
  std::unique_lock lock(mu_);
  ++arrived_;
  if (!ready) failed_ = true;
  cv_.notify_all();
  while (!failed_ && arrived_ < parties_) {
    if (stop.load()) return false;
    cv_.wait_for(lock, poll);
  }
  return !failed_;
}

void CommunicatorDeadline::Start(std::chrono::steady_clock::time_point now) {
  const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  int64_t expected = kNotStarted;
  (void)started_ns_.compare_exchange_strong(expected, ns);
}

bool CommunicatorDeadline::Overdue(std::chrono::steady_clock::time_point now) const {
  const int64_t started = started_ns_.load();
  if (started == kNotStarted) return false;
  const auto since = now.time_since_epoch() - std::chrono::nanoseconds(started);
  return since > limit_;
}

}  // namespace tessera::kernels
