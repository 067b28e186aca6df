// libFuzzer target: a job spec file as `tessera job submit -f` reads it (YAML or JSON), then the
// intake validator over what it parsed. Beyond not crashing, it checks that a refusal is always an
// INVALID_ARGUMENT that says something, that a parsed spec prints back to JSON that parses to the
// same spec, and that a spec the validator accepts has a hold that can be reserved.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstdint>
#include <string>

#include "services/cli/job_spec_file.h"
#include "base/check.h"
#include "services/common/money.h"
#include "services/intake/job_spec_validator.h"

namespace {

bool ClearRefusal(const absl::Status& s) { return s.code() == absl::StatusCode::kInvalidArgument && !s.message().empty(); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tessera::v1::JobSpec> spec = tessera::cli::ParseJobSpec(text);
  if (!spec.ok()) {
    TESSERA_CHECK(ClearRefusal(spec.status()));
    return 0;
  }
  std::string json;
  TESSERA_CHECK(google::protobuf::util::MessageToJsonString(*spec, &json).ok());
  absl::StatusOr<tessera::v1::JobSpec> again = tessera::cli::ParseJobSpec(json);
  TESSERA_CHECK(again.ok());
  TESSERA_CHECK(google::protobuf::util::MessageDifferencer::Equals(*again, *spec));

  const absl::Status valid = tessera::intake::ValidateJobSpec(*spec);
  if (!valid.ok()) {
    TESSERA_CHECK(ClearRefusal(valid));
    return 0;
  }
  absl::StatusOr<int64_t> hold = tessera::HoldAmount(spec->bid_utok_per_gpu_hour(), spec->gpu_count(), spec->max_duration_ms());
  TESSERA_CHECK(hold.ok() && *hold > 0);
  return 0;
}
