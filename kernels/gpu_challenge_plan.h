// Proof of GPU on a GPU, the rules that need no GPU: how the challenge's row-major int8 product maps
// onto cuBLAS's column-major GEMM in the one layout cuBLAS's int8 tensor-core kernels accept ("TN":
// its A transposed, its B not, both stored K-contiguous), which path computes a size, when falling
// back to the plain kernel is an error, and how many back-to-back products one timing covers.
// kernels/cuda/challenge_cuda.cu follows these rules on the device; tests/unit checks them here.
//
//   if (absl::Status s = ValidateChallengeSize(n); !s.ok()) return s;
//   const Int8GemmLayout l = ChallengeGemmLayout(n);          // the arguments of cublasGemmEx
//   // B is stored transposed: element e of B lives at TransposedIndex(e, n).
//   if (!CublasInt8Accepts(n)) TRY(CheckFallbackAllowed(n, "n is not a multiple of 4"));
//   const uint32_t products = ChallengeProductsToTime(n);     // timed as one batch
//   run.elapsed_us = ChallengePerProductUs(batch_ms, products);
//
// Included by nvcc (C++17): nothing newer than C++17 here.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

#if defined(__CUDACC__)
#define TESSERA_HOST_DEVICE __host__ __device__
#else
#define TESSERA_HOST_DEVICE
#endif

namespace tessera::kernels {

// Which code computed a challenge's product. Callers and tests read it from ChallengeRun: only
// kCublasInt8 reaches a GPU's int8 throughput, so a slow path must be visible, never silent.
enum class ChallengePath { kHost, kCublasInt8, kFallbackKernel };
std::string_view ChallengePathName(ChallengePath path);

// The largest challenge a GPU computes at all (its operands and product take n²·6 bytes).
inline constexpr uint32_t kChallengeMaxN = 16'384;
// The largest challenge the plain fallback kernel may answer. It reaches a few int8 TOPS, two orders
// of magnitude under any GPU model's minimum (services/common/gpu_challenge_proof.h), so a larger
// challenge answered by it would only fail the time check as "too slow": it fails here, loudly.
inline constexpr uint32_t kChallengeFallbackMaxN = 512;

// INVALID_ARGUMENT unless 1 ≤ n ≤ kChallengeMaxN.
absl::Status ValidateChallengeSize(uint32_t n);

// Whether cuBLAS's int8 GEMM (CUBLAS_COMPUTE_32I, IMMA kernels) takes an n×n×n product in the layout
// of ChallengeGemmLayout: its documented requirements are 4-byte aligned pointers (cudaMalloc gives
// 256), leading dimensions and m, k multiples of 4, and the TN format.
bool CublasInt8Accepts(uint32_t n);

// OK when the plain kernel may answer a challenge of size n (n ≤ kChallengeFallbackMaxN: tests and
// odd sizes, where its time does not matter); FAILED_PRECONDITION saying `why` cuBLAS was not used.
absl::Status CheckFallbackAllowed(uint32_t n, absl::string_view why);

// The buffers the challenge's product reads: A row-major as drawn, and B stored transposed (Bᵀ
// row-major, which is B column-major), so that both run along k in memory as int8 tensor cores need.
enum class ChallengeBuffer { kA, kBTransposed };

// One cublasGemmEx call in cuBLAS's column-major terms: C' (m×n, leading dimension ld_c) =
// op(first)·op(second), where op transposes when its flag is set; `first` is cuBLAS's A (leading
// dimension ld_first), `second` its B. C' is the challenge's row-major C = A·B read column-major.
struct Int8GemmLayout {
  bool transpose_first = false;   // CUBLAS_OP_T when true, CUBLAS_OP_N otherwise
  bool transpose_second = false;
  ChallengeBuffer first = ChallengeBuffer::kA;
  ChallengeBuffer second = ChallengeBuffer::kA;
  uint32_t m = 0, n = 0, k = 0;
  uint32_t ld_first = 0, ld_second = 0, ld_c = 0;
};
// Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ. cuBLAS's A is Bᵀ: the buffer kBTransposed read
// column-major is B, so it is passed with CUBLAS_OP_T. cuBLAS's B is Aᵀ: the row-major A read
// column-major is Aᵀ already, so CUBLAS_OP_N. Every dimension and leading dimension is n.
Int8GemmLayout ChallengeGemmLayout(uint32_t n);

// Where element e (row-major: row e / n, column e % n) of an n×n matrix lives in its transpose.
TESSERA_HOST_DEVICE inline uint64_t TransposedIndex(uint64_t e, uint32_t n) {
  return (e % n) * n + e / n;
}

// The products one timing covers: enough that the batch lasts about a millisecond on the fastest
// card of the table (kChallengeTimedOps at 2,200 TOPS), so that the timer's resolution and the
// launch of the first product weigh little; within [kChallengeProductsMin, kChallengeProductsMax].
inline constexpr double kChallengeTimedOps = 2e12;
inline constexpr uint32_t kChallengeProductsMin = 2;
inline constexpr uint32_t kChallengeProductsMax = 64;
uint32_t ChallengeProductsToTime(uint32_t n);
// The mean time of one product, in µs, from `products` timed back to back in `batch_ms`: what a
// commitment reports as the product's time.
double ChallengePerProductUs(double batch_ms, uint32_t products);

}  // namespace tessera::kernels
