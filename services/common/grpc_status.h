// Converts module statuses to gRPC statuses at the RPC edge (and back, for clients).
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace tessera {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace tessera
