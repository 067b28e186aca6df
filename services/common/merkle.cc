#include "services/common/merkle.h"

#include <sodium.h>


namespace tessera {
namespace {


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
  char hex[2 * sizeof(Hash) + 1];
  sodium_bin2hex(hex, sizeof hex, h.data(), h.size());
  return hex;
}

}  // namespace tessera
