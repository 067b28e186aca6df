#include "tests/gpu/gpu_requirement.h"

#include <string_view>

#include "absl/strings/str_cat.h"

namespace tessera::testing {

GpuTestDecision DecideGpuTest(const kernels::CudaProbe& probe, bool backend_built, bool required) {
  if (probe.state == kernels::CudaRuntimeState::kReady && backend_built) return {.verdict = GpuTestVerdict::kRun, .message = ""};
  const std::string why = probe.state == kernels::CudaRuntimeState::kReady
                              ? "a CUDA device but no CUDA backend in this build"
                              : absl::StrCat(std::string(kernels::CudaRuntimeStateName(probe.state)), ": ", probe.error);
  if (required) return {.verdict = GpuTestVerdict::kFail, .message = absl::StrCat("TESSERA_REQUIRE_GPU is set, but ", why)};
  return {.verdict = GpuTestVerdict::kSkip,
          .message = absl::StrCat("SKIPPED (", why, "); on a GPU machine run `TESSERA_REQUIRE_GPU=1 ctest -L gpu`")};
}

bool GpuRequired(const char* env_value) {
  if (env_value == nullptr) return false;
  const std::string_view v(env_value);
  return !v.empty() && v != "0";
}

}  // namespace tessera::testing
