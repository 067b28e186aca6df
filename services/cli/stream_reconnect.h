// A CLI stream that outlives a server restart, a failover or a network blip (`job watch`, `job logs
// -f`): a stream that breaks with UNAVAILABLE or RESOURCE_EXHAUSTED is reopened (the caller resumes
// where it was) with a backoff, for at most `reconnect_for` without a stream that delivered
// anything, as `kubectl logs -f` users expect. Any other error ends it.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string_view>

namespace tessera::cli {

// Runs `once` until it returns OK, a lasting error, or the outage outlasts `reconnect_for`; `once`
// sets its `received` argument when its stream delivered something. The last status.
grpc::Status ReconnectingStream(std::string_view what, grpc::Channel& channel, std::chrono::milliseconds reconnect_for,
                                const std::function<grpc::Status(bool& received)>& once);

}  // namespace tessera::cli
