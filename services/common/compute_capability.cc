#include "services/common/compute_capability.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace tessera {

absl::StatusOr<uint32_t> ParseComputeCapability(std::string_view field, std::string_view text) {
  const size_t dot = text.find('.');
  const std::string_view major = text.substr(0, dot);
  const std::string_view minor = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  auto digits = [](std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
    }
    return true;
  };
  if (!digits(major) || major.size() > 2 || minor.size() != 1 || !digits(minor)) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(field), " must be \"major.minor\" such as \"8.0\" or \"12.1\", got '", std::string(text), "'"));
  }
  uint32_t value = 0;
  for (char c : major) value = value * 10 + static_cast<uint32_t>(c - '0');
  return value * 10 + static_cast<uint32_t>(minor[0] - '0');
}

}  // namespace tessera
