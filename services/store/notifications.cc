#include "services/store/notifications.h"

#include <array>
#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tessera::store {
namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;  // clang 14 does not deduce aggregates yet

// Decimal fields separated by single spaces, all of them and nothing else.
template <size_t N>
std::optional<std::array<int64_t, N>> Fields(std::string_view payload) {
  std::array<int64_t, N> out{};
  size_t i = 0;
  for (absl::string_view part : absl::StrSplit(absl::string_view(payload.data(), payload.size()), ' ')) {
    if (i == N) return std::nullopt;
    const auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), out[i]);
    if (error != std::errc() || end != part.data() + part.size() || part.empty()) return std::nullopt;
    ++i;
  }
  if (i != N) return std::nullopt;
  return out;
}

bool FitsAttempt(int64_t v) { return v >= 0 && v <= int64_t{UINT32_MAX}; }

}  // namespace

std::string_view ChannelOf(const Notification& notification) {
  return std::visit(Overloaded{[](const JobSubmitted&) { return std::string_view(kJobsChannel); },
                               [](const JobCancelled&) { return std::string_view(kCancelsChannel); },
                               [](const JobExtended&) { return std::string_view(kExtensionsChannel); },
                               [](const WorkerQuarantined&) { return std::string_view(kQuarantineChannel); }},
                    notification);
}

std::string EncodePayload(const Notification& notification) {
  return std::visit(
      Overloaded{[](const JobSubmitted& n) { return absl::StrCat(n.job_id); },
                 [](const JobCancelled& n) { return absl::StrCat(n.job_id, " ", n.attempt, " ", n.worker_id); },
                 [](const JobExtended& n) { return absl::StrCat(n.job_id, " ", n.attempt, " ", n.worker_id, " ", n.max_duration_ms); },
                 [](const WorkerQuarantined& n) { return absl::StrCat(n.worker_id); }},
      notification);
}

std::optional<Notification> DecodeNotification(std::string_view channel, std::string_view payload) {
  if (channel == kJobsChannel) {
    auto f = Fields<1>(payload);
    if (!f || (*f)[0] <= 0) return std::nullopt;
    return JobSubmitted{.job_id = (*f)[0]};
  }
  if (channel == kCancelsChannel) {
    auto f = Fields<3>(payload);
    if (!f || (*f)[0] <= 0 || !FitsAttempt((*f)[1]) || (*f)[2] < 0) return std::nullopt;
    return JobCancelled{.job_id = (*f)[0], .attempt = static_cast<uint32_t>((*f)[1]), .worker_id = (*f)[2]};
  }
  if (channel == kExtensionsChannel) {
    auto f = Fields<4>(payload);
    if (!f || (*f)[0] <= 0 || !FitsAttempt((*f)[1]) || (*f)[2] < 0 || (*f)[3] <= 0) return std::nullopt;
    return JobExtended{.job_id = (*f)[0], .attempt = static_cast<uint32_t>((*f)[1]), .worker_id = (*f)[2], .max_duration_ms = (*f)[3]};
  }
  if (channel == kQuarantineChannel) {
    auto f = Fields<1>(payload);
    if (!f || (*f)[0] <= 0) return std::nullopt;
    return WorkerQuarantined{.worker_id = (*f)[0]};
  }
  return std::nullopt;
}

void Notify(pqxx::work& tx, const Notification& notification) {
  tx.exec_params("SELECT pg_notify($1, $2)", std::string(ChannelOf(notification)), EncodePayload(notification));
}

void NotifySettle(pqxx::work& tx) { tx.exec0(absl::StrCat("NOTIFY ", kSettleChannel)); }

std::vector<std::string> SchedulerChannels() { return {kJobsChannel, kCancelsChannel, kExtensionsChannel, kQuarantineChannel}; }

}  // namespace tessera::store
