#include "kernels/gpu_challenge_plan.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace tessera::kernels {

std::string_view ChallengePathName(ChallengePath path) {
  switch (path) {
    case ChallengePath::kHost:
      return "host";
    case ChallengePath::kCublasInt8:
      return "cublas-int8";
    case ChallengePath::kFallbackKernel:
      return "fallback-kernel";
  }
  return "unknown";
}

absl::Status ValidateChallengeSize(uint32_t n) {
  if (n == 0 || n > kChallengeMaxN) {
    return absl::InvalidArgumentError(absl::StrCat("a challenge's n must be in 1..", kChallengeMaxN, ", got ", n));
  }
  return absl::OkStatus();
}

bool CublasInt8Accepts(uint32_t n) { return n > 0 && n % 4 == 0; }

absl::Status CheckFallbackAllowed(uint32_t n, absl::string_view why) {
  if (n <= kChallengeFallbackMaxN) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("the int8 challenge of n = ", n, " cannot run on cuBLAS (", why,
                                                    "), and the plain kernel would be far too slow for any GPU model: refusing"
                                                    " rather than answering slowly (the fallback is for n <= ",
                                                    kChallengeFallbackMaxN, ")"));
}

Int8GemmLayout ChallengeGemmLayout(uint32_t n) {
  return Int8GemmLayout{.transpose_first = true,
                        .transpose_second = false,
                        .first = ChallengeBuffer::kBTransposed,
                        .second = ChallengeBuffer::kA,
                        .m = n,
                        .n = n,
                        .k = n,
                        .ld_first = n,
                        .ld_second = n,
                        .ld_c = n};
}

uint32_t ChallengeProductsToTime(uint32_t n) {
  const double ops = 2.0 * n * static_cast<double>(n) * n;
  if (ops <= 0) return kChallengeProductsMax;
  const double wanted = std::ceil(kChallengeTimedOps / ops);
  return static_cast<uint32_t>(std::clamp(wanted, static_cast<double>(kChallengeProductsMin), static_cast<double>(kChallengeProductsMax)));
}

double ChallengePerProductUs(double batch_ms, uint32_t products) {
  return products == 0 ? 0 : batch_ms * 1e3 / products;
}

}  // namespace tessera::kernels
