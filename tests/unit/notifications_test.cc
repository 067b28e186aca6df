// The NOTIFY payloads between processes: what one encodes the other decodes, and a payload that is
// not exactly one of them is refused (the scheduler then re-reads PostgreSQL).
#include <catch2/catch.hpp>

#include "services/store/notifications.h"

using namespace tessera::store;

namespace {

Notification RoundTrip(const Notification& n) {
  const std::optional<Notification> back = DecodeNotification(ChannelOf(n), EncodePayload(n));
  REQUIRE(back.has_value());
  return *back;
}

}  // namespace

TEST_CASE("every notification decodes to what was encoded, on its own channel", "[notifications]") {
  const std::vector<Notification> all = {
      JobSubmitted{.job_id = 42},
      JobCancelled{.job_id = 7, .attempt = 2, .worker_id = 0},
      JobCancelled{.job_id = 7, .attempt = 4'294'967'295u, .worker_id = 9'007'199'254'740'993},
      JobExtended{.job_id = 5, .attempt = 1, .worker_id = 3, .max_duration_ms = 2'592'000'000},
      WorkerQuarantined{.worker_id = 11},
  };
  for (const Notification& n : all) {
    INFO(ChannelOf(n) << " " << EncodePayload(n));
    CHECK(RoundTrip(n) == n);
  }
  CHECK(ChannelOf(JobSubmitted{.job_id = 1}) == "tessera_jobs");
  CHECK(ChannelOf(JobCancelled{}) == "tessera_cancels");
  CHECK(ChannelOf(JobExtended{}) == "tessera_extensions");
  CHECK(ChannelOf(WorkerQuarantined{}) == "tessera_quarantine");
  CHECK(SchedulerChannels() == std::vector<std::string>{"tessera_jobs", "tessera_cancels", "tessera_extensions", "tessera_quarantine"});
}

TEST_CASE("a payload that is not exactly one notification is refused", "[notifications]") {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"tessera_jobs", ""},         {"tessera_jobs", "x"},          {"tessera_jobs", "0"},
      {"tessera_jobs", "-5"},       {"tessera_jobs", "12 13"},      {"tessera_jobs", " 12"},
      {"tessera_jobs", "12abc"},    {"tessera_cancels", "7 1"},     {"tessera_cancels", "7 1 3 4"},
      {"tessera_cancels", "7  1 3"}, {"tessera_cancels", "7 4294967296 3"}, {"tessera_cancels", "7 1 -3"},
      {"tessera_extensions", "5 1 3"}, {"tessera_extensions", "5 1 3 0"}, {"tessera_quarantine", "0"},
      {"tessera_settle", "1"},      {"no_such_channel", "1"},       {"tessera_jobs", "99999999999999999999"},
  };
  for (const auto& [channel, payload] : bad) {
    INFO(channel << " '" << payload << "'");
    CHECK_FALSE(DecodeNotification(channel, payload).has_value());
  }
}
