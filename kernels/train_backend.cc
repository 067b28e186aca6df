#include "kernels/train_backend.h"

#include <algorithm>

#include "kernels/mlp_cpu.h"

namespace tessera::kernels {
namespace {

class CpuTrainBackend final : public TrainBackend {
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
};

}  // namespace

std::unique_ptr<TrainBackend> MakeCpuTrainBackend() { return std::make_unique<CpuTrainBackend>(); }

}  // namespace tessera::kernels
