// libFuzzer target: Merkle inclusion proofs as `tessera billing verify-proof` checks them. The fuzzer
// picks a settlement batch (its reports, the leaf to prove) and one alteration of the proof; the
// genuine proof must verify and every altered one must not (tree_size aside: RFC 9162 binds the
// size to the root through the signed tree head, not through the path). Arbitrary proofs off the
// wire only ever get INVALID_ARGUMENT or DATA_LOSS.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <vector>

#include "services/billing/usage_proof.h"
#include "base/check.h"
#include "services/common/merkle.h"

namespace {

using tessera::Hash;
using tessera::billing::UsageLeafFields;

std::string Bytes(const Hash& h) { return std::string(reinterpret_cast<const char*>(h.data()), h.size()); }

tessera::v1::UsageProof ProofOf(const std::vector<UsageLeafFields>& reports, uint64_t index) {
  std::vector<Hash> leaves;
  for (const UsageLeafFields& f : reports) leaves.push_back(tessera::LeafHash(tessera::billing::UsageLeaf(f)));
  tessera::v1::UsageProof proof;
  tessera::billing::SetLeafFields(reports[index], &proof);
  proof.set_batch_id(1);
  proof.set_leaf_index(index);
  proof.set_tree_size(reports.size());
  proof.set_merkle_root(Bytes(tessera::MerkleRoot(leaves)));
  for (const Hash& h : tessera::InclusionPath(leaves, index)) proof.add_path(Bytes(h));
  return proof;
}

void FlipBit(std::string& bytes, FuzzedDataProvider& in) {
  if (bytes.empty()) return;
  const size_t bit = in.ConsumeIntegralInRange<size_t>(0, bytes.size() * 8 - 1);
  bytes[bit / 8] = static_cast<char>(bytes[bit / 8] ^ (1 << (bit % 8)));
}

// Alters one thing the proof states; false when the fuzzer picked an alteration that is none.
bool Alter(tessera::v1::UsageProof& proof, FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange(0, 7)) {
    case 0: proof.set_job_id(proof.job_id() ^ in.ConsumeIntegralInRange<int64_t>(1, INT64_MAX)); return true;
    case 1: proof.set_gpu_ms(proof.gpu_ms() ^ in.ConsumeIntegralInRange<int64_t>(1, INT64_MAX)); return true;
    case 2: proof.set_charge_utok(proof.charge_utok() ^ in.ConsumeIntegralInRange<int64_t>(1, INT64_MAX)); return true;
    case 3: FlipBit(*proof.mutable_merkle_root(), in); return true;
    case 4: {
      if (proof.path_size() == 0) return false;
      FlipBit(*proof.mutable_path(in.ConsumeIntegralInRange(0, proof.path_size() - 1)), in);
      return true;
    }
    case 5: {
      if (proof.path_size() == 0) return false;
      proof.mutable_path()->RemoveLast();
      return true;
    }
    case 6: proof.add_path(in.ConsumeBytesAsString(32)); return true;
    default: {
      if (proof.tree_size() < 2) return false;
      const uint64_t other = in.ConsumeIntegralInRange<uint64_t>(0, proof.tree_size() - 2);
      proof.set_leaf_index(other >= proof.leaf_index() ? other + 1 : other);
      return true;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  if (in.ConsumeBool()) {
    tessera::v1::UsageProof wire;
    if (!wire.ParseFromString(in.ConsumeRemainingBytesAsString())) return 0;
    const absl::Status s = tessera::billing::VerifyUsageProof(wire);
    TESSERA_CHECK(s.ok() || s.code() == absl::StatusCode::kInvalidArgument || s.code() == absl::StatusCode::kDataLoss);
    return 0;
  }
  std::vector<UsageLeafFields> reports(in.ConsumeIntegralInRange<size_t>(1, 300));
  for (size_t i = 0; i < reports.size(); ++i) {
    // Distinct reports, as in a batch: seq differs; the rest is the fuzzer's.
    reports[i] = {.job_id = in.ConsumeIntegral<int64_t>(), .attempt = in.ConsumeIntegral<uint32_t>(),
                  .worker_id = in.ConsumeIntegral<int64_t>(), .seq = i + 1, .gpu_ms = in.ConsumeIntegral<int64_t>(),
                  .measured_at_ms = in.ConsumeIntegral<int64_t>(), .charge_utok = in.ConsumeIntegral<int64_t>(),
                  .fee_utok = in.ConsumeIntegral<int64_t>()};
  }
  const uint64_t index = in.ConsumeIntegralInRange<uint64_t>(0, reports.size() - 1);
  tessera::v1::UsageProof proof = ProofOf(reports, index);
  TESSERA_CHECK(tessera::billing::VerifyUsageProof(proof).ok());
  if (Alter(proof, in)) TESSERA_CHECK(!tessera::billing::VerifyUsageProof(proof).ok());
  return 0;
}
