#include "services/auth/rate_limiter.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "services/common/grpc_status.h"

namespace tessera::auth {

absl::Status RateLimiter::Take(const std::string& key) {
  if (rate_per_ms_ <= 0) return absl::OkStatus();
  const int64_t now_ms = clock_.NowMs();
  std::lock_guard lock(mu_);
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= kMaxBuckets) ForgetFullBucketsLocked(now_ms);
    it = buckets_.emplace(key, Bucket{.tokens = burst_, .at_ms = now_ms}).first;
  }
  Bucket& b = it->second;
  b.tokens = std::min(burst_, b.tokens + static_cast<double>(std::max<int64_t>(0, now_ms - b.at_ms)) * rate_per_ms_);
  b.at_ms = now_ms;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return absl::OkStatus();
  }
  const auto retry_after_ms = static_cast<int64_t>(std::ceil((1 - b.tokens) / rate_per_ms_));
  return ResourceExhaustedWithRetry(
      absl::StrCat(what_, " rate limit of ", rate_per_ms_ * 1'000.0, "/s (burst ", burst_, ") exceeded for this API key"),
      retry_after_ms);
}

void RateLimiter::ForgetFullBucketsLocked(int64_t now_ms) {
  absl::erase_if(buckets_, [&](const auto& entry) {
    return entry.second.tokens + static_cast<double>(now_ms - entry.second.at_ms) * rate_per_ms_ >= burst_;
  });
  if (buckets_.size() >= kMaxBuckets) buckets_.clear();  // all busy: start them over rather than grow
}

}  // namespace tessera::auth
