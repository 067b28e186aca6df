// Names of accounts and workers' providers, as every service checks them at its edge.
#pragma once

#include <string_view>

#include "absl/status/status.h"

namespace tessera {

// 1..64 of [a-z0-9_-], starting with a letter; INVALID_ARGUMENT naming `field` otherwise.
absl::Status ValidateName(std::string_view field, std::string_view value);

}  // namespace tessera
