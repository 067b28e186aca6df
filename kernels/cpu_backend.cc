#include "kernels/compute_backend.h"

#include <sodium.h>

#include <algorithm>
#include <chrono>

#include "kernels/mlp_cpu.h"

namespace tessera::kernels {
namespace {

// C += A·B, n×n row-major, in cache-sized blocks (i-k-j order so the inner loop is contiguous).
void BlockedGemm(const std::vector<float>& a, const std::vector<float>& b, std::vector<float>& c, uint32_t n) {
  constexpr uint32_t kBlock = 64;
  for (uint32_t i0 = 0; i0 < n; i0 += kBlock) {
    for (uint32_t k0 = 0; k0 < n; k0 += kBlock) {
      for (uint32_t j0 = 0; j0 < n; j0 += kBlock) {
        for (uint32_t i = i0; i < std::min(n, i0 + kBlock); ++i) {
          float* c_row = &c[static_cast<size_t>(i) * n];
          for (uint32_t k = k0; k < std::min(n, k0 + kBlock); ++k) {
            const float aik = a[static_cast<size_t>(i) * n + k];
            const float* b_row = &b[static_cast<size_t>(k) * n];
            for (uint32_t j = j0; j < std::min(n, j0 + kBlock); ++j) c_row[j] += aik * b_row[j];
          }
        }
      }
    }
  }
}

class CpuBackend final : public ComputeBackend {
 public:
  std::string_view Name() const override { return "cpu"; }

  absl::StatusOr<TrainResult> TrainMlp(const MlpConfig& config,
                                       const std::function<void(const EpochReport&)>& on_epoch,
                                       const std::atomic<bool>* cancel) override {
    if (config.batch_size == 0 || config.samples == 0 || config.batch_size > config.samples) {
      return absl::InvalidArgumentError("batch_size must be in 1..samples");
    }
    const Dataset data = MakeTeacherDataset(config.seed, config.samples, config.input_dim, config.output_dim);
    MlpWeights weights = MlpWeights::Init(config.seed, config.input_dim, config.hidden_dim, config.output_dim);
    TrainResult result;
    result.initial_loss = MlpLoss(weights, data, 0, data.samples);
    for (uint32_t epoch = 1; epoch <= config.epochs; ++epoch) {
      for (uint32_t first = 0; first < data.samples; first += config.batch_size) {
        if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) {
          return absl::CancelledError("train_mlp cancelled");
        }
        const uint32_t rows = std::min(config.batch_size, data.samples - first);
        SgdStep(weights, MlpGradients(weights, data, first, rows), config.learning_rate);
      }
      const float loss = MlpLoss(weights, data, 0, data.samples);
      result.loss_per_epoch.push_back(loss);
      if (on_epoch) on_epoch(EpochReport{.epoch = epoch, .epochs = config.epochs, .loss = loss});
    }
    result.final_loss = result.loss_per_epoch.empty() ? result.initial_loss : result.loss_per_epoch.back();
    result.weights_sha256 = WeightsSha256(weights);
    return result;
  }

  absl::StatusOr<AllReduceBenchResult> AllReduceBench(const AllReduceBenchConfig&, const std::atomic<bool>*) override {
    return absl::UnimplementedError("allreduce_bench measures NVIDIA GPUs' interconnect; this worker offers CPU devices");
  }

  std::string NewCommunicatorId() override {
    std::string id(128, '\0');
    randombytes_buf(id.data(), id.size());
    return id;
  }

  absl::StatusOr<GemmBenchResult> GemmBench(const GemmBenchConfig& config, const std::atomic<bool>* cancel) override {
    const uint32_t n = config.n;
    std::vector<float> a, b;
    GemmOperands(config.seed, n, a, b);
    std::vector<float> c(static_cast<size_t>(n) * n);
    using Clock = std::chrono::steady_clock;
    Clock::time_point start;
    for (uint32_t it = 0; it <= config.iterations; ++it) {  // iteration 0 warms up, untimed
      if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return absl::CancelledError("gemm_bench cancelled");
      if (it == 1) start = Clock::now();
      std::fill(c.begin(), c.end(), 0.0f);
      BlockedGemm(a, b, c, n);
    }
    return GemmBenchSummary(config, std::chrono::duration<double>(Clock::now() - start).count(), c);
  }

  absl::StatusOr<ChallengeRun> RunChallenge(const ChallengeSpec& spec, uint32_t) override {
    std::vector<int8_t> a, b;
    ChallengeOperands(spec, a, b);
    const auto start = std::chrono::steady_clock::now();
    ChallengeRun run{.product = ChallengeProduct(spec, a, b), .elapsed_us = 0};
    run.elapsed_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
    return run;
  }
};

}  // namespace

GemmBenchResult GemmBenchSummary(const GemmBenchConfig& config, double seconds, const std::vector<float>& last_product) {
  GemmBenchResult r;
  r.seconds = seconds;
  const double flop = 2.0 * config.n * static_cast<double>(config.n) * config.n * config.iterations;
  r.tflops = seconds > 0 ? flop / seconds / 1e12 : 0;
  for (float v : last_product) r.checksum += v;
  return r;
}

std::unique_ptr<ComputeBackend> MakeCpuBackend() { return std::make_unique<CpuBackend>(); }

}  // namespace tessera::kernels
