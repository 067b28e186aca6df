#include "services/cli/stream_reconnect.h"

#include <iostream>
#include <thread>

namespace tessera::cli {
namespace {

constexpr auto kFirstBackoff = std::chrono::milliseconds(200);
constexpr auto kMaxBackoff = std::chrono::seconds(5);

// Codes a stream outlives: the server went away or refused for now.
bool Transient(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE || s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

}  // namespace

grpc::Status ReconnectingStream(std::string_view what, grpc::Channel& channel, std::chrono::milliseconds reconnect_for,
                                const std::function<grpc::Status(bool& received)>& once) {
  auto outage_ends = std::chrono::steady_clock::now() + reconnect_for;
  auto backoff = std::chrono::duration_cast<std::chrono::milliseconds>(kFirstBackoff);
  bool reported = false;
  for (;;) {
    bool received = false;
    grpc::Status s = once(received);
    if (s.ok()) return s;
    const auto now = std::chrono::steady_clock::now();
    if (received) {  // the outage starts now
      outage_ends = now + reconnect_for;
      backoff = kFirstBackoff;
      reported = false;
    }
    if (!Transient(s) || now >= outage_ends) return s;
    if (!reported) {
      std::cerr << what << ": the stream broke (" << s.error_message() << "); reconnecting for up to "
                << std::chrono::duration_cast<std::chrono::seconds>(outage_ends - now).count() << " s" << std::endl;
      reported = true;
    }
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(backoff, outage_ends - now));
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
    // Waits (within the outage) for the channel to connect rather than failing fast again.
    channel.WaitForConnected(std::chrono::system_clock::now() +
                             std::min<std::chrono::steady_clock::duration>(kMaxBackoff, outage_ends - std::chrono::steady_clock::now()));
  }
}

}  // namespace tessera::cli
