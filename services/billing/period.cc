#include "services/billing/period.h"

namespace tessera::billing {

absl::Status ValidatePeriod(const v1::Period& p) {
  if (p.from_ms() < 0 || p.to_ms() < 0 || (p.to_ms() > 0 && p.to_ms() <= p.from_ms())) {
    return absl::InvalidArgumentError("period: from_ms and to_ms must be 0 or positive, with from_ms < to_ms");
  }
  return absl::OkStatus();
}

}  // namespace tessera::billing
