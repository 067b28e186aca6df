#include "kernels/train_backend.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

#include "kernels/mlp_cpu.h"

namespace tessera::kernels {
namespace {

std::string WeightsSha256(const MlpWeights& w) {
  crypto_hash_sha256_state state;
  crypto_hash_sha256_init(&state);
  for (const std::vector<float>* part : {&w.w1, &w.b1, &w.w2, &w.b2}) {
    for (float v : *part) {
      uint32_t bits;
      std::memcpy(&bits, &v, sizeof bits);
      const unsigned char le[4] = {static_cast<unsigned char>(bits), static_cast<unsigned char>(bits >> 8),
                                   static_cast<unsigned char>(bits >> 16), static_cast<unsigned char>(bits >> 24)};
      crypto_hash_sha256_update(&state, le, sizeof le);
    }
  }
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&state, digest);
  char hex[2 * crypto_hash_sha256_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return hex;
}

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

// libsodium's SHA-256 needs no sodium_init(); the binaries call it at start anyway.
std::unique_ptr<TrainBackend> MakeCpuTrainBackend() { return std::make_unique<CpuTrainBackend>(); }

}  // namespace tessera::kernels
