#include "services/common/money.h"

#include <algorithm>
#include <limits>

namespace tessera {
namespace {

// 128-bit intermediates: price × usage overflows int64 long before either factor does.
__extension__ typedef __int128 Int128;
constexpr Int128 kInt64Max = std::numeric_limits<int64_t>::max();

absl::StatusOr<int64_t> Narrow(Int128 value, const char* what) {
  if (value < 0 || value > std::numeric_limits<int64_t>::max()) {
    return absl::OutOfRangeError(std::string(what) + " does not fit in int64 micro-tokens");
  }
  return static_cast<int64_t>(value);
}

}  // namespace

absl::StatusOr<int64_t> CumulativeCharge(int64_t gpu_ms_total, int64_t price_utok_per_gpu_hour) {
  if (gpu_ms_total < 0 || price_utok_per_gpu_hour < 0) return absl::InvalidArgumentError("negative usage or price");
  return Narrow(static_cast<Int128>(gpu_ms_total) * price_utok_per_gpu_hour / kMsPerHour, "charge");
}

int64_t CumulativeFee(int64_t charge_utok, int64_t fee_bps) {
  return static_cast<int64_t>(static_cast<Int128>(charge_utok) * fee_bps / kBasisPoints);
}

absl::StatusOr<int64_t> HoldAmount(int64_t bid_utok_per_gpu_hour, int64_t gpu_count, int64_t max_duration_ms) {
  if (bid_utok_per_gpu_hour < 0 || gpu_count < 0 || max_duration_ms < 0) {
    return absl::InvalidArgumentError("negative bid, GPU count or duration");
  }
  return Narrow(static_cast<Int128>(bid_utok_per_gpu_hour) * gpu_count * max_duration_ms / kMsPerHour, "hold");
}

absl::StatusOr<ReportCharge> ChargeReport(int64_t gpu_ms_total_before, int64_t gpu_ms, int64_t price_utok_per_gpu_hour,
                                          int64_t fee_bps, int64_t charged_before_utok, int64_t fee_before_utok,
                                          int64_t charge_cap_utok) {
  if (gpu_ms < 0 || gpu_ms_total_before < 0 || price_utok_per_gpu_hour < 0) {
    return absl::InvalidArgumentError("usage and price must not be negative");
  }
  // Saturating, never failing: whatever a worker claims, the charge is bounded by the escrow cap,
  // and settlement must not stop on an absurd report.
  const Int128 total_after = std::min<Int128>(static_cast<Int128>(gpu_ms_total_before) + gpu_ms, kInt64Max);
  const Int128 cumulative = std::min<Int128>(total_after * price_utok_per_gpu_hour / kMsPerHour, kInt64Max);
  int64_t charge = static_cast<int64_t>(std::max<Int128>(0, cumulative - charged_before_utok));
  charge = std::min(charge, std::max<int64_t>(0, charge_cap_utok));
  const int64_t fee = std::max<int64_t>(0, CumulativeFee(charged_before_utok + charge, fee_bps) - fee_before_utok);
  return ReportCharge{.charge_utok = charge, .fee_utok = std::min(fee, charge),
                      .gpu_ms_total_after = static_cast<int64_t>(total_after)};
}

}  // namespace tessera
