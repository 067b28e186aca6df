// Proof of GPU on a real NVIDIA GPU (`ctest -L gpu`): the CUDA backend's int8 product is the CPU
// reference's, bit for bit, on the path the size calls for (cuBLAS's int8 tensor cores, or the plain
// kernel for a small odd size); a large size cuBLAS cannot take fails instead of answering slowly;
// and the time of a model-sized challenge fits the range of the model the device reports (the range
// the server holds a worker claiming that model to).
#include <catch2/catch.hpp>

#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "kernels/compute_backend.h"
#include "kernels/cuda_devices.h"
#include "services/common/gpu_challenge_proof.h"
#include "tests/gpu/gpu_test_support.h"

using namespace tessera;
using namespace tessera::kernels;
using tessera::testing::HaveGpu;

TEST_CASE("the CUDA challenge product is the CPU reference's on the path its size calls for", "[gpu][challenge]") {
  if (!HaveGpu()) return;
  std::unique_ptr<ComputeBackend> cuda = MakeCudaBackend();
  // 101 is no multiple of 4: cuBLAS's int8 GEMM cannot take it, the plain kernel does.
  const std::vector<std::pair<uint32_t, ChallengePath>> cases = {
      {101, ChallengePath::kFallbackKernel}, {256, ChallengePath::kCublasInt8}, {260, ChallengePath::kCublasInt8}};
  for (const auto& [n, path] : cases) {
    const ChallengeSpec spec{.seed = 5 + n, .n = n};
    absl::StatusOr<ChallengeRun> run = cuda->RunChallenge(spec, 0);
    INFO("n = " << n);
    REQUIRE(run.ok());
    CHECK(run->path == path);
    CHECK(run->products_timed >= kChallengeProductsMin);
    CHECK(run->elapsed_us > 0);
    CHECK(run->product == ChallengeProduct(spec));
  }
}

TEST_CASE("a large challenge cuBLAS cannot take fails loudly instead of answering slowly", "[gpu][challenge]") {
  if (!HaveGpu()) return;
  const ChallengeSpec spec{.seed = 1, .n = kChallengeFallbackMaxN + 1};  // odd: no cuBLAS
  absl::StatusOr<ChallengeRun> run = MakeCudaBackend()->RunChallenge(spec, 0);
  CHECK(absl::IsFailedPrecondition(run.status()));
  CHECK_THAT(std::string(run.status().message()), Catch::Contains("multiple of 4"));
}

TEST_CASE("a model-sized challenge runs on cuBLAS and its time fits the device's model", "[gpu][challenge]") {
  if (!HaveGpu()) return;
  const std::vector<CudaDevice> devices = ProbeCuda().devices;
  REQUIRE(!devices.empty());
  std::unique_ptr<ComputeBackend> cuda = MakeCudaBackend();
  const std::string model = MarketModelName(devices.front().name);
  const Int8Throughput* range = Int8ThroughputOf(model);
  INFO("device " << devices.front().name << " is sold as '" << model << "'");
  REQUIRE(range != nullptr);
  const ChallengeSpec spec{.seed = 99, .n = range->challenge_n};
  absl::StatusOr<ChallengeRun> run = cuda->RunChallenge(spec, 0);
  REQUIRE(run.ok());
  REQUIRE(run->path == ChallengePath::kCublasInt8);
  CHECK(run->products_timed == ChallengeProductsToTime(spec.n));
  const double ms = run->elapsed_us / 1e3;
  WARN("challenge n = " << spec.n << " on " << model << ": " << ms << " ms per product (mean of " << run->products_timed << "), "
                        << ChallengeTops(spec.n, ms) << " int8 TOPS; the table wants " << range->min_tops << ".." << range->max_tops);
  CHECK(CheckChallengeTime(model, spec.n, ms).ok());
  // The server checks k rows of the full product; a few here, against the CPU's rows.
  std::vector<int8_t> a, b;
  ChallengeOperands(spec, a, b);
  const CommittedProduct committed = CommitProduct(std::move(run->product), spec.n);
  for (uint32_t row : {0u, 1'234u % spec.n, spec.n - 1}) CHECK(CheckOpening(spec, a, b, committed.root, OpenRow(committed, row)).ok());
}

TEST_CASE("every GPU answers its challenge at once, each timed on its own", "[gpu][challenge]") {
  if (!HaveGpu()) return;
  const size_t gpus = ProbeCuda().devices.size();
  std::unique_ptr<ComputeBackend> cuda = MakeCudaBackend();
  cuda->WarmUp({});
  std::vector<std::optional<absl::StatusOr<ChallengeRun>>> runs(gpus);
  std::vector<std::thread> threads;
  for (size_t d = 0; d < gpus; ++d) {
    threads.emplace_back([&, d] { (void)runs[d].emplace(cuda->RunChallenge({.seed = 40 + d, .n = 512}, static_cast<uint32_t>(d))); });
  }
  for (std::thread& t : threads) t.join();
  for (size_t d = 0; d < gpus; ++d) {
    INFO("GPU " << d);
    REQUIRE(runs[d]->ok());
    CHECK((*runs[d])->path == ChallengePath::kCublasInt8);
    CHECK((*runs[d])->product == ChallengeProduct({.seed = 40 + d, .n = 512}));
  }
}
