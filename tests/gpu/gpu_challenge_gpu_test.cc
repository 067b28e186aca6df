// Proof of GPU on a real NVIDIA GPU (`ctest -L gpu`): the CUDA backend's int8 product is the CPU
// reference's, bit for bit, and its time fits the throughput range of the model the device reports
// (the range the server holds a worker claiming that model to).
#include <catch2/catch.hpp>

#include "kernels/compute_backend.h"
#include "kernels/cuda_devices.h"
#include "services/common/gpu_challenge_proof.h"

using namespace tessera;
using namespace tessera::kernels;

TEST_CASE("the CUDA challenge product is the CPU reference's, and its time fits the device's model", "[gpu][challenge]") {
  absl::StatusOr<std::vector<CudaDevice>> devices = ListCudaDevices();
  REQUIRE(devices.ok());
  std::unique_ptr<ComputeBackend> cuda = MakeCudaBackend();
  if (devices->empty() || cuda == nullptr) {
    WARN("SKIPPED: no CUDA device (or a build without CUDA); run on a GPU machine with `ctest -L gpu`");
    return;
  }
  // 100 is no multiple of 4: the plain kernel's path, where cuBLAS refuses the size.
  for (uint32_t n : {100u, 256u}) {
    const ChallengeSpec spec{.seed = 5 + n, .n = n};
    absl::StatusOr<ChallengeRun> run = cuda->RunChallenge(spec, 0);
    REQUIRE(run.ok());
    CHECK(run->product == ChallengeProduct(spec));
  }
  const std::string model = MarketModelName(devices->front().name);
  const Int8Throughput* range = Int8ThroughputOf(model);
  INFO("device " << devices->front().name << " is sold as '" << model << "'");
  REQUIRE(range != nullptr);
  const ChallengeSpec spec{.seed = 99, .n = range->challenge_n};
  absl::StatusOr<ChallengeRun> run = cuda->RunChallenge(spec, 0);
  REQUIRE(run.ok());
  const double ms = run->elapsed_us / 1e3;
  WARN("challenge n = " << spec.n << " on " << model << ": " << ms << " ms, "
                        << ChallengeTops(spec.n, ms) << " int8 TOPS");
  CHECK(CheckChallengeTime(model, spec.n, ms).ok());
  // The server checks k rows of the full product; a few here, against the CPU's rows.
  std::vector<int8_t> a, b;
  ChallengeOperands(spec, a, b);
  const CommittedProduct committed = CommitProduct(std::move(run->product), spec.n);
  for (uint32_t row : {0u, 1'234u % spec.n, spec.n - 1}) CHECK(CheckOpening(spec, a, b, committed.root, OpenRow(committed, row)).ok());
}
