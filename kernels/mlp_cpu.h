// CPU reference of the `train_mlp` model: one tanh hidden layer, linear output, mean squared error,
// plain SGD. Exposed (beyond the ComputeBackend) so that tests can check gradients by finite
// differences.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/synthetic_data.h"

namespace tessera::kernels {

struct MlpWeights {
  uint32_t input_dim = 0, hidden_dim = 0, output_dim = 0;
  std::vector<float> w1, b1, w2, b2;  // w1 [in × hidden], w2 [hidden × out], row-major

  static MlpWeights Init(uint64_t seed, uint32_t input_dim, uint32_t hidden_dim, uint32_t output_dim);
};

// Mean squared error (averaged over rows and outputs) of `rows` samples starting at `first`.
float MlpLoss(const MlpWeights& w, const Dataset& data, uint32_t first, uint32_t rows);

// Gradients of MlpLoss with respect to every weight, same layout as MlpWeights.
MlpWeights MlpGradients(const MlpWeights& w, const Dataset& data, uint32_t first, uint32_t rows);

// One SGD step: w -= learning_rate * grad.
void SgdStep(MlpWeights& w, const MlpWeights& grad, float learning_rate);

// Hex SHA-256 of the weights W1, b1, W2, b2 as little-endian float32: every backend's result hash.
std::string WeightsSha256(const MlpWeights& w);

}  // namespace tessera::kernels
