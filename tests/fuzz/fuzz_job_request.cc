// libFuzzer target: SubmitJobRequest and ExtendJobRequest as they reach JobService, protobuf bytes
// off the wire, through the intake validator. A refusal is always an INVALID_ARGUMENT that says
// something; an accepted request survives a serialize/parse round trip still valid, and its spec's
// hold can be reserved.
#include <cstdint>
#include <string>

#include "base/check.h"
#include "services/common/money.h"
#include "services/intake/job_spec_validator.h"
#include "services/common/names.h"

namespace {

bool ClearRefusal(const absl::Status& s) { return s.code() == absl::StatusCode::kInvalidArgument && !s.message().empty(); }

void CheckSubmit(const std::string& bytes) {
  tessera::v1::SubmitJobRequest request;
  if (!request.ParseFromString(bytes)) return;  // gRPC refuses what does not parse before a handler runs
  const absl::Status valid = tessera::intake::ValidateSubmitRequest(request);
  if (!valid.ok()) {
    TESSERA_CHECK(ClearRefusal(valid));
    return;
  }
  tessera::v1::SubmitJobRequest again;
  TESSERA_CHECK(again.ParseFromString(request.SerializeAsString()));
  TESSERA_CHECK(tessera::intake::ValidateSubmitRequest(again).ok());
  const tessera::v1::JobSpec& spec = request.spec();
  absl::StatusOr<int64_t> hold = tessera::HoldAmount(spec.bid_utok_per_gpu_hour(), spec.gpu_count(), spec.max_duration_ms());
  TESSERA_CHECK(hold.ok() && *hold > 0);
}

void CheckExtend(const std::string& bytes) {
  tessera::v1::ExtendJobRequest request;
  if (!request.ParseFromString(bytes)) return;
  const absl::Status valid = tessera::intake::ValidateExtendRequest(request);
  if (!valid.ok()) {
    TESSERA_CHECK(ClearRefusal(valid));
    return;
  }
  TESSERA_CHECK(request.job_id() > 0 && request.additional_duration_ms() > 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  CheckSubmit(bytes);
  CheckExtend(bytes);
  const absl::Status name = tessera::ValidateName("account", bytes);
  TESSERA_CHECK(name.ok() || ClearRefusal(name));
  return 0;
}
