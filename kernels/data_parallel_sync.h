// The host-side synchronization of a data-parallel job (kernels/cuda/cuda_backend.cu): its local
// ranks, one thread each, all finish their setup (every device allocation) before any of them
// joins the communicator, and the watchdog's deadline for the communicator to form counts from
// then, not from the job's start, so that a slow setup never aborts a healthy job.
//
// Why allocate first: a rank's cudaMalloc/cudaFree can wait for its device to go idle, while that
// device runs a collective that waits for this very rank: a known in-process NCCL hang.
//
//   RankBarrier prepared(ranks);                 // shared by the rank threads
//   CommunicatorDeadline deadline(std::chrono::seconds(120));
//   // each rank thread:
//   Prepare();                                   // every allocation
//   if (!prepared.ArriveAndWait(ok, stop)) return;  // a rank failed, or the job stopped
//   deadline.Start(steady_clock::now());         // the collectives start now
//   // the watchdog:
//   if (!formed && deadline.Overdue(steady_clock::now())) Abort();
//
// Included by nvcc (C++17).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace tessera::kernels {

// Every party arrives once; all go on together when all arrived ready. Thread-safe.
class RankBarrier {
 public:
  explicit RankBarrier(size_t parties) : parties_(parties) {}
  RankBarrier(const RankBarrier&) = delete;
  RankBarrier& operator=(const RankBarrier&) = delete;

  // Arrives (`ready`: this party's setup succeeded) and waits until every party arrived. True when
  // all arrived ready; false as soon as one arrived not ready or `stop` is set (polled every
  // `poll`), so that a failed or cancelled rank never leaves the others waiting.
  bool ArriveAndWait(bool ready, const std::atomic<bool>& stop,
                     std::chrono::milliseconds poll = std::chrono::milliseconds(20));

 private:
  const size_t parties_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t arrived_ = 0;   // guarded by mu_
  bool failed_ = false;  // guarded by mu_
};

// How long a communicator may take to form, counted from when its ranks start joining it. Start()
// is called by the rank threads (the first call counts), Overdue() by the watchdog.
class CommunicatorDeadline {
 public:
  explicit CommunicatorDeadline(std::chrono::steady_clock::duration limit) : limit_(limit) {}
  void Start(std::chrono::steady_clock::time_point now);
  bool started() const { return started_ns_.load() != kNotStarted; }
  // True once `limit` has passed since Start(); never before Start().
  bool Overdue(std::chrono::steady_clock::time_point now) const;

 private:
  static constexpr int64_t kNotStarted = INT64_MIN;
  const std::chrono::steady_clock::duration limit_;
  std::atomic<int64_t> started_ns_{kNotStarted};  // steady_clock since its epoch, in ns
};

}  // namespace tessera::kernels
