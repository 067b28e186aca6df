// The random source the host draws re-check times and challenge rows from: seeded runs replay,
// draws are in range and unbiased enough to reach every value.
#include <catch2/catch.hpp>

#include <set>

#include "services/common/random_source.h"

using tessera::RandomSource;
using tessera::SecureRandom;
using tessera::SeededRandom;

TEST_CASE("a seeded source replays its draws; another seed draws others", "[random]") {
  SeededRandom a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.Next();
    CHECK(x == b.Next());
    CHECK(x != c.Next());
  }
}

TEST_CASE("Below stays in range and reaches every value; Unit stays in [0, 1)", "[random]") {
  SeededRandom seeded(7);
  SecureRandom secure;
  for (RandomSource* random : {static_cast<RandomSource*>(&seeded), static_cast<RandomSource*>(&secure)}) {
    std::set<uint64_t> seen;
    for (int i = 0; i < 2'000; ++i) {
      const uint64_t v = random->Below(7);
      REQUIRE(v < 7);
      seen.insert(v);
      const double u = random->Unit();
      REQUIRE(u >= 0.0);
      REQUIRE(u < 1.0);
    }
    CHECK(seen.size() == 7);
    CHECK(random->Below(1) == 0);
  }
  // A bound that is not a power of two near the top of the range still lands inside it.
  for (int i = 0; i < 100; ++i) CHECK(seeded.Below(UINT64_MAX - 5) < UINT64_MAX - 5);
}
