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
// (2·n³ operations), from the lowest a working card of that model reaches on the challenge's size
// to a little over its datasheet peak, and that size: big enough that the product takes a GPU
// measurable time, small enough that the server's check (k rows, O(k·n²)) stays cheap. A CPU gets a
// small n: the real product must finish long before the deadline.
struct Int8Throughput {
  absl::string_view model;
  double min_tops;
  double max_tops;
  uint32_t challenge_n;
};
inline constexpr Int8Throughput kInt8Throughput[] = {
    {"H200", 40, 2'200, 4'096},   {"H100", 30, 2'200, 4'096}, {"A100", 12, 700, 4'096}, {"L40S", 15, 800, 4'096},
    {"RTX 4090", 12, 730, 4'096}, {"A10", 5, 280, 4'096},     {"T4", 2, 140, 4'096},    {"CPU", 0.00002, 5, 256},
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
