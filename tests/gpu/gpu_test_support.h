// The guard every GPU test opens with: true to go on; false after a WARN when there is no GPU; a
// FAIL carrying the CUDA runtime's error when TESSERA_REQUIRE_GPU=1 and there is none
// (gpu_requirement.h).
//
//   TEST_CASE("…", "[gpu]") {
//     if (!tessera::testing::HaveGpu()) return;
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>

#include "kernels/compute_backend.h"
#include "kernels/cuda_devices.h"
#include "tests/gpu/gpu_requirement.h"

namespace tessera::testing {

inline bool HaveGpu() {
  const GpuTestDecision d =
      DecideGpuTest(kernels::ProbeCuda(), kernels::MakeCudaBackend() != nullptr, GpuRequired(std::getenv("TESSERA_REQUIRE_GPU")));
  if (d.verdict == GpuTestVerdict::kFail) FAIL(d.message);
  if (d.verdict == GpuTestVerdict::kSkip) WARN(d.message);
  return d.verdict == GpuTestVerdict::kRun;
}

}  // namespace tessera::testing
