#include "services/billing/merkle.h"

#include <sodium.h>

#include "services/store/database.h"

namespace tessera::billing {
namespace {

void PutBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

Hash Sha256(std::string_view a, const Hash* left = nullptr, const Hash* right = nullptr) {
  crypto_hash_sha256_state state;
  crypto_hash_sha256_init(&state);
  crypto_hash_sha256_update(&state, reinterpret_cast<const unsigned char*>(a.data()), a.size());
  if (left != nullptr) crypto_hash_sha256_update(&state, left->data(), left->size());
  if (right != nullptr) crypto_hash_sha256_update(&state, right->data(), right->size());
  Hash out;
  crypto_hash_sha256_final(&state, out.data());
  return out;
}

// The largest power of two strictly below n (n ≥ 2).
uint64_t SplitPoint(uint64_t n) {
  uint64_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

Hash Root(const std::vector<Hash>& leaves, uint64_t begin, uint64_t end) {
  if (end - begin == 1) return leaves[begin];
  const uint64_t k = SplitPoint(end - begin);
  return NodeHash(Root(leaves, begin, begin + k), Root(leaves, begin + k, end));
}

void Path(const std::vector<Hash>& leaves, uint64_t index, uint64_t begin, uint64_t end, std::vector<Hash>& out) {
  if (end - begin <= 1) return;
  const uint64_t k = SplitPoint(end - begin);
  if (index < k) {
    Path(leaves, index, begin, begin + k, out);
    out.push_back(Root(leaves, begin + k, end));
  } else {
    Path(leaves, index - k, begin + k, end, out);
    out.push_back(Root(leaves, begin, begin + k));
  }
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

Hash LeafHash(std::string_view leaf_bytes) { return Sha256(std::string(1, '\0') + std::string(leaf_bytes)); }

Hash NodeHash(const Hash& left, const Hash& right) { return Sha256(std::string_view("\x01", 1), &left, &right); }

Hash MerkleRoot(const std::vector<Hash>& leaves) {
  if (leaves.empty()) return Sha256("");
  return Root(leaves, 0, leaves.size());
}

std::vector<Hash> InclusionPath(const std::vector<Hash>& leaves, uint64_t index) {
  std::vector<Hash> out;
  if (index < leaves.size()) Path(leaves, index, 0, leaves.size(), out);
  return out;
}

bool VerifyInclusion(const Hash& leaf, uint64_t index, uint64_t tree_size, const std::vector<Hash>& path, const Hash& root) {
  if (index >= tree_size) return false;
  uint64_t fn = index, sn = tree_size - 1;
  Hash r = leaf;
  for (const Hash& p : path) {
    if (sn == 0) return false;
    if ((fn & 1) == 1 || fn == sn) {
      r = NodeHash(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}

std::string ToHex(const Hash& h) {
  return store::Hex(std::string_view(reinterpret_cast<const char*>(h.data()), h.size()));
}

}  // namespace tessera::billing
