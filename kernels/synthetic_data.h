// Deterministic pseudo-random numbers and the synthetic regression dataset of `train_mlp`.
// The generator is specified here (SplitMix64), not taken from <random>, so that every backend
// (CPU today, CUDA later) and every platform produces bit-identical data from a job's seed.
#pragma once

#include <cstdint>
#include <vector>

namespace tessera::kernels {

class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [-1, 1), exactly representable (24 random bits).
  float NextSymmetric();

 private:
  uint64_t state_;
};

// Row-major inputs [samples × input_dim] and targets [samples × output_dim]. Targets come from a
// fixed random "teacher" network (tanh hidden layer of 16 units), so a student MLP can fit them.
struct Dataset {
  uint32_t samples = 0;
  uint32_t input_dim = 0;
  uint32_t output_dim = 0;
  std::vector<float> inputs;
  std::vector<float> targets;
};

Dataset MakeTeacherDataset(uint64_t seed, uint32_t samples, uint32_t input_dim, uint32_t output_dim);

// gemm_bench's operands A then B (n×n each, row-major), one SplitMix64 stream from the seed: every
// backend multiplies the same matrices.
void GemmOperands(uint64_t seed, uint32_t n, std::vector<float>& a, std::vector<float>& b);
inline constexpr uint64_t kGemmSeedMix = 0x6E3B6E3B6E3B6E3BULL;

}  // namespace tessera::kernels
