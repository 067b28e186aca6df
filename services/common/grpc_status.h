// Converts module statuses to gRPC statuses at the RPC edge.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace tessera {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace tessera
