#include "services/common/grpc_status.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace tessera {

std::string FieldNamedBy(absl::string_view message) {
  // A path: identifiers of [a-z0-9_] joined by '.', each optionally indexed ("[...]").
  size_t i = 0;
  bool structured = false;  // a '.', '_' or index: no English word looks like that
  while (i < message.size()) {
    const size_t start = i;
    while (i < message.size() && (absl::ascii_islower(message[i]) || absl::ascii_isdigit(message[i]) || message[i] == '_')) {
      structured |= message[i] == '_';
      ++i;
    }
    if (i == start || !absl::ascii_islower(message[start])) return "";
    if (i < message.size() && message[i] == '[') {
      const size_t close = message.find(']', i);
      if (close == absl::string_view::npos) return "";
      i = close + 1;
      structured = true;
    }
    if (i < message.size() && message[i] == '.') {
      structured = true;
      ++i;
      continue;
    }
    break;
  }
  const absl::string_view path = message.substr(0, i);
  const absl::string_view rest = message.substr(i);
  // A plain word is a field only where the sentence goes on as a rule about it.
  const bool rule = absl::StartsWith(rest, ": ") || absl::StartsWith(rest, " must ") || absl::StartsWith(rest, " is ") ||
                    absl::StartsWith(rest, " lists ") || absl::StartsWith(rest, " '");
  if (path.empty() || (!structured && !rule) || (!rest.empty() && rest[0] != ' ' && rest[0] != ':')) return "";
  return std::string(path);
}

grpc::Status InvalidArgumentStatus(absl::string_view message) { return ToGrpcStatus(absl::InvalidArgumentError(message)); }

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  google::rpc::Status details;
  bool bad_request = false;
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    google::protobuf::Any* any = details.add_details();
    any->set_type_url(std::string(type_url));
    any->set_value(std::string(payload));
    bad_request |= type_url == kBadRequestTypeUrl;
  });
  if (code == grpc::StatusCode::INVALID_ARGUMENT && !bad_request) {
    google::rpc::BadRequest request;
    google::rpc::BadRequest::FieldViolation* violation = request.add_field_violations();
    violation->set_field(FieldNamedBy(message));
    violation->set_description(message);
    google::protobuf::Any* any = details.add_details();
    any->set_type_url(kBadRequestTypeUrl);
    any->set_value(request.SerializeAsString());
  }
  if (details.details_size() == 0) return grpc::Status(code, message);
  details.set_code(static_cast<int32_t>(code));
  details.set_message(message);
  return grpc::Status(code, message, details.SerializeAsString());
}

absl::Status ResourceExhaustedWithRetry(absl::string_view message, int64_t retry_after_ms) {
  absl::Status status = absl::ResourceExhaustedError(absl::StrCat(message, "; retry after ", retry_after_ms, " ms"));
  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(retry_after_ms / 1'000);
  retry.mutable_retry_delay()->set_nanos(static_cast<int32_t>(retry_after_ms % 1'000) * 1'000'000);
  status.SetPayload(kRetryInfoTypeUrl, absl::Cord(retry.SerializeAsString()));
  return status;
}

std::optional<int64_t> RetryDelayMs(const grpc::Status& status) {
  google::rpc::Status details;
  if (status.error_details().empty() || !details.ParseFromString(status.error_details())) return std::nullopt;
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::RetryInfo retry;
    if (any.type_url() == kRetryInfoTypeUrl && retry.ParseFromString(any.value())) {
      return retry.retry_delay().seconds() * 1'000 + retry.retry_delay().nanos() / 1'000'000;
    }
  }
  return std::nullopt;
}

}  // namespace tessera
