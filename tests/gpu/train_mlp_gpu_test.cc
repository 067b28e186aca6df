// GPU tests (`ctest -L gpu`): the CUDA backend against the CPU reference on a real NVIDIA GPU. On a
// machine without one (or a build without CUDA) every test says so and checks nothing else, unless
// TESSERA_REQUIRE_GPU=1, which makes that a failure (tests/gpu/gpu_requirement.h).
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <thread>

#include "kernels/cuda_devices.h"
#include "kernels/compute_backend.h"
#include "kernels/mlp_cpu.h"
#include "tests/gpu/gpu_test_support.h"

using namespace tessera::kernels;
using tessera::testing::HaveGpu;

namespace {

MlpConfig Model(Precision precision) {
  return MlpConfig{.seed = 11, .input_dim = 32, .hidden_dim = 256, .output_dim = 4, .samples = 4'096, .batch_size = 64,
                   .epochs = 10, .learning_rate = 0.05f, .precision = precision, .devices = {0}};
}

}  // namespace

TEST_CASE("the CUDA runtime lists plausible devices", "[gpu]") {
  if (!HaveGpu()) return;
  absl::StatusOr<std::vector<CudaDevice>> devices = ListCudaDevices();
  REQUIRE(devices.ok());
  for (const CudaDevice& d : *devices) {
    INFO(d.name);
    CHECK(d.uuid.starts_with("GPU-"));
    CHECK(d.uuid.size() == 40);
    CHECK(d.memory_mib > 1'024);
    CHECK(d.compute_major >= 7);
    CHECK(!d.pci_bus_id.empty());
    CHECK(!MarketModelName(d.name).empty());
  }
}

TEST_CASE("fp32 train_mlp on the GPU follows the CPU's loss curve within 1e-3", "[gpu]") {
  if (!HaveGpu()) return;
  auto cpu = MakeCpuBackend()->TrainMlp(Model(Precision::kFp32), nullptr, nullptr);
  auto gpu = MakeCudaBackend()->TrainMlp(Model(Precision::kFp32), nullptr, nullptr);
  REQUIRE(cpu.ok());
  REQUIRE(gpu.ok());
  CHECK(std::abs(gpu->initial_loss - cpu->initial_loss) <= 1e-4f * cpu->initial_loss);  // same data, same weights
  REQUIRE(gpu->loss_per_epoch.size() == cpu->loss_per_epoch.size());
  for (size_t e = 0; e < cpu->loss_per_epoch.size(); ++e) {
    INFO("epoch " << e + 1 << ": cpu " << cpu->loss_per_epoch[e] << ", gpu " << gpu->loss_per_epoch[e]);
    CHECK(std::abs(gpu->loss_per_epoch[e] - cpu->loss_per_epoch[e]) <= 1e-3f * cpu->loss_per_epoch[e]);
  }
  CHECK(gpu->final_loss < 0.5f * gpu->initial_loss);
  CHECK(gpu->weights_sha256.size() == 64);
}

TEST_CASE("bf16 train_mlp (cuBLAS bf16 inputs, fp32 accumulation) learns and stays within 5e-2", "[gpu]") {
  if (!HaveGpu()) return;
  auto cpu = MakeCpuBackend()->TrainMlp(Model(Precision::kFp32), nullptr, nullptr);
  auto gpu = MakeCudaBackend()->TrainMlp(Model(Precision::kBf16), nullptr, nullptr);
  REQUIRE(cpu.ok());
  REQUIRE(gpu.ok());
  CHECK(gpu->final_loss < 0.5f * gpu->initial_loss);
  CHECK(std::abs(gpu->final_loss - cpu->final_loss) <= 5e-2f * cpu->final_loss);
}

TEST_CASE("a cancel stops the GPU run within a second", "[gpu]") {
  if (!HaveGpu()) return;
  MlpConfig big = Model(Precision::kFp32);
  big.epochs = 10'000;
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    cancel = true;
  });
  const auto cancelled_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  auto r = MakeCudaBackend()->TrainMlp(big, nullptr, &cancel);
  const auto stopped_at = std::chrono::steady_clock::now();
  canceller.join();
  CHECK(r.status().code() == absl::StatusCode::kCancelled);
  CHECK(stopped_at - cancelled_at < std::chrono::seconds(1));
}

TEST_CASE("a CUDA error fails the run with its text and leaves the process alive", "[gpu]") {
  if (!HaveGpu()) return;
  MlpConfig bad = Model(Precision::kFp32);
  bad.devices = {999};
  auto r = MakeCudaBackend()->TrainMlp(bad, nullptr, nullptr);
  CHECK(r.status().code() == absl::StatusCode::kInternal);
  CHECK_THAT(std::string(r.status().message()), Catch::Contains("cudaSetDevice"));
}

