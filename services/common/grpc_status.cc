#include "services/common/grpc_status.h"

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace tessera {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  google::rpc::Status details;
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    google::protobuf::Any* any = details.add_details();
    any->set_type_url(std::string(type_url));
    any->set_value(std::string(payload));
  });
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
