// Money arithmetic of DESIGN.md "Money rules", in integer micro-tokens (µT) only.
//
// A job's cumulative charge on an assignment is always floor(gpu_ms_total × price / 3,600,000);
// each usage report is charged the difference between the cumulative amounts after and before it,
// so rounding never drifts however usage is split into reports. The platform fee is likewise
// cumulative: floor(cumulative_charge × fee_bps / 10,000).
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"

namespace tessera {

inline constexpr int64_t kMsPerHour = 3'600'000;
inline constexpr int64_t kBasisPoints = 10'000;

// The most µT that may be outstanding at once (minted by deposits and not yet paid out): 10^18 µT,
// a trillion tokens. Every balance, and the sum of any two, then stays far inside int64, so no
// ledger statement can overflow; a deposit beyond it is refused before anything is written.
inline constexpr int64_t kMaxTokenSupplyUtok = 1'000'000'000'000'000'000;

// floor(gpu_ms_total × price_utok_per_gpu_hour / 3,600,000); OUT_OF_RANGE if it exceeds int64.
absl::StatusOr<int64_t> CumulativeCharge(int64_t gpu_ms_total, int64_t price_utok_per_gpu_hour);

// floor(charge_utok × fee_bps / 10,000).
int64_t CumulativeFee(int64_t charge_utok, int64_t fee_bps);

// Escrow held at submit: the most the job can be charged, floor(bid × gpus × max_duration / 1 h).
absl::StatusOr<int64_t> HoldAmount(int64_t bid_utok_per_gpu_hour, int64_t gpu_count, int64_t max_duration_ms);

// What one report adds, given the assignment's totals before it.
struct ReportCharge {
  int64_t charge_utok = 0;  // escrow → provider and platform together
  int64_t fee_utok = 0;     // the platform's part of charge_utok
  int64_t gpu_ms_total_after = 0;
};

// Charges a report of `gpu_ms` on an assignment that already has `gpu_ms_total_before` settled, at
// `price`, with `fee_bps`. `charge_cap_utok` is what is left of the job's escrow: the charge never
// exceeds it (a customer never pays more than its hold).
absl::StatusOr<ReportCharge> ChargeReport(int64_t gpu_ms_total_before, int64_t gpu_ms, int64_t price_utok_per_gpu_hour,
                                          int64_t fee_bps, int64_t charged_before_utok, int64_t fee_before_utok,
                                          int64_t charge_cap_utok);

}  // namespace tessera
