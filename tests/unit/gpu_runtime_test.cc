// The GPU runtime's edges that need no GPU: NVML reads the GPU the CUDA ordinal names (by its UUID,
// never by NVML's own index), the device query tells "no device" from "the runtime did not start",
// and a GPU test skips without a GPU but fails when TESSERA_REQUIRE_GPU asks for one, with the
// runtime's error text (tests/gpu/gpu_requirement.h).
#include <catch2/catch.hpp>

#include "kernels/cuda_devices.h"
#include "services/worker/gpu_sampler.h"
#include "tests/gpu/gpu_requirement.h"

namespace tessera {
namespace {

using kernels::CudaProbe;
using kernels::CudaRuntimeState;
using testing::DecideGpuTest;
using testing::GpuTestVerdict;

TEST_CASE("NVML is asked for the GPU by the UUID of its CUDA ordinal", "[gpu-runtime]") {
  // CUDA_VISIBLE_DEVICES=2,0: CUDA ordinal 0 is the machine's GPU 2, whose NVML index is 2.
  const std::vector<std::string> by_ordinal = {"GPU-2c2c2c2c-0000-1111-2222-333344445555",
                                               "GPU-0a0a0a0a-aaaa-bbbb-cccc-ddddeeeeffff"};
  CHECK(worker::NvmlUuidForOrdinal(by_ordinal, 0) == by_ordinal[0]);
  CHECK(worker::NvmlUuidForOrdinal(by_ordinal, 1) == by_ordinal[1]);
  // An ordinal the inventory does not have, or one without a GPU UUID, is read from no GPU at all.
  CHECK_FALSE(worker::NvmlUuidForOrdinal(by_ordinal, 2).has_value());
  CHECK_FALSE(worker::NvmlUuidForOrdinal({}, 0).has_value());
  CHECK_FALSE(worker::NvmlUuidForOrdinal({"CPU-0123456789abcdef0123456789abcdef"}, 0).has_value());
  CHECK_FALSE(worker::NvmlUuidForOrdinal({""}, 0).has_value());
  CHECK_FALSE(worker::NvmlUuidForOrdinal({"GPU-2c2c2c2c-0000-1111-2222-33334444555"}, 0).has_value());   // one short
  CHECK_FALSE(worker::NvmlUuidForOrdinal({"GPU-2c2c2c2c_0000-1111-2222-333344445555"}, 0).has_value());  // no dash
  CHECK_FALSE(worker::NvmlUuidForOrdinal({"GPU-2c2c2c2c-0000-1111-2222-33334444555z"}, 0).has_value());  // not hex
}

TEST_CASE("the device query says whether the runtime started, with its words when not", "[gpu-runtime]") {
  const CudaProbe probe = kernels::ProbeCuda();
  INFO(kernels::CudaRuntimeStateName(probe.state) << ": " << probe.error);
  if (probe.state == CudaRuntimeState::kReady) {
    CHECK(!probe.devices.empty());
    CHECK(probe.error.empty());
  } else {
    CHECK(probe.devices.empty());
    CHECK(!probe.error.empty());  // e.g. "cudaGetDeviceCount: cudaErrorInsufficientDriver (…)"
  }
}

TEST_CASE("a GPU test runs with a GPU, skips without one, and fails without one when a GPU is required", "[gpu-runtime]") {
  const CudaProbe ready{.state = CudaRuntimeState::kReady, .error = "", .devices = {kernels::CudaDevice{}}};
  const CudaProbe too_old{.state = CudaRuntimeState::kStartFailed,
                          .error = "cudaGetDeviceCount: cudaErrorInsufficientDriver (CUDA driver version is insufficient for CUDA "
                                   "runtime version)",
                          .devices = {}};
  const CudaProbe none{.state = CudaRuntimeState::kNoDevice, .error = "cudaGetDeviceCount: cudaErrorNoDevice (no CUDA-capable device)",
                       .devices = {}};
  CHECK(DecideGpuTest(ready, true, false).verdict == GpuTestVerdict::kRun);
  CHECK(DecideGpuTest(ready, true, true).verdict == GpuTestVerdict::kRun);

  const testing::GpuTestDecision skipped = DecideGpuTest(too_old, true, false);
  CHECK(skipped.verdict == GpuTestVerdict::kSkip);
  CHECK_THAT(skipped.message, Catch::Contains("SKIPPED") && Catch::Contains("cudaErrorInsufficientDriver"));

  // The case that let `ctest -L gpu` pass on a GPU machine with a driver too old: now a failure.
  const testing::GpuTestDecision failed = DecideGpuTest(too_old, true, true);
  CHECK(failed.verdict == GpuTestVerdict::kFail);
  CHECK_THAT(failed.message, Catch::Contains("the CUDA runtime could not start") && Catch::Contains("cudaErrorInsufficientDriver"));
  const testing::GpuTestDecision no_device = DecideGpuTest(none, true, true);
  CHECK(no_device.verdict == GpuTestVerdict::kFail);
  CHECK_THAT(no_device.message, Catch::Contains("no CUDA device"));
  // A device but a build without the CUDA backend checks nothing either.
  CHECK(DecideGpuTest(ready, false, true).verdict == GpuTestVerdict::kFail);
  CHECK(DecideGpuTest(ready, false, false).verdict == GpuTestVerdict::kSkip);

  CHECK(testing::GpuRequired("1"));
  CHECK(testing::GpuRequired("yes"));
  CHECK_FALSE(testing::GpuRequired(nullptr));
  CHECK_FALSE(testing::GpuRequired(""));
  CHECK_FALSE(testing::GpuRequired("0"));
}

}  // namespace
}  // namespace tessera
