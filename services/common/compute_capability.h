// CUDA compute capability: the API spells it "major.minor" ("9.0"), the scheduling core compares
// it as one number, major × 10 + minor (90).
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace tessera {

// "9.0" → 90, "12.1" → 121. INVALID_ARGUMENT naming `field` unless it is digits.digit.
absl::StatusOr<uint32_t> ParseComputeCapability(std::string_view field, std::string_view text);

}  // namespace tessera
