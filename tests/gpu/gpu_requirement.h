// Whether a GPU test runs, is skipped or fails. Without a GPU the GPU tests skip and say why; with
// TESSERA_REQUIRE_GPU=1 (set it on GPU machines and in GPU CI) a missing GPU, or a CUDA runtime
// that cannot start (a driver too old for CUDA 13, say), fails them with the runtime's own words,
// so that `ctest -L gpu` cannot pass having checked nothing. Plain C++: tests/unit checks it.
//
//   const GpuTestDecision d = DecideGpuTest(ProbeCuda(), MakeCudaBackend() != nullptr,
//                                           GpuRequired(std::getenv("TESSERA_REQUIRE_GPU")));
#pragma once

#include <string>

#include "kernels/cuda_devices.h"

namespace tessera::testing {

enum class GpuTestVerdict { kRun, kSkip, kFail };

struct GpuTestDecision {
  GpuTestVerdict verdict = GpuTestVerdict::kSkip;
  std::string message;  // why it does not run: the runtime's state and error text
};

// `backend_built`: MakeCudaBackend() is not null. `required`: a GPU must be here.
GpuTestDecision DecideGpuTest(const kernels::CudaProbe& probe, bool backend_built, bool required);

// TESSERA_REQUIRE_GPU's value (null when unset): required unless unset, empty or "0".
bool GpuRequired(const char* env_value);

}  // namespace tessera::testing
