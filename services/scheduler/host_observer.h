// What the scheduler host reports as it works: each scheduling round, each ingest batch, each lease
// expiry. The metrics of a later issue implement it; tests record it. It is called on the host's
// own threads (rounds and expiries on the scheduling thread, batches on the ingest thread), so an
// implementation is thread-safe and quick, and never calls back into the host.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace tessera::scheduler_host {

struct RoundReport {
  size_t placements = 0;   // leases written and sent this round
  size_t preemptions = 0;  // SPOT jobs preempted this round
  size_t queued_jobs = 0;  // the market's queue after the round
  int64_t latency_us = 0;  // applying events, matching and committing
};

struct IngestReport {
  size_t messages = 0;  // worker messages applied in the batch
  int64_t latency_us = 0;
};

class HostObserver {
 public:
  virtual ~HostObserver() = default;
  virtual void OnRound(const RoundReport& /*round*/) {}
  virtual void OnIngestBatch(const IngestReport& /*batch*/) {}
  // Workers whose leases expired together (silent past the lease timeout), and the jobs requeued.
  virtual void OnLeasesExpired(size_t /*workers*/, size_t /*jobs_requeued*/) {}
};

// The latency a report carries: microseconds since `started`.
inline int64_t MicrosecondsSince(std::chrono::steady_clock::time_point started) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
}

// Observes nothing: a host that nobody watches.
class NoHostObserver final : public HostObserver {};

}  // namespace tessera::scheduler_host
