// Proof of GPU's GPU-side rules, on the CPU (kernels/gpu_challenge_plan.h): the cuBLAS call the CUDA
// backend makes, replayed here with cuBLAS's documented column-major semantics, gives exactly the
// reference product, in the TN layout its int8 kernels accept; the path a size takes; a large size
// that cannot use cuBLAS is refused; and the timing covers a batch of products.
#include <catch2/catch.hpp>

#include <vector>

#include "kernels/compute_backend.h"
#include "kernels/gpu_challenge.h"
#include "kernels/gpu_challenge_plan.h"

namespace tessera::kernels {
namespace {

// What cublasGemmEx computes with CUDA_R_8I inputs and CUBLAS_COMPUTE_32I, column-major:
// C[i + j·ldc] = Σ_k op(A)(i, k) · op(B)(k, j), op(X)(r, c) = X[r + c·ld] untransposed and
// X[c + r·ld] transposed; int32 accumulation that wraps.
std::vector<int32_t> ColumnMajorInt8Gemm(const Int8GemmLayout& l, const std::vector<int8_t>& first, const std::vector<int8_t>& second) {
  std::vector<int32_t> c(static_cast<size_t>(l.ld_c) * l.n, 0);
  auto at = [](const std::vector<int8_t>& x, bool transposed, uint32_t ld, uint32_t r, uint32_t col) {
    return static_cast<int32_t>(x[transposed ? col + static_cast<size_t>(r) * ld : r + static_cast<size_t>(col) * ld]);
  };
  for (uint32_t j = 0; j < l.n; ++j) {
    for (uint32_t i = 0; i < l.m; ++i) {
      uint32_t acc = 0;
      for (uint32_t k = 0; k < l.k; ++k) {
        acc += static_cast<uint32_t>(at(first, l.transpose_first, l.ld_first, i, k) * at(second, l.transpose_second, l.ld_second, k, j));
      }
      c[i + static_cast<size_t>(j) * l.ld_c] = static_cast<int32_t>(acc);
    }
  }
  return c;
}

// B as the device stores it: element e of B at TransposedIndex(e, n).
std::vector<int8_t> StoredTransposed(const std::vector<int8_t>& b, uint32_t n) {
  std::vector<int8_t> out(b.size());
  for (uint64_t e = 0; e < b.size(); ++e) out[TransposedIndex(e, n)] = b[e];
  return out;
}

TEST_CASE("the cuBLAS int8 call, in the TN layout cuBLAS accepts, gives the reference product", "[gpu-plan]") {
  for (uint32_t n : {4u, 12u, 64u}) {
    INFO("n = " << n);
    const ChallengeSpec spec{.seed = 31 + n, .n = n};
    std::vector<int8_t> a, b;
    ChallengeOperands(spec, a, b);
    const Int8GemmLayout l = ChallengeGemmLayout(n);
    // int8 tensor cores read both operands along k: cuBLAS's A transposed, its B not ("TN").
    CHECK(l.transpose_first);
    CHECK_FALSE(l.transpose_second);
    CHECK(l.m == n);
    CHECK(l.ld_first % 4 == 0);
    CHECK(l.ld_second % 4 == 0);
    CHECK(l.ld_c % 4 == 0);
    const std::vector<int8_t> b_t = StoredTransposed(b, n);
    auto buffer = [&](ChallengeBuffer which) -> const std::vector<int8_t>& { return which == ChallengeBuffer::kA ? a : b_t; };
    const std::vector<int32_t> c = ColumnMajorInt8Gemm(l, buffer(l.first), buffer(l.second));
    CHECK(c == ChallengeProduct(spec));  // the column-major C' is the row-major C, bit for bit
    // The transposed store matters: the same call on B as drawn is another product.
    auto untransposed = [&](ChallengeBuffer which) -> const std::vector<int8_t>& { return which == ChallengeBuffer::kA ? a : b; };
    CHECK(ColumnMajorInt8Gemm(l, untransposed(l.first), untransposed(l.second)) != ChallengeProduct(spec));
  }
}

TEST_CASE("TransposedIndex moves row r, column c to row c, column r", "[gpu-plan]") {
  CHECK(TransposedIndex(0, 3) == 0);
  CHECK(TransposedIndex(1, 3) == 3);   // (0,1) → (1,0)
  CHECK(TransposedIndex(5, 3) == 7);   // (1,2) → (2,1)
  CHECK(TransposedIndex(8, 3) == 8);   // the diagonal stays
  for (uint64_t e = 0; e < 35; ++e) CHECK(TransposedIndex(TransposedIndex(e, 7), 7) == e);  // n = 7 squared is 49; 35 covers rows 0..4
}

TEST_CASE("a size takes cuBLAS when its int8 kernels accept it, and a large one never falls back", "[gpu-plan]") {
  CHECK(CublasInt8Accepts(4));
  CHECK(CublasInt8Accepts(4'096));
  CHECK_FALSE(CublasInt8Accepts(100 + 1));
  CHECK_FALSE(CublasInt8Accepts(0));
  // The old GPU test's "fallback" size, 100, is a multiple of 4: it never reached the fallback.
  CHECK(CublasInt8Accepts(100));
  CHECK(CheckFallbackAllowed(101, "odd").ok());
  CHECK(CheckFallbackAllowed(kChallengeFallbackMaxN, "why").ok());
  const absl::Status refused = CheckFallbackAllowed(kChallengeFallbackMaxN + 1, "cuBLAS: CUBLAS_STATUS_NOT_SUPPORTED");
  CHECK(absl::IsFailedPrecondition(refused));
  CHECK_THAT(std::string(refused.message()), Catch::Contains("CUBLAS_STATUS_NOT_SUPPORTED"));
  CHECK(absl::IsFailedPrecondition(CheckFallbackAllowed(4'097, "n is not a multiple of 4")));
  CHECK(absl::IsInvalidArgument(ValidateChallengeSize(0)));
  CHECK(absl::IsInvalidArgument(ValidateChallengeSize(kChallengeMaxN + 1)));
  CHECK(ValidateChallengeSize(4'096).ok());
  CHECK(ChallengePathName(ChallengePath::kCublasInt8) == "cublas-int8");
  CHECK(ChallengePathName(ChallengePath::kFallbackKernel) == "fallback-kernel");
}

TEST_CASE("a challenge is timed over a batch of products lasting about a millisecond at the top of the table", "[gpu-plan]") {
  // 2·4096³ ≈ 1.37e11 operations: 15 products make the 2e12 of the batch.
  CHECK(ChallengeProductsToTime(4'096) == 15);
  CHECK(ChallengeProductsToTime(8'192) == kChallengeProductsMin);  // 1.1e12 each: the floor of 2
  CHECK(ChallengeProductsToTime(256) == kChallengeProductsMax);    // tiny products: the cap
  CHECK(ChallengeProductsToTime(16'384) == kChallengeProductsMin);
  // 15 products in 1.5 ms: 100 µs each, the figure the commitment reports.
  CHECK(ChallengePerProductUs(1.5, 15) == Approx(100.0));
  CHECK(ChallengePerProductUs(1.5, 0) == 0);
  // The CPU backend's run keeps its defaults: the host path, one product.
  absl::StatusOr<ChallengeRun> cpu = MakeCpuBackend()->RunChallenge({.seed = 2, .n = 8}, 0);
  REQUIRE(cpu.ok());
  CHECK(cpu->path == ChallengePath::kHost);
  CHECK(cpu->products_timed == 1);
}

}  // namespace
}  // namespace tessera::kernels
