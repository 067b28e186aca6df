#include "services/common/gpu_challenge_proof.h"

#include "absl/strings/str_cat.h"

namespace tessera {
namespace {

void Put32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

}  // namespace

std::string ChallengeRowLeaf(uint32_t row, const int32_t* values, uint32_t n) {
  std::string out("tessera/challenge-row/v1");
  out.push_back('\0');
  out.reserve(out.size() + 4 + 4 * static_cast<size_t>(n));
  Put32(out, row);
  for (uint32_t j = 0; j < n; ++j) Put32(out, static_cast<uint32_t>(values[j]));
  return out;
}

CommittedProduct CommitProduct(std::vector<int32_t> product, uint32_t n) {
  CommittedProduct c{.n = n, .values = std::move(product), .leaves = {}, .root = {}};
  c.leaves.reserve(n);
  for (uint32_t r = 0; r < n && c.values.size() >= static_cast<size_t>(r + 1) * n; ++r) {
    c.leaves.push_back(LeafHash(ChallengeRowLeaf(r, &c.values[static_cast<size_t>(r) * n], n)));
  }
  c.root = MerkleRoot(c.leaves);
  return c;
}

RowOpening OpenRow(const CommittedProduct& product, uint32_t row) {
  RowOpening opening{.row = row, .values = {}, .path = {}};
  if (row >= product.leaves.size()) return opening;
  const auto first = product.values.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(row) * product.n);
  opening.values.assign(first, first + product.n);
  opening.path = InclusionPath(product.leaves, row);
  return opening;
}

const Int8Throughput* Int8ThroughputOf(absl::string_view model) {
  for (const Int8Throughput& t : kInt8Throughput) {
    if (t.model == model) return &t;
  }
  return nullptr;
}

double ChallengeTops(uint32_t n, double elapsed_ms) { return 2.0 * n * static_cast<double>(n) * n / (elapsed_ms / 1e3) / 1e12; }

double SlowestChallengeMs(const Int8Throughput& model, uint32_t n) {
  return 2.0 * n * static_cast<double>(n) * n / (model.min_tops * 1e12) * 1e3;
}

absl::Status CheckOpening(const kernels::ChallengeSpec& spec, const std::vector<int8_t>& a, const std::vector<int8_t>& b,
                          const Hash& root, const RowOpening& opening) {
  if (opening.row >= spec.n || opening.values.size() != spec.n) {
    return absl::PermissionDeniedError(absl::StrCat("row ", opening.row, " is not a row of an ", spec.n, "×", spec.n, " product"));
  }
  if (opening.values != kernels::ChallengeRow(spec, a, b, opening.row)) {
    return absl::PermissionDeniedError(absl::StrCat("row ", opening.row, " is not row ", opening.row, " of A·B"));
  }
  const Hash leaf = LeafHash(ChallengeRowLeaf(opening.row, opening.values.data(), spec.n));
  if (!VerifyInclusion(leaf, opening.row, spec.n, opening.path, root)) {
    return absl::PermissionDeniedError(absl::StrCat("row ", opening.row, " does not open the committed root ", ToHex(root)));
  }
  return absl::OkStatus();
}

absl::Status CheckChallengeTime(absl::string_view model, uint32_t n, double elapsed_ms) {
  if (const Int8Throughput* found = Int8ThroughputOf(model); found != nullptr) {
    const Int8Throughput& t = *found;
    const double tops = elapsed_ms > 0 ? ChallengeTops(n, elapsed_ms) : 1e30;
    if (tops < t.min_tops) {
      return absl::PermissionDeniedError(absl::StrCat("too slow for a ", model, ": ", tops, " int8 TOPS on n = ", n, " in ", elapsed_ms,
                                                      " ms (at least ", t.min_tops, ")"));
    }
    if (tops > t.max_tops) {
      return absl::PermissionDeniedError(absl::StrCat("impossibly fast for a ", model, ": ", tops, " int8 TOPS on n = ", n, " in ",
                                                      elapsed_ms, " ms (at most ", t.max_tops, ")"));
    }
    return absl::OkStatus();
  }
  return absl::NotFoundError(absl::StrCat("no int8 throughput is known for GPU model '", model, "'"));
}

}  // namespace tessera
