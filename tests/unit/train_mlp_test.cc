#include <catch2/catch.hpp>

#include <cmath>

#include "kernels/cuda_devices.h"
#include "kernels/mlp_cpu.h"
#include "kernels/compute_backend.h"

using namespace tessera::kernels;

TEST_CASE("train_mlp on the CPU lowers the loss and is deterministic", "[kernels]") {
  auto backend = MakeCpuBackend();
  const MlpConfig config{.seed = 7, .input_dim = 8, .hidden_dim = 32, .output_dim = 2, .samples = 512,
                         .batch_size = 32, .epochs = 20, .learning_rate = 0.05f};
  std::vector<EpochReport> epochs;
  auto a = backend->TrainMlp(config, [&](const EpochReport& e) { epochs.push_back(e); }, nullptr);
  REQUIRE(a.ok());
  CHECK(epochs.size() == 20);
  CHECK(a->final_loss < a->initial_loss * 0.5f);
  CHECK(a->weights_sha256.size() == 64);
  auto b = backend->TrainMlp(config, nullptr, nullptr);
  REQUIRE(b.ok());
  CHECK(b->weights_sha256 == a->weights_sha256);
  CHECK(b->final_loss == a->final_loss);
  auto other = backend->TrainMlp(MlpConfig{config.seed + 1, 8, 32, 2, 512, 32, 20, 0.05f}, nullptr, nullptr);
  REQUIRE(other.ok());
  CHECK(other->weights_sha256 != a->weights_sha256);
}

TEST_CASE("train_mlp stops within a batch when cancelled", "[kernels]") {
  auto backend = MakeCpuBackend();
  std::atomic<bool> cancel{true};
  auto r = backend->TrainMlp(MlpConfig{}, nullptr, &cancel);
  CHECK(r.status().code() == absl::StatusCode::kCancelled);
}

TEST_CASE("MLP gradients match finite differences", "[kernels]") {
  const Dataset data = MakeTeacherDataset(3, 16, 4, 2);
  MlpWeights w = MlpWeights::Init(3, 4, 5, 2);
  const MlpWeights g = MlpGradients(w, data, 0, 16);
  const float eps = 1e-2f;
  auto check = [&](std::vector<float>& param, const std::vector<float>& grad) {
    for (size_t i = 0; i < param.size(); i += 3) {
      const float saved = param[i];
      param[i] = saved + eps;
      const float up = MlpLoss(w, data, 0, 16);
      param[i] = saved - eps;
      const float down = MlpLoss(w, data, 0, 16);
      param[i] = saved;
      const float numeric = (up - down) / (2 * eps);
      CHECK(std::abs(numeric - grad[i]) <= 2e-3f + 0.02f * std::abs(numeric));
    }
  };
  check(w.w1, g.w1);
  check(w.b1, g.b1);
  check(w.w2, g.w2);
  check(w.b2, g.b2);
}

TEST_CASE("GPU names become the market's model names", "[kernels]") {
  CHECK(MarketModelName("NVIDIA H100 80GB HBM3") == "H100");
  CHECK(MarketModelName("NVIDIA H200") == "H200");
  CHECK(MarketModelName("NVIDIA A100-SXM4-80GB") == "A100");
  CHECK(MarketModelName("NVIDIA GeForce RTX 4090") == "RTX 4090");
  CHECK(MarketModelName("NVIDIA L40S") == "L40S");
  CHECK(MarketModelName("Tesla V100-SXM2-16GB") == "V100");
}

TEST_CASE("without a usable GPU the CUDA inventory is empty, not an error", "[kernels]") {
  // This machine (and CI) has no NVIDIA driver: the worker falls back to CPU devices.
  absl::StatusOr<std::vector<CudaDevice>> devices = ListCudaDevices();
  REQUIRE(devices.ok());
  if (!devices->empty()) WARN("this machine has " << devices->size() << " GPU(s); the fallback is not exercised");
}

TEST_CASE("gemm_bench on the CPU multiplies the shared operands and times them", "[kernels]") {
  const GemmBenchConfig config{.seed = 5, .n = 48, .iterations = 3, .precision = Precision::kFp32, .devices = {}};
  auto r = MakeCpuBackend()->GemmBench(config, nullptr);
  REQUIRE(r.ok());
  CHECK(r->tflops > 0);
  CHECK(r->seconds > 0);
  std::vector<float> a, b;
  GemmOperands(config.seed, config.n, a, b);
  double reference = 0;  // Σ_ij (A·B)_ij, naively
  for (uint32_t i = 0; i < config.n; ++i) {
    for (uint32_t j = 0; j < config.n; ++j) {
      for (uint32_t k = 0; k < config.n; ++k) reference += static_cast<double>(a[i * config.n + k]) * b[k * config.n + j];
    }
  }
  CHECK(std::abs(r->checksum - reference) <= 1e-3 * std::max(1.0, std::abs(reference)));
  std::atomic<bool> cancel{true};
  CHECK(MakeCpuBackend()->GemmBench(config, &cancel).status().code() == absl::StatusCode::kCancelled);
}
