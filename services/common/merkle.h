// Merkle trees as in RFC 6962 / RFC 9162 (Certificate Transparency): a leaf hash is
// SHA-256(0x00 ‖ leaf bytes), an interior node SHA-256(0x01 ‖ left ‖ right), and a tree of n leaves
// splits at the largest power of two below n (no duplicated nodes, so no second preimages). Each
// settlement batch commits to its usage reports with the root of such a tree (billing), and a
// worker answering a proof-of-GPU challenge commits to the rows of its product with one; an
// inclusion proof lets anyone check one leaf against the root.
//
//   std::vector<Hash> leaves = …;                       // LeafHash(bytes) per leaf
//   Hash root = MerkleRoot(leaves);
//   std::vector<Hash> path = InclusionPath(leaves, i);
//   bool ok = VerifyInclusion(leaves[i], i, leaves.size(), path, root);
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {

using Hash = std::array<unsigned char, 32>;

Hash LeafHash(std::string_view leaf_bytes);
Hash NodeHash(const Hash& left, const Hash& right);
// The root of the tree over `leaves` (leaf hashes, in order). The empty tree's root is SHA-256("").
Hash MerkleRoot(const std::vector<Hash>& leaves);
// Sibling hashes from the leaf up to the root, as RFC 9162 §2.1.3.1 defines them.
std::vector<Hash> InclusionPath(const std::vector<Hash>& leaves, uint64_t index);
// RFC 9162 §2.1.3.2: true when `path` proves `leaf` at `index` in a tree of `tree_size` leaves
// with root `root`.
bool VerifyInclusion(const Hash& leaf, uint64_t index, uint64_t tree_size, const std::vector<Hash>& path, const Hash& root);

std::string ToHex(const Hash& h);

}  // namespace tessera
