#include "services/common/gpu_challenge_proof.h"

#include "absl/strings/str_cat.h"

namespace tessera {
namespace {

void Put32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

std::vector<Hash> RowLeaves(const std::vector<int32_t>& product, uint32_t n) {
  std::vector<Hash> leaves;
  leaves.reserve(n);
  for (uint32_t r = 0; r < n; ++r) leaves.push_back(LeafHash(ChallengeRowLeaf(r, &product[static_cast<size_t>(r) * n], n)));
  return leaves;
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

Hash ChallengeRoot(const std::vector<int32_t>& product, uint32_t n) { return MerkleRoot(RowLeaves(product, n)); }

RowOpening OpenRow(const std::vector<int32_t>& product, uint32_t n, uint32_t row) {
  RowOpening opening{.row = row, .values = {}, .path = {}};
  if (row >= n) return opening;
  const auto first = product.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(row) * n);
  opening.values.assign(first, first + n);
  opening.path = InclusionPath(RowLeaves(product, n), row);
  return opening;
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
  for (const Int8Throughput& t : kInt8Throughput) {
    if (t.model != model) continue;
    const double ops = 2.0 * n * static_cast<double>(n) * n;
    const double tops = elapsed_ms > 0 ? ops / (elapsed_ms / 1e3) / 1e12 : 1e30;
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
