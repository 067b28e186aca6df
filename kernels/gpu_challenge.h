// Proof of GPU, the compute: a challenge is a seed and a size n. Its operands are two n×n int8
// matrices, A then B (row-major), drawn from SplitMix64(seed ^ kChallengeSeedMix), one draw per
// element, whose low 8 bits are the element in two's complement. The answer is C = A·B with int32
// accumulation, wrapping on overflow. Every backend must give these bits exactly: this CPU
// reference, and an int8 tensor-core kernel on a GPU (exact integer arithmetic, unlike floats).
//
//   ChallengeSpec spec{.seed = 42, .n = 1024};
//   std::vector<int32_t> c = ChallengeProduct(spec);                 // the worker: all n rows
//   std::vector<int32_t> row = ChallengeRow(spec, a, b, 17);         // the server: one row, O(n²)
#pragma once

#include <cstdint>
#include <vector>

namespace tessera::kernels {

struct ChallengeSpec {
  uint64_t seed = 0;
  uint32_t n = 0;
};

inline constexpr uint64_t kChallengeSeedMix = 0xC4A11E9C4A11E9C4ULL;

void ChallengeOperands(const ChallengeSpec& spec, std::vector<int8_t>& a, std::vector<int8_t>& b);
// Row `row` of A·B (n values).
std::vector<int32_t> ChallengeRow(const ChallengeSpec& spec, const std::vector<int8_t>& a, const std::vector<int8_t>& b, uint32_t row);
// All of A·B, row-major (n² values), computed in cache-sized blocks; the first derives the operands.
std::vector<int32_t> ChallengeProduct(const ChallengeSpec& spec);
std::vector<int32_t> ChallengeProduct(const ChallengeSpec& spec, const std::vector<int8_t>& a, const std::vector<int8_t>& b);

}  // namespace tessera::kernels
