// API key format and checking, the access policy's coverage of the API, the per-key token bucket
// and the RetryInfo it attaches; what a key file may hold.
#include <catch2/catch.hpp>
#include <google/protobuf/descriptor.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "services/auth/access_policy.h"
#include "services/auth/api_key.h"
#include "services/auth/client_channel.h"
#include "services/auth/rate_limiter.h"
#include "services/common/clock.h"
#include "services/common/grpc_status.h"
#include "tessera/v1/admin.grpc.pb.h"
#include "tessera/v1/artifacts.grpc.pb.h"
#include "tessera/v1/billing.grpc.pb.h"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tessera/v1/logs.grpc.pb.h"
#include "tessera/v1/workers.grpc.pb.h"

namespace tessera::auth {
namespace {

TEST_CASE("an API key is tsk_<id>_<secret> and only its secret's hash is needed to check it", "[auth]") {
  const GeneratedApiKey key = GenerateApiKey();
  REQUIRE(key.text.size() == 85);
  absl::StatusOr<ParsedApiKey> parsed = ParseApiKey(key.text);
  REQUIRE(parsed.ok());
  CHECK(parsed->key_id == key.key_id);
  CHECK(IsKeyId(parsed->key_id));
  CHECK(key.secret_sha256.size() == 32);
  CHECK(SecretMatches(key.secret_sha256, parsed->secret));
  std::string other = parsed->secret;
  other[0] = other[0] == 'a' ? 'b' : 'a';
  CHECK_FALSE(SecretMatches(key.secret_sha256, other));
  CHECK_FALSE(SecretMatches("short", parsed->secret));
  CHECK(GenerateApiKey().text != key.text);

  for (const std::string& bad : std::vector<std::string>{"", "tsk_", key.text.substr(1), key.text + "0", "tsk_0123456789ABCDEF_" + std::string(64, 'a'),
                                "tsk_0123456789abcdef-" + std::string(64, 'a'), "tsk_0123456789abcdef_" + std::string(64, 'g')}) {
    absl::StatusOr<ParsedApiKey> refused = ParseApiKey(bad);
    CHECK(absl::IsUnauthenticated(refused.status()));
    CHECK(refused.status().message() == "malformed API key: expected tsk_<16 hex>_<64 hex>");
  }
}

TEST_CASE("the access policy names every RPC of the API, and fails closed on others", "[auth]") {
  std::set<std::string> api;
  for (const char* service : {v1::JobService::service_full_name(), v1::WorkerService::service_full_name(),
                              v1::BillingService::service_full_name(), v1::AdminService::service_full_name(),
                              v1::ArtifactService::service_full_name(), v1::LogService::service_full_name()}) {
    const auto* d = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
    REQUIRE(d != nullptr);
    for (int i = 0; i < d->method_count(); ++i) api.insert(d->full_name() + "/" + d->method(i)->name());
  }
  const std::vector<std::string> policy = PolicyMethods();
  CHECK(std::set<std::string>(policy.begin(), policy.end()) == api);
  CHECK(policy.size() == api.size());  // each named once
  CHECK(RoleMayCall(v1::ROLE_ADMIN, "tessera.v1.Nope/Nothing"));
  CHECK_FALSE(RoleMayCall(v1::ROLE_CUSTOMER, "tessera.v1.Nope/Nothing"));
  CHECK_FALSE(RoleMayCall(v1::ROLE_UNSPECIFIED, "tessera.v1.JobService/SubmitJob"));
}

TEST_CASE("account scoping: admins act for anyone, everyone else for their own account only", "[auth]") {
  const Caller acme{.key_id = "k", .role = v1::ROLE_CUSTOMER, .account_id = 7, .account = "acme"};
  const Caller admin{.key_id = "a", .role = v1::ROLE_ADMIN, .account_id = 0, .account = ""};
  CHECK(RequireAccount(acme, "account", "acme").ok());
  CHECK(RequireAccount(admin, "account", "globex").ok());
  const absl::Status denied = RequireAccount(acme, "account", "globex");
  CHECK(absl::IsPermissionDenied(denied));
  CHECK(denied.message() == "this API key acts for account 'acme', not for account 'globex'");
  CHECK(*ScopeAccountFilter(acme, "account", "") == "acme");
  CHECK(*ScopeAccountFilter(acme, "account", "acme") == "acme");
  CHECK(absl::IsPermissionDenied(ScopeAccountFilter(acme, "account", "globex").status()));
  CHECK(*ScopeAccountFilter(admin, "account", "") == "");
  CHECK(MaySee(acme, "acme"));
  CHECK_FALSE(MaySee(acme, "globex"));
  CHECK(MaySee(admin, "globex"));
}

TEST_CASE("the token bucket allows the burst, then the rate, and says when to retry", "[auth]") {
  ManualClock clock(1'000'000);
  RateLimiter limiter(clock, 10, 3, "SubmitJob");  // 10/s: a token every 100 ms
  for (int i = 0; i < 3; ++i) CHECK(limiter.Take("k").ok());
  const absl::Status over = limiter.Take("k");
  REQUIRE(absl::IsResourceExhausted(over));
  CHECK(over.message() == "SubmitJob rate limit of 10/s (burst 3) exceeded for this API key; retry after 100 ms");
  CHECK(RetryDelayMs(ToGrpcStatus(over)) == 100);
  CHECK(limiter.Take("other").ok());  // buckets are per key
  clock.Advance(40);
  const absl::Status still = limiter.Take("k");
  CHECK(RetryDelayMs(ToGrpcStatus(still)) == 60);
  clock.Advance(60);
  CHECK(limiter.Take("k").ok());
  CHECK_FALSE(limiter.Take("k").ok());
  clock.Advance(10'000);  // refills to the burst, never beyond
  for (int i = 0; i < 3; ++i) CHECK(limiter.Take("k").ok());
  CHECK_FALSE(limiter.Take("k").ok());

  RateLimiter unlimited(clock, 0, 1, "SubmitJob");
  for (int i = 0; i < 1'000; ++i) REQUIRE(unlimited.Take("k").ok());
}

TEST_CASE("statuses without payloads carry no details; RetryInfo survives the trip to gRPC", "[auth]") {
  const grpc::Status plain = ToGrpcStatus(absl::NotFoundError("job 1 not found"));
  CHECK(plain.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(plain.error_details().empty());
  CHECK_FALSE(RetryDelayMs(plain).has_value());
  const grpc::Status limited = ToGrpcStatus(ResourceExhaustedWithRetry("busy", 2'345));
  CHECK(limited.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(limited.error_message() == "busy; retry after 2345 ms");
  CHECK(RetryDelayMs(limited) == 2'345);
}

}  // namespace
}  // namespace tessera::auth

namespace tessera::auth {
TEST_CASE("a key file is one key on one line: anything a gRPC header cannot carry is refused with the file named", "[auth]") {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("tessera-keyfile-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto write = [&](const std::string& name, const std::string& text) {
    const std::filesystem::path p = dir / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  };
  const std::string key = "tsk_0123456789abcdef_" + std::string(64, 'a');
  REQUIRE(ReadApiKeyFile(write("good", "  " + key + "\n\n")).value() == key);

  const absl::StatusOr<std::string> two_lines = ReadApiKeyFile(write("two", key + "\n" + key + "\n"));
  REQUIRE(two_lines.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(two_lines.status().message()), Catch::Contains("more than one line") && Catch::Contains((dir / "two").string()));

  const absl::StatusOr<std::string> control = ReadApiKeyFile(write("control", "tsk_\x01x"));
  REQUIRE(control.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(control.status().message()), Catch::Contains("byte 0x01 at offset 4"));
  CHECK(ReadApiKeyFile(write("space", "tsk_a b")).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ReadApiKeyFile(write("empty", " \n")).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ReadApiKeyFile(write("long", std::string(kMaxApiKeyBytes + 1, 'k'))).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ReadApiKeyFile(dir / "missing").status().code() == absl::StatusCode::kNotFound);
  CHECK(ValidateApiKeyText("tsk_x\r", "--api-key").message() == "--api-key holds more than one line; it must hold exactly one API key (tsk_…)");
  std::filesystem::remove_all(dir);
}
}  // namespace tessera::auth
