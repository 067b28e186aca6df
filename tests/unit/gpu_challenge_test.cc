// Proof of GPU's arithmetic and its check: the product's rows are what the server recomputes, the
// Merkle commitment opens exactly the committed rows, and the timing table tells a CPU from an H100.
#include <catch2/catch.hpp>

#include <chrono>

#include "kernels/compute_backend.h"
#include "services/common/gpu_challenge_proof.h"

namespace tessera {
namespace {

using kernels::ChallengeSpec;

TEST_CASE("the challenge's operands are int8 from the seed, and its product wraps in int32", "[challenge]") {
  const ChallengeSpec spec{.seed = 7, .n = 96};  // not a multiple of the block size
  std::vector<int8_t> a, b, a2, b2;
  kernels::ChallengeOperands(spec, a, b);
  kernels::ChallengeOperands(spec, a2, b2);
  CHECK(a == a2);
  CHECK(b == b2);
  CHECK(a != b);
  CHECK(*std::min_element(a.begin(), a.end()) < -100);  // the whole int8 range is used
  CHECK(*std::max_element(a.begin(), a.end()) > 100);
  std::vector<int8_t> other_a, other_b;
  kernels::ChallengeOperands({.seed = 8, .n = 96}, other_a, other_b);
  CHECK(other_a != a);

  const std::vector<int32_t> c = kernels::ChallengeProduct(spec);
  REQUIRE(c.size() == 96u * 96u);
  for (uint32_t row : {0u, 1u, 63u, 64u, 95u}) {
    const std::vector<int32_t> expected = kernels::ChallengeRow(spec, a, b, row);
    CHECK(std::equal(expected.begin(), expected.end(), c.begin() + static_cast<ptrdiff_t>(row) * 96));
  }
  // One element by hand.
  int64_t c00 = 0;
  for (uint32_t k = 0; k < 96; ++k) c00 += static_cast<int64_t>(a[k]) * b[static_cast<size_t>(k) * 96];
  CHECK(c[0] == c00);
}

TEST_CASE("an honest commitment opens; a wrong row, index, path or root does not", "[challenge]") {
  const ChallengeSpec spec{.seed = 11, .n = 40};
  std::vector<int8_t> a, b;
  kernels::ChallengeOperands(spec, a, b);
  const std::vector<int32_t> c = kernels::ChallengeProduct(spec);
  const CommittedProduct committed = CommitProduct(c, spec.n);
  const Hash root = committed.root;
  for (uint32_t row : {0u, 17u, 39u}) CHECK(CheckOpening(spec, a, b, root, OpenRow(committed, row)).ok());

  RowOpening wrong_value = OpenRow(committed, 17);
  wrong_value.values[3] += 1;
  CHECK_THAT(std::string(CheckOpening(spec, a, b, root, wrong_value).message()), Catch::Contains("is not row 17 of A·B"));
  RowOpening moved = OpenRow(committed, 17);
  moved.row = 18;  // a true row presented as another
  CHECK(absl::IsPermissionDenied(CheckOpening(spec, a, b, root, moved)));
  RowOpening bad_path = OpenRow(committed, 17);
  bad_path.path[0][0] ^= 1;
  CHECK_THAT(std::string(CheckOpening(spec, a, b, root, bad_path).message()), Catch::Contains("does not open the committed root"));
  RowOpening outside = OpenRow(committed, 17);
  outside.row = 40;
  CHECK(absl::IsPermissionDenied(CheckOpening(spec, a, b, root, outside)));
  // A worker that committed to a random root cannot open true rows against it.
  Hash random_root{};
  random_root[0] = 1;
  CHECK(absl::IsPermissionDenied(CheckOpening(spec, a, b, random_root, OpenRow(committed, 5))));
  // Nor can it commit to a product it changed and open the true rows.
  std::vector<int32_t> forged = c;
  forged[5] += 1;
  CHECK(absl::IsPermissionDenied(CheckOpening(spec, a, b, CommitProduct(forged, spec.n).root, OpenRow(committed, 0))));
}

TEST_CASE("the timing table tells a CPU from the GPU it claims to be", "[challenge]") {
  const ChallengeSpec spec{.seed = 3, .n = 256};
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> c = kernels::ChallengeProduct(spec);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(c.size() == 256u * 256u);
  INFO("CPU: " << ms << " ms for n = 256");
  CHECK(CheckChallengeTime("CPU", spec.n, ms).ok());
  const absl::Status claimed = CheckChallengeTime("H100", spec.n, ms);
  CHECK(absl::IsPermissionDenied(claimed));
  CHECK_THAT(std::string(claimed.message()), Catch::Contains("too slow for a H100"));
  // 2·8192³ operations: 0.1 ms would be 11,000 TOPS, beyond any card.
  CHECK_THAT(std::string(CheckChallengeTime("H100", 8192, 0.1).message()), Catch::Contains("impossibly fast for a H100"));
  CHECK(CheckChallengeTime("H100", 8192, 1.0).ok());  // ~1,100 TOPS: an H100 SXM at 56% of its dense peak
  // ~733 TOPS is an L40S at its full peak, not an H100 (the minimum is 50% of the H100 PCIe's 1,513).
  CHECK(absl::IsPermissionDenied(CheckChallengeTime("H100", 8192, 1.5)));
  CHECK(absl::IsNotFound(CheckChallengeTime("Z9000", 8192, 1.5)));
}

}  // namespace
TEST_CASE("the CPU backend's challenge run is the reference product and times the multiplication", "[challenge]") {
  const ChallengeSpec spec{.seed = 77, .n = 48};
  absl::StatusOr<kernels::ChallengeRun> run = kernels::MakeCpuBackend()->RunChallenge(spec, 0);
  REQUIRE(run.ok());
  CHECK(run->product == kernels::ChallengeProduct(spec));
  CHECK(run->elapsed_us > 0);
  // Every model the table knows has a size and a range that a real card fits.
  for (const Int8Throughput& t : kInt8Throughput) {
    INFO(t.model);
    CHECK(t.challenge_n >= 64);
    CHECK(t.min_tops < t.max_tops);
    CHECK(Int8ThroughputOf(t.model) == &t);
    CHECK(SlowestChallengeMs(t, t.challenge_n) < 60'000);
  }
  CHECK(Int8ThroughputOf("Imaginary 9000") == nullptr);
}

}  // namespace tessera
