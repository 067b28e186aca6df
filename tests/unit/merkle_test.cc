#include <catch2/catch.hpp>

#include "services/billing/usage_proof.h"
#include "services/common/merkle.h"

using namespace tessera;
using namespace tessera::billing;

namespace {

std::vector<Hash> Leaves(size_t n) {
  std::vector<Hash> leaves;
  for (size_t i = 0; i < n; ++i) {
    leaves.push_back(LeafHash(UsageLeaf({.job_id = static_cast<int64_t>(i + 1), .attempt = 1, .worker_id = 7, .seq = i + 1,
                                         .gpu_ms = 1'000, .measured_at_ms = 0, .charge_utok = 10, .fee_utok = 1})));
  }
  return leaves;
}

}  // namespace

TEST_CASE("merkle: the tree shape of RFC 6962", "[merkle]") {
  CHECK(ToHex(MerkleRoot({})) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");  // SHA-256("")
  const auto l = Leaves(5);
  CHECK(MerkleRoot({l[0]}) == l[0]);
  CHECK(MerkleRoot({l[0], l[1]}) == NodeHash(l[0], l[1]));
  CHECK(MerkleRoot({l[0], l[1], l[2]}) == NodeHash(NodeHash(l[0], l[1]), l[2]));
  CHECK(MerkleRoot(l) == NodeHash(NodeHash(NodeHash(l[0], l[1]), NodeHash(l[2], l[3])), l[4]));
  CHECK(InclusionPath(l, 4) == std::vector<Hash>{MerkleRoot({l[0], l[1], l[2], l[3]})});
  CHECK(InclusionPath(l, 2) == (std::vector<Hash>{l[3], NodeHash(l[0], l[1]), l[4]}));
  CHECK(UsageLeaf({}).size() == 60);
  CHECK(LeafHash("x") != NodeHash(LeafHash("x"), LeafHash("x")));  // leaves and nodes are domain-separated
}

TEST_CASE("merkle: every inclusion proof verifies, and any change breaks it", "[merkle]") {
  for (size_t n = 1; n <= 70; ++n) {
    const auto leaves = Leaves(n);
    const Hash root = MerkleRoot(leaves);
    for (uint64_t i = 0; i < n; ++i) {
      INFO("n " << n << " index " << i);
      const std::vector<Hash> path = InclusionPath(leaves, i);
      REQUIRE(VerifyInclusion(leaves[i], i, n, path, root));
      Hash changed = leaves[i];
      changed[5] ^= 1;
      CHECK_FALSE(VerifyInclusion(changed, i, n, path, root));
      Hash bad_root = root;
      bad_root[0] ^= 0x80;
      CHECK_FALSE(VerifyInclusion(leaves[i], i, n, path, bad_root));
      if (!path.empty()) {
        std::vector<Hash> bad_path = path;
        bad_path.back()[31] ^= 1;
        CHECK_FALSE(VerifyInclusion(leaves[i], i, n, bad_path, root));
        CHECK_FALSE(VerifyInclusion(leaves[i], i, n, std::vector<Hash>(path.begin(), path.end() - 1), root));
      }
      if (n > 1) CHECK_FALSE(VerifyInclusion(leaves[i], (i + 1) % n, n, path, root));
    }
  }
}
