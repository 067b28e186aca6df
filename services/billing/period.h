// A reporting period, [from_ms, to_ms) in Unix epoch ms with to_ms 0 meaning "now": its checks and
// its bounds as SQL parameters (compared as to_timestamp($n / 1000.0)).
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "tessera/v1/billing.pb.h"

namespace tessera::billing {

// INVALID_ARGUMENT naming the rule unless both bounds are 0 or positive and from_ms < to_ms.
absl::Status ValidatePeriod(const v1::Period& period);

// The end as a query bound: an open end is the far future.
inline int64_t PeriodEndMs(const v1::Period& period) { return period.to_ms() > 0 ? period.to_ms() : INT64_MAX / 1000; }

}  // namespace tessera::billing
