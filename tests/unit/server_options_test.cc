#include <catch2/catch.hpp>

#include "services/server/tessera_server.h"

using tessera::server::ValidateServices;

TEST_CASE("--services accepts any non-empty subset of the three services", "[server]") {
  CHECK(ValidateServices({"intake"}).ok());
  CHECK(ValidateServices({"intake", "scheduler", "billing"}).ok());
  CHECK(ValidateServices({}).code() == absl::StatusCode::kInvalidArgument);
  const absl::Status bad = ValidateServices({"intake", "sheduler"});
  CHECK(bad.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(bad.message()), Catch::Contains("unknown service 'sheduler'"));
}
