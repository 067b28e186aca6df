#include "kernels/gpu_challenge.h"

#include <algorithm>

#include "kernels/synthetic_data.h"

namespace tessera::kernels {

void ChallengeOperands(const ChallengeSpec& spec, std::vector<int8_t>& a, std::vector<int8_t>& b) {
  const size_t elements = static_cast<size_t>(spec.n) * spec.n;
  SplitMix64 rng(spec.seed ^ kChallengeSeedMix);
  a.resize(elements);
  b.resize(elements);
  for (int8_t& v : a) v = static_cast<int8_t>(static_cast<uint8_t>(rng.Next()));
  for (int8_t& v : b) v = static_cast<int8_t>(static_cast<uint8_t>(rng.Next()));
}

// Unsigned arithmetic: the wrap is defined, and its bits are two's complement int32's.
std::vector<int32_t> ChallengeRow(const ChallengeSpec& spec, const std::vector<int8_t>& a, const std::vector<int8_t>& b, uint32_t row) {
  const uint32_t n = spec.n;
  std::vector<uint32_t> acc(n, 0);
  for (uint32_t k = 0; k < n; ++k) {
    const auto aik = static_cast<uint32_t>(static_cast<int32_t>(a[static_cast<size_t>(row) * n + k]));
    const int8_t* b_row = &b[static_cast<size_t>(k) * n];
    for (uint32_t j = 0; j < n; ++j) acc[j] += aik * static_cast<uint32_t>(static_cast<int32_t>(b_row[j]));
  }
  return {acc.begin(), acc.end()};
}

std::vector<int32_t> ChallengeProduct(const ChallengeSpec& spec) {
  std::vector<int8_t> a, b;
  ChallengeOperands(spec, a, b);
  return ChallengeProduct(spec, a, b);
}

std::vector<int32_t> ChallengeProduct(const ChallengeSpec& spec, const std::vector<int8_t>& a, const std::vector<int8_t>& b) {
  const uint32_t n = spec.n;
  std::vector<uint32_t> c(static_cast<size_t>(n) * n, 0);
  constexpr uint32_t kBlock = 64;
  for (uint32_t i0 = 0; i0 < n; i0 += kBlock) {
    for (uint32_t k0 = 0; k0 < n; k0 += kBlock) {
      for (uint32_t i = i0; i < std::min(n, i0 + kBlock); ++i) {
        uint32_t* c_row = &c[static_cast<size_t>(i) * n];
        for (uint32_t k = k0; k < std::min(n, k0 + kBlock); ++k) {
          const auto aik = static_cast<uint32_t>(static_cast<int32_t>(a[static_cast<size_t>(i) * n + k]));
          const int8_t* b_row = &b[static_cast<size_t>(k) * n];
          for (uint32_t j = 0; j < n; ++j) c_row[j] += aik * static_cast<uint32_t>(static_cast<int32_t>(b_row[j]));
        }
      }
    }
  }
  return {c.begin(), c.end()};
}

}  // namespace tessera::kernels
