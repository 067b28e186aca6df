#include "kernels/mlp_cpu.h"

#include <sodium.h>

#include <cmath>
#include <cstring>

namespace tessera::kernels {
namespace {

// Forward pass of one sample: hidden activations (post-tanh) and outputs.
void Forward(const MlpWeights& w, const float* x, std::vector<float>& hidden, std::vector<float>& out) {
  hidden.assign(w.hidden_dim, 0.0f);
  for (uint32_t h = 0; h < w.hidden_dim; ++h) hidden[h] = w.b1[h];
  for (uint32_t i = 0; i < w.input_dim; ++i) {
    const float xi = x[i];
    const float* row = &w.w1[static_cast<size_t>(i) * w.hidden_dim];
    for (uint32_t h = 0; h < w.hidden_dim; ++h) hidden[h] += xi * row[h];
  }
  for (float& v : hidden) v = std::tanh(v);
  out.assign(w.output_dim, 0.0f);
  for (uint32_t o = 0; o < w.output_dim; ++o) out[o] = w.b2[o];
  for (uint32_t h = 0; h < w.hidden_dim; ++h) {
    const float* row = &w.w2[static_cast<size_t>(h) * w.output_dim];
    for (uint32_t o = 0; o < w.output_dim; ++o) out[o] += hidden[h] * row[o];
  }
}

}  // namespace

MlpWeights MlpWeights::Init(uint64_t seed, uint32_t input_dim, uint32_t hidden_dim, uint32_t output_dim) {
  SplitMix64 rng(seed ^ 0x5EEDF00DULL);
  MlpWeights w{.input_dim = input_dim, .hidden_dim = hidden_dim, .output_dim = output_dim, .w1 = {}, .b1 = {}, .w2 = {}, .b2 = {}};
  w.w1.resize(static_cast<size_t>(input_dim) * hidden_dim);
  w.w2.resize(static_cast<size_t>(hidden_dim) * output_dim);
  w.b1.assign(hidden_dim, 0.0f);
  w.b2.assign(output_dim, 0.0f);
  const float s1 = 1.0f / std::sqrt(static_cast<float>(input_dim));
  const float s2 = 1.0f / std::sqrt(static_cast<float>(hidden_dim));
  for (float& v : w.w1) v = rng.NextSymmetric() * s1;
  for (float& v : w.w2) v = rng.NextSymmetric() * s2;
  return w;
}

float MlpLoss(const MlpWeights& w, const Dataset& data, uint32_t first, uint32_t rows) {
  std::vector<float> hidden, out;
  double total = 0;
  for (uint32_t s = first; s < first + rows; ++s) {
    Forward(w, &data.inputs[static_cast<size_t>(s) * w.input_dim], hidden, out);
    const float* y = &data.targets[static_cast<size_t>(s) * w.output_dim];
    for (uint32_t o = 0; o < w.output_dim; ++o) total += static_cast<double>(out[o] - y[o]) * (out[o] - y[o]);
  }
  return static_cast<float>(total / (static_cast<double>(rows) * w.output_dim));
}

MlpWeights MlpGradients(const MlpWeights& w, const Dataset& data, uint32_t first, uint32_t rows) {
  MlpWeights g{.input_dim = w.input_dim, .hidden_dim = w.hidden_dim, .output_dim = w.output_dim,
               .w1 = std::vector<float>(w.w1.size(), 0.0f), .b1 = std::vector<float>(w.b1.size(), 0.0f),
               .w2 = std::vector<float>(w.w2.size(), 0.0f), .b2 = std::vector<float>(w.b2.size(), 0.0f)};
  const float scale = 2.0f / (static_cast<float>(rows) * static_cast<float>(w.output_dim));
  std::vector<float> hidden, out, d_out(w.output_dim), d_hidden(w.hidden_dim);
  for (uint32_t s = first; s < first + rows; ++s) {
    const float* x = &data.inputs[static_cast<size_t>(s) * w.input_dim];
    Forward(w, x, hidden, out);
    const float* y = &data.targets[static_cast<size_t>(s) * w.output_dim];
    for (uint32_t o = 0; o < w.output_dim; ++o) {
      d_out[o] = scale * (out[o] - y[o]);
      g.b2[o] += d_out[o];
    }
    for (uint32_t h = 0; h < w.hidden_dim; ++h) {
      float acc = 0;
      float* g_row = &g.w2[static_cast<size_t>(h) * w.output_dim];
      const float* w_row = &w.w2[static_cast<size_t>(h) * w.output_dim];
      for (uint32_t o = 0; o < w.output_dim; ++o) {
        g_row[o] += hidden[h] * d_out[o];
        acc += w_row[o] * d_out[o];
      }
      d_hidden[h] = acc * (1.0f - hidden[h] * hidden[h]);
      g.b1[h] += d_hidden[h];
    }
    for (uint32_t i = 0; i < w.input_dim; ++i) {
      float* g_row = &g.w1[static_cast<size_t>(i) * w.hidden_dim];
      for (uint32_t h = 0; h < w.hidden_dim; ++h) g_row[h] += x[i] * d_hidden[h];
    }
  }
  return g;
}

void SgdStep(MlpWeights& w, const MlpWeights& grad, float learning_rate) {
  auto step = [learning_rate](std::vector<float>& v, const std::vector<float>& g) {
    for (size_t i = 0; i < v.size(); ++i) v[i] -= learning_rate * g[i];
  };
  step(w.w1, grad.w1);
  step(w.b1, grad.b1);
  step(w.w2, grad.w2);
  step(w.b2, grad.b2);
}

// libsodium's SHA-256 needs no sodium_init(); the binaries call it at start anyway.
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


}  // namespace tessera::kernels
