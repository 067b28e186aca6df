// Attaches a google.rpc.RetryInfo to the sync server's own refusal when every RPC thread is busy.
// gRPC 1.51 refuses such a call inside the library (RESOURCE_EXHAUSTED "Server Threadpool
// Exhausted", no details) before any service code runs; its status still passes through the
// server's interceptors (PRE_SEND_STATUS), so this is the one place to tell a client how long to
// back off, as the submit rate limit and the stream caps do.
//
//   builder.experimental().SetInterceptorCreators(ThreadCapRetryInterceptors(options.max_rpc_threads));
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace tessera::server {

// A refused call is told to come back after this long: the busy threads serve unary calls of a
// few milliseconds, or streams, so a second is ample and does not hammer a saturated server.
inline constexpr int64_t kThreadCapRetryAfterMs = 1'000;

// The message gRPC's sync server sends with its refusal (src/cpp/server/server_cc.cc).
inline constexpr char kGrpcThreadpoolExhausted[] = "Server Threadpool Exhausted";

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> ThreadCapRetryInterceptors(
    int max_rpc_threads);

}  // namespace tessera::server
