// Validates a SubmitJobRequest (and an ExtendJobRequest) at the edge, before anything is written. Every error is
// INVALID_ARGUMENT with a message that names the offending field and says what is allowed.
#pragma once

#include "absl/status/status.h"
#include "tessera/v1/jobs.pb.h"

namespace tessera::intake {

inline constexpr size_t kMaxSpecBytes = 64 * 1024;
inline constexpr uint32_t kMaxGpuCount = 64;
inline constexpr int64_t kMaxDurationMs = 30LL * 24 * 3600 * 1000;
// How long a job may wait to start unless its spec or the operator says otherwise: a day, so that a
// job no worker can run gives its escrow back the next day rather than never.
inline constexpr int64_t kDefaultQueueTimeoutMs = 24LL * 3600 * 1000;
inline constexpr int64_t kMaxQueueTimeoutMs = kMaxDurationMs;
inline constexpr uint32_t kMaxAttempts = 10;
inline constexpr uint32_t kDefaultMaxAttempts = 3;
inline constexpr uint64_t kMaxGpuMemoryMib = 16ULL * 1024 * 1024;  // 16 TiB: beyond any device
inline constexpr int32_t kMaxReputation = 1000;

absl::Status ValidateSubmitRequest(const v1::SubmitJobRequest& request);
absl::Status ValidateJobSpec(const v1::JobSpec& spec);
absl::Status ValidateExtendRequest(const v1::ExtendJobRequest& request);

}  // namespace tessera::intake
