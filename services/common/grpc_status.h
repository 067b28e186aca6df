// Converts module statuses to gRPC statuses at the RPC edge. An absl::Status payload keyed by a
// google.rpc type URL (kRetryInfoTypeUrl) travels as a detail of the rich error model
// (google.rpc.Status in the grpc-status-details-bin trailer), so clients can read it. Every
// INVALID_ARGUMENT carries a google.rpc.BadRequest: the field its message starts with (messages
// name the request field first, as "spec.gpu_count must be 1..64, got 0"), and the message.
#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera {

inline constexpr char kRetryInfoTypeUrl[] = "type.googleapis.com/google.rpc.RetryInfo";
inline constexpr char kBadRequestTypeUrl[] = "type.googleapis.com/google.rpc.BadRequest";

grpc::Status ToGrpcStatus(const absl::Status& status);

// A handler's reply: the value into `response` and OK, or the error as ToGrpcStatus sends it.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

// INVALID_ARGUMENT with `message`, as ToGrpcStatus sends it.
grpc::Status InvalidArgumentStatus(absl::string_view message);

// The request field an INVALID_ARGUMENT message names first ("spec.gpu_count", "gpus.uuid",
// "policy.min_bid_utok_per_gpu_hour['H100']"), or "" when it starts with no field path.
std::string FieldNamedBy(absl::string_view message);

// RESOURCE_EXHAUSTED with a google.rpc.RetryInfo of `retry_after_ms`; the message says it too.
absl::Status ResourceExhaustedWithRetry(absl::string_view message, int64_t retry_after_ms);

// The RetryInfo delay a server attached to `status`, if any (clients: back off that long).
std::optional<int64_t> RetryDelayMs(const grpc::Status& status);

}  // namespace tessera
