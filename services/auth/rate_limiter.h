// A token bucket per API key: `rate_per_s` calls a second on average, bursts up to `burst`. Over
// the limit, Take answers RESOURCE_EXHAUSTED with a google.rpc.RetryInfo saying when a token will
// be there. The buckets live in this server process (each replica limits on its own) and are
// bounded in number; a bucket that has refilled completely is forgotten when room is needed.
//
//   RateLimiter submits(clock, 200, 400);
//   if (absl::Status s = submits.Take(caller.key_id); !s.ok()) return ToGrpcStatus(s);
#pragma once

#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "services/common/clock.h"

namespace tessera::auth {

class RateLimiter {
 public:
  // rate_per_s <= 0: unlimited.
  RateLimiter(const Clock& clock, double rate_per_s, double burst, std::string what)
      : clock_(clock), rate_per_ms_(rate_per_s / 1'000.0), burst_(burst < 1 ? 1 : burst), what_(std::move(what)) {}

  absl::Status Take(const std::string& key);

 private:
  static constexpr size_t kMaxBuckets = 100'000;
  struct Bucket {
    double tokens = 0;
    int64_t at_ms = 0;
  };
  void ForgetFullBucketsLocked(int64_t now_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock& clock_;
  const double rate_per_ms_;
  const double burst_;
  const std::string what_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera::auth
