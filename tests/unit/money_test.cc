#include <catch2/catch.hpp>

#include <random>

#include "services/common/money.h"

using tessera::ChargeReport;
using tessera::CumulativeCharge;
using tessera::CumulativeFee;
using tessera::HoldAmount;

TEST_CASE("cumulative charge is floor(gpu_ms × price / 3.6e6)", "[money]") {
  CHECK(*CumulativeCharge(3'600'000, 2'000'000) == 2'000'000);  // one GPU-hour at 2 tokens
  CHECK(*CumulativeCharge(1, 3'599'999) == 0);
  CHECK(*CumulativeCharge(1, 3'600'000) == 1);
  CHECK(*CumulativeCharge(1'800'000, 1'000'001) == 500'000);  // floor of 500000.5
  CHECK_FALSE(CumulativeCharge(-1, 10).ok());
}

TEST_CASE("charges that would overflow int64 are refused, not wrapped", "[money]") {
  CHECK(CumulativeCharge(INT64_MAX, INT64_MAX).status().code() == absl::StatusCode::kOutOfRange);
  CHECK(HoldAmount(INT64_MAX, 64, 30LL * 24 * 3600 * 1000).status().code() == absl::StatusCode::kOutOfRange);
}

TEST_CASE("hold covers the most a job can be charged at its bid", "[money]") {
  CHECK(*HoldAmount(2'000'000, 2, 3'600'000) == 4'000'000);
  CHECK(*HoldAmount(1'000'000, 1, 1'000) == 277);
  // The charge at the bid for the full duration on all GPUs never exceeds the hold.
  CHECK(*CumulativeCharge(2 * 1'000, 1'000'000) <= *HoldAmount(1'000'000, 2, 1'000));
}

TEST_CASE("fee split is cumulative and never exceeds the charge", "[money]") {
  CHECK(CumulativeFee(1'000, 1'000) == 100);
  CHECK(CumulativeFee(9, 1'000) == 0);
  CHECK(CumulativeFee(10, 10'000) == 10);
}

TEST_CASE("rounding never drifts over 10,000 reports", "[money]") {
  const uint64_t seed = GENERATE(1u, 2u, 3u);
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const int64_t price = 1'234'567, fee_bps = 1'250;
  int64_t total_ms = 0, charged = 0, fee = 0;
  for (int i = 0; i < 10'000; ++i) {
    const int64_t gpu_ms = static_cast<int64_t>(rng() % 2'000);
    auto c = ChargeReport(total_ms, gpu_ms, price, fee_bps, charged, fee, INT64_MAX);
    REQUIRE(c.ok());
    REQUIRE(c->fee_utok <= c->charge_utok);
    total_ms = c->gpu_ms_total_after;
    charged += c->charge_utok;
    fee += c->fee_utok;
  }
  // Summing per-report charges gives exactly the charge of the total, and the fee of the total.
  CHECK(charged == *CumulativeCharge(total_ms, price));
  CHECK(fee == CumulativeFee(charged, fee_bps));
}

TEST_CASE("a report is never charged beyond what is left of the hold", "[money]") {
  auto c = ChargeReport(0, 3'600'000, 1'000'000, 0, 0, 0, 250'000);
  REQUIRE(c.ok());
  CHECK(c->charge_utok == 250'000);
  CHECK(ChargeReport(0, -5, 1, 0, 0, 0, 10).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("absurd usage saturates at the escrow cap instead of failing", "[money]") {
  auto c = ChargeReport(INT64_MAX - 5, INT64_MAX, INT64_MAX, 1'000, 0, 0, 42);
  REQUIRE(c.ok());
  CHECK(c->charge_utok == 42);
  CHECK(c->fee_utok == 4);
  CHECK(c->gpu_ms_total_after == INT64_MAX);
}
