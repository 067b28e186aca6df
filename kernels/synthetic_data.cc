#include "kernels/synthetic_data.h"

#include <cmath>

namespace tessera::kernels {

uint64_t SplitMix64::Next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

float SplitMix64::NextSymmetric() {
  const auto bits = static_cast<int32_t>(Next() >> 40);  // 24 bits
  return static_cast<float>(bits - (1 << 23)) / static_cast<float>(1 << 23);
}

Dataset MakeTeacherDataset(uint64_t seed, uint32_t samples, uint32_t input_dim, uint32_t output_dim) {
  constexpr uint32_t kTeacherHidden = 16;
  SplitMix64 rng(seed ^ 0x7E55E4A0DA7A5E7ULL);
  std::vector<float> w1(static_cast<size_t>(input_dim) * kTeacherHidden);
  std::vector<float> w2(static_cast<size_t>(kTeacherHidden) * output_dim);
  const float scale1 = 1.0f / std::sqrt(static_cast<float>(input_dim));
  for (float& w : w1) w = rng.NextSymmetric() * scale1 * 1.7f;
  for (float& w : w2) w = rng.NextSymmetric() * 0.5f;

  Dataset data{.samples = samples, .input_dim = input_dim, .output_dim = output_dim, .inputs = {}, .targets = {}};
  data.inputs.resize(static_cast<size_t>(samples) * input_dim);
  data.targets.assign(static_cast<size_t>(samples) * output_dim, 0.0f);
  for (float& x : data.inputs) x = rng.NextSymmetric();
  std::vector<float> hidden(kTeacherHidden);
  for (uint32_t s = 0; s < samples; ++s) {
    const float* x = &data.inputs[static_cast<size_t>(s) * input_dim];
    for (uint32_t h = 0; h < kTeacherHidden; ++h) {
      float acc = 0;
      for (uint32_t i = 0; i < input_dim; ++i) acc += x[i] * w1[static_cast<size_t>(i) * kTeacherHidden + h];
      hidden[h] = std::tanh(acc);
    }
    float* y = &data.targets[static_cast<size_t>(s) * output_dim];
    for (uint32_t o = 0; o < output_dim; ++o) {
      float acc = 0;
      for (uint32_t h = 0; h < kTeacherHidden; ++h) acc += hidden[h] * w2[static_cast<size_t>(h) * output_dim + o];
      y[o] = acc;
    }
  }
  return data;
}

void GemmOperands(uint64_t seed, uint32_t n, std::vector<float>& a, std::vector<float>& b) {
  SplitMix64 rng(seed ^ kGemmSeedMix);
  a.resize(static_cast<size_t>(n) * n);
  b.resize(static_cast<size_t>(n) * n);
  for (float& v : a) v = rng.NextSymmetric();
  for (float& v : b) v = rng.NextSymmetric();
}

}  // namespace tessera::kernels
