// Proof of GPU, the commitment and its check (kernels/gpu_challenge.h has the compute). The worker
// commits to its product with the Merkle root (merkle.h) of one leaf per row, then opens the rows
// the server picks after seeing the root; the server recomputes each opened row itself (O(n²)
// each), checks it against the root, and checks the time against what the claimed GPU model can do
// (kInt8Throughput: too slow is not that GPU, faster than it is impossible).
//
//   CommittedProduct c = CommitProduct(std::move(product), n);    // worker: c.root is sent
//   RowOpening o = OpenRow(c, 17);                                // worker, after the server picks 17
//   absl::Status s = CheckOpening(spec, a, b, root, o);           // server
//   absl::Status t = CheckChallengeTime("H100", n, elapsed_ms);   // server
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "kernels/gpu_challenge.h"
#include "services/common/merkle.h"

namespace tessera {

// A row's leaf: "tessera/challenge-row/v1", a zero byte, the row index (uint32), then its n values
// (int32), all big-endian.
std::string ChallengeRowLeaf(uint32_t row, const int32_t* values, uint32_t n);

// A product with its row leaves hashed once, so that any row opens without hashing them again.
struct CommittedProduct {
  uint32_t n = 0;
  std::vector<int32_t> values;  // n² values, row-major
  std::vector<Hash> leaves;     // LeafHash(ChallengeRowLeaf(r, …)) per row
  Hash root{};
};
CommittedProduct CommitProduct(std::vector<int32_t> product, uint32_t n);

struct RowOpening {
  uint32_t row = 0;
  std::vector<int32_t> values;
  std::vector<Hash> path;  // RFC 9162 inclusion path of the row's leaf
};
// Empty values and path for a row outside the product.
RowOpening OpenRow(const CommittedProduct& product, uint32_t row);

// OK when the opened row is the true row of A·B and its leaf is in `root` at its index; otherwise
// PERMISSION_DENIED saying which. `a` and `b` are the challenge's operands (ChallengeOperands).
absl::Status CheckOpening(const kernels::ChallengeSpec& spec, const std::vector<int8_t>& a, const std::vector<int8_t>& b,
                          const Hash& root, const RowOpening& opening);

// What a GPU model achieves on the challenge's dense int8 product, in tera-operations per second
// (2·n³ operations), and the challenge's size: big enough that the product takes a GPU measurable
// time, small enough that the server's check (k rows, O(k·n²)) stays cheap. A CPU gets a small n:
// the real product must finish long before the deadline. The worker reports the mean of a batch of
// back-to-back products (kernels/gpu_challenge_plan.h), so launch overhead is not in the figure.
//
// The range, from the datasheets' dense (not sparse) int8 tensor-core peaks:
//   min_tops = 50% of the slowest variant's peak sold under the model name (an SXM and a PCIe card
//              are both "H100"): what cuBLAS at n = 4096 should clear with room for clocks and
//              power limits, and high enough that a cheaper model at its own full peak does not
//              pass (an A100, 624, an RTX 4090, 661, or an L40S, 733, cannot pass as an H100, 756);
//   max_tops = 110% of the fastest variant's peak: faster is impossible.
// An H100 SXM and an H200 have the same tensor cores: compute alone cannot tell them apart.
// A starting point, not a measurement: to be calibrated on real cards of each model
// (tests/gpu/gpu_challenge_gpu_test.cc prints what a card achieves).
struct Int8Throughput {
  absl::string_view model;
  double min_tops;
  double max_tops;
  uint32_t challenge_n;
};
inline constexpr Int8Throughput kInt8Throughput[] = {
    {"H200", 835, 2'200, 4'096},    // SXM 1,979, NVL 1,671: min 50% of 1,671, max 110% of 1,979
    {"H100", 756, 2'200, 4'096},    // SXM 1,979, NVL 1,671, PCIe 1,513: min 50% of 1,513, max 110% of 1,979
    {"A100", 312, 690, 4'096},      // SXM and PCIe 624: min 50%, max 110%
    {"L40S", 366, 810, 4'096},      // 733: min 50%, max 110%
    {"RTX 4090", 330, 730, 4'096},  // 660.6: min 50%, max 110%
    {"A10", 125, 275, 4'096},       // 250: min 50%, max 110%
    {"T4", 65, 145, 4'096},         // 130: min 50%, max 110%
    {"CPU", 0.00002, 5, 256},       // no tensor cores: any honest CPU, far under the slowest GPU
};
// The model's row of the table; null for a model it does not know.
const Int8Throughput* Int8ThroughputOf(absl::string_view model);
// What a product of size n done in `elapsed_ms` achieves, in int8 TOPS (2·n³ operations).
double ChallengeTops(uint32_t n, double elapsed_ms);
// The longest the model may take on a product of size n (at its min_tops), in ms.
double SlowestChallengeMs(const Int8Throughput& model, uint32_t n);

// OK when `elapsed_ms` for a challenge of size n fits the model's range; PERMISSION_DENIED with the
// figures when it does not, NOT_FOUND for a model the table does not know.
absl::Status CheckChallengeTime(absl::string_view model, uint32_t n, double elapsed_ms);

}  // namespace tessera
