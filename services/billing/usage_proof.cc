#include "services/billing/usage_proof.h"

#include <cstring>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace tessera::billing {
namespace {

absl::StatusOr<Hash> HashFrom(const std::string& bytes, std::string_view what) {
  if (bytes.size() != Hash().size()) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(what), " must be 32 bytes, got ", bytes.size()));
  }
  Hash h;
  std::memcpy(h.data(), bytes.data(), h.size());
  return h;
}

}  // namespace

namespace {

void PutBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

std::string UsageLeaf(const UsageLeafFields& f) {
  std::string out;
  out.reserve(60);
  PutBigEndian(out, static_cast<uint64_t>(f.job_id), 8);
  PutBigEndian(out, f.attempt, 4);
  PutBigEndian(out, static_cast<uint64_t>(f.worker_id), 8);
  PutBigEndian(out, f.seq, 8);
  PutBigEndian(out, static_cast<uint64_t>(f.gpu_ms), 8);
  PutBigEndian(out, static_cast<uint64_t>(f.measured_at_ms), 8);
  PutBigEndian(out, static_cast<uint64_t>(f.charge_utok), 8);
  PutBigEndian(out, static_cast<uint64_t>(f.fee_utok), 8);
  return out;
}

UsageLeafFields LeafFieldsOf(const v1::UsageProof& proof) {
  return {.job_id = proof.job_id(), .attempt = proof.attempt(), .worker_id = proof.worker_id(), .seq = proof.seq(),
          .gpu_ms = proof.gpu_ms(), .measured_at_ms = proof.measured_at_ms(), .charge_utok = proof.charge_utok(),
          .fee_utok = proof.fee_utok()};
}

void SetLeafFields(const UsageLeafFields& f, v1::UsageProof* proof) {
  proof->set_job_id(f.job_id);
  proof->set_attempt(f.attempt);
  proof->set_worker_id(f.worker_id);
  proof->set_seq(f.seq);
  proof->set_gpu_ms(f.gpu_ms);
  proof->set_measured_at_ms(f.measured_at_ms);
  proof->set_charge_utok(f.charge_utok);
  proof->set_fee_utok(f.fee_utok);
}

absl::Status VerifyUsageProof(const v1::UsageProof& proof) {
  absl::StatusOr<Hash> root = HashFrom(proof.merkle_root(), "merkle_root");
  if (!root.ok()) return root.status();
  std::vector<Hash> path;
  for (int i = 0; i < proof.path_size(); ++i) {
    absl::StatusOr<Hash> h = HashFrom(proof.path(i), absl::StrCat("path[", i, "]"));
    if (!h.ok()) return h.status();
    path.push_back(*h);
  }
  if (proof.tree_size() == 0 || proof.leaf_index() >= proof.tree_size()) {
    return absl::InvalidArgumentError(absl::StrCat("leaf_index ", proof.leaf_index(), " is outside a tree of ", proof.tree_size(), " leaves"));
  }
  if (!VerifyInclusion(LeafHash(UsageLeaf(LeafFieldsOf(proof))), proof.leaf_index(), proof.tree_size(), path, *root)) {
    return absl::DataLossError(absl::StrCat("the report does not lead to batch ", proof.batch_id(), "'s root ", ToHex(*root),
                                            ": the report, its index or its path was altered"));
  }
  return absl::OkStatus();
}

}  // namespace tessera::billing
