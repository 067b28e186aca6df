// Converts module statuses to gRPC statuses at the RPC edge. An absl::Status payload keyed by a
// google.rpc type URL (kRetryInfoTypeUrl) travels as a detail of the rich error model
// (google.rpc.Status in the grpc-status-details-bin trailer), so clients can read it.
#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"

namespace tessera {

inline constexpr char kRetryInfoTypeUrl[] = "type.googleapis.com/google.rpc.RetryInfo";

grpc::Status ToGrpcStatus(const absl::Status& status);

// RESOURCE_EXHAUSTED with a google.rpc.RetryInfo of `retry_after_ms`; the message says it too.
absl::Status ResourceExhaustedWithRetry(absl::string_view message, int64_t retry_after_ms);

// The RetryInfo delay a server attached to `status`, if any (clients: back off that long).
std::optional<int64_t> RetryDelayMs(const grpc::Status& status);

}  // namespace tessera