TEST_CASE("gemm_bench on the GPU agrees with the CPU and reports real throughput", "[gpu]") {
  if (!HaveGpu()) return;
  const GemmBenchConfig small{.seed = 3, .n = 256, .iterations = 2, .precision = Precision::kFp32, .devices = {0}};
  auto cpu = MakeCpuBackend()->GemmBench(small, nullptr);
  auto gpu = MakeCudaBackend()->GemmBench(small, nullptr);
  REQUIRE(cpu.ok());
  REQUIRE(gpu.ok());
  CHECK(std::abs(gpu->checksum - cpu->checksum) <= 1e-3 * std::max(1.0, std::abs(cpu->checksum)));
  const GemmBenchConfig big{.seed = 3, .n = 8'192, .iterations = 20, .precision = Precision::kBf16, .devices = {0}};
  auto fast = MakeCudaBackend()->GemmBench(big, nullptr);
  REQUIRE(fast.ok());
  WARN("bf16 8192³ on this GPU: " << fast->tflops << " TFLOP/s");
  CHECK(fast->tflops > 50);  // any A100/H100-class GPU; an H100 does several hundred
}

TEST_CASE("data parallel over NCCL follows the plain run; every local GPU takes a share", "[gpu]") {
  if (!HaveGpu()) return;
  auto backend = MakeCudaBackend();
  auto plain = backend->TrainMlp(Model(Precision::kFp32), nullptr, nullptr);
  REQUIRE(plain.ok());
  // One rank: the communicator still all-reduces every step.
  MlpConfig one_rank = Model(Precision::kFp32);
  one_rank.communicator = Communicator{.unique_id = backend->NewCommunicatorId(), .first_rank = 0, .world_size = 1};
  auto dp = backend->TrainMlp(one_rank, nullptr, nullptr);
  REQUIRE(dp.ok());
  for (size_t e = 0; e < plain->loss_per_epoch.size(); ++e) CHECK(dp->loss_per_epoch[e] == Approx(plain->loss_per_epoch[e]).epsilon(1e-5));
  // Every local GPU: the batch is split and the gradients summed, so only rounding differs.
  const size_t gpus = ListCudaDevices()->size();
  if (gpus < 2) {
    WARN("one GPU here: the multi-GPU split is not exercised");
    return;
  }
  MlpConfig all = Model(Precision::kFp32);
  all.devices.clear();
  for (uint32_t d = 0; d < gpus; ++d) all.devices.push_back(d);
  auto split = backend->TrainMlp(all, nullptr, nullptr);
  REQUIRE(split.ok());
  for (size_t e = 0; e < plain->loss_per_epoch.size(); ++e) {
    CHECK(std::abs(split->loss_per_epoch[e] - plain->loss_per_epoch[e]) <= 1e-3f * plain->loss_per_epoch[e]);
  }
}

TEST_CASE("a communicator whose peers never come is aborted on cancel, not waited on forever", "[gpu]") {
  if (!HaveGpu()) return;
  auto backend = MakeCudaBackend();
  MlpConfig lonely = Model(Precision::kFp32);
  lonely.communicator = Communicator{.unique_id = backend->NewCommunicatorId(), .first_rank = 0, .world_size = 2};
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    cancel = true;
  });
  const auto start = std::chrono::steady_clock::now();
  auto r = backend->TrainMlp(lonely, nullptr, &cancel);
  canceller.join();
  CHECK(r.status().code() == absl::StatusCode::kCancelled);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1'500));
}

TEST_CASE("allreduce_bench measures NCCL over every local GPU", "[gpu]") {
  if (!HaveGpu()) return;
  absl::StatusOr<std::vector<CudaDevice>> devices = ListCudaDevices();
  REQUIRE(devices.ok());
  std::vector<uint32_t> all;
  for (const CudaDevice& d : *devices) all.push_back(d.ordinal);
  auto r = MakeCudaBackend()->AllReduceBench({.megabytes = 64, .iterations = 10, .devices = all}, nullptr);
  REQUIRE(r.ok());
  WARN(all.size() << " GPU(s): " << r->algorithm_gbps << " GB/s algorithm, " << r->bus_gbps << " GB/s bus");
  CHECK(r->algorithm_gbps > 0);
  if (all.size() >= 2) CHECK(r->bus_gbps > 10);  // NVLink or PCIe 4, far above
}
