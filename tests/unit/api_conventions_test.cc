// What a client in any language relies on at the RPC edge: INVALID_ARGUMENT names its field in a
// google.rpc.BadRequest, page tokens are opaque and bound to their query, enums have one stored name.
#include <catch2/catch.hpp>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "services/common/enum_names.h"
#include "services/common/grpc_status.h"
#include "services/common/pagination.h"
#include "tessera/v1/admin.pb.h"

using namespace tessera;

namespace {

google::rpc::BadRequest BadRequestOf(const grpc::Status& status) {
  google::rpc::Status details;
  REQUIRE(details.ParseFromString(status.error_details()));
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::BadRequest request;
    if (any.type_url() == kBadRequestTypeUrl && request.ParseFromString(any.value())) return request;
  }
  FAIL("no google.rpc.BadRequest in the status details");
  return {};
}

}  // namespace

TEST_CASE("api: every INVALID_ARGUMENT carries a BadRequest naming the field its message starts with", "[api]") {
  CHECK(FieldNamedBy("spec.gpu_count must be 1..64, got 0") == "spec.gpu_count");
  CHECK(FieldNamedBy("gpus.uuid 'GPU-1' is listed twice") == "gpus.uuid");
  CHECK(FieldNamedBy("policy.min_bid_utok_per_gpu_hour['H100'] must be positive, got -1") == "policy.min_bid_utok_per_gpu_hour['H100']");
  CHECK(FieldNamedBy("job_id must be positive") == "job_id");
  CHECK(FieldNamedBy("name must be 1..128 characters") == "name");
  CHECK(FieldNamedBy("period: from_ms and to_ms must be 0 or positive") == "period");
  CHECK(FieldNamedBy("kind: unknown fraud signal kind 99") == "kind");
  CHECK(FieldNamedBy("leaf_index 7 is out of range") == "leaf_index");
  // Sentences that do not start with a field name none.
  CHECK(FieldNamedBy("negative bid, GPU count or duration").empty());
  CHECK(FieldNamedBy("usage and price must not be negative").empty());
  CHECK(FieldNamedBy("an Ed25519 secret key is 64 bytes").empty());
  CHECK(FieldNamedBy("").empty());

  const grpc::Status s = InvalidArgumentStatus("spec.gpu_count must be 1..64, got 0");
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.error_message() == "spec.gpu_count must be 1..64, got 0");
  const google::rpc::BadRequest request = BadRequestOf(s);
  REQUIRE(request.field_violations_size() == 1);
  CHECK(request.field_violations(0).field() == "spec.gpu_count");
  CHECK(request.field_violations(0).description() == "spec.gpu_count must be 1..64, got 0");
  // Other codes carry no BadRequest; a RetryInfo still travels.
  CHECK(ToGrpcStatus(absl::NotFoundError("job 5 not found")).error_details().empty());
  CHECK(RetryDelayMs(ToGrpcStatus(ResourceExhaustedWithRetry("too many", 2'000))) == 2'000);
}

TEST_CASE("api: page tokens are opaque and good only for the query that issued them", "[api]") {
  const PageQuery jobs{.list = "jobs", .filters = "acme|"};
  const std::string token = NextPageToken(jobs, 42);
  CHECK(token.find("42") == std::string::npos);
  absl::StatusOr<Page> page = ParsePage(jobs, token, 10);
  REQUIRE(page.ok());
  CHECK(page->after == 42);
  CHECK(page->before_id() == 42);
  CHECK(page->size == 10);
  // First page: no cursor, the default size.
  page = ParsePage(jobs, "", 0);
  REQUIRE(page.ok());
  CHECK(!page->after.has_value());
  CHECK(page->size == 50);
  CHECK(page->before_id() == INT64_MAX);
  // A bare id, garbage, another list's or another filter's token, a size over 500: INVALID_ARGUMENT.
  for (const std::string& bad : {std::string("-5"), std::string("42"), std::string("!!!"), token.substr(1)}) {
    INFO(bad);
    CHECK(ParsePage(jobs, bad, 0).status().code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(ParsePage({.list = "transfers", .filters = "acme|"}, token, 0).status().code() == absl::StatusCode::kInvalidArgument);
  const absl::Status other = ParsePage({.list = "jobs", .filters = "acme|FAILED"}, token, 0).status();
  CHECK(other.code() == absl::StatusCode::kInvalidArgument);
  CHECK(FieldNamedBy(other.message()) == "page_token");
  CHECK(ParsePage(jobs, "", 501).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("api: enum values have one stored name, read from the descriptors", "[api]") {
  CHECK(StoredName(v1::FRAUD_SIGNAL_KIND_DUPLICATE_GPU_UUID) == "DUPLICATE_GPU_UUID");
  CHECK(ParseStoredName<v1::FraudSignalKind>("CHALLENGE_FAILED") == v1::FRAUD_SIGNAL_KIND_CHALLENGE_FAILED);
  CHECK(!ParseStoredName<v1::FraudSignalKind>("UNSPECIFIED").has_value());
  CHECK(!ParseStoredName<v1::FraudSignalKind>("NOPE").has_value());
  CHECK(StoredName(v1::CHALLENGE_OUTCOME_ABANDONED) == "ABANDONED");
  CHECK(ParseStoredName<v1::ChallengeReason>("RECHECK") == v1::CHALLENGE_REASON_RECHECK);
  CHECK(ParseLedgerBucket("payout_pending") == v1::LEDGER_BUCKET_PAYOUT_PENDING);
  CHECK(ParseLedgerBucket("main") == v1::LEDGER_BUCKET_TREASURY);
  CHECK(LedgerBucketStoredName(v1::LEDGER_BUCKET_TREASURY) == "main");
  CHECK(LedgerBucketStoredName(v1::LEDGER_BUCKET_FEES) == "fees");
  // Every kind the database may hold (migrations/0017) has an enum value.
  for (const char* kind : {"BAD_SIGNATURE", "BAD_RESULT_SIGNATURE", "REPLAYED_REPORT", "OVER_CLAIM", "FUTURE_DATED", "UNLEASED_REPORT",
                           "DUPLICATE_GPU_UUID", "SUBNET_CROWD", "PROVIDER_FLEET", "TELEMETRY_ANOMALY", "ADMIN_QUARANTINE",
                           "CHALLENGE_FAILED"}) {
    INFO(kind);
    CHECK(ParseStoredName<v1::FraudSignalKind>(kind).has_value());
  }
}
