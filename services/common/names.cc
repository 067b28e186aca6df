#include "services/common/names.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace tessera {

absl::Status ValidateName(std::string_view field, std::string_view value) {
  bool ok = !value.empty() && value.size() <= 64 && value[0] >= 'a' && value[0] <= 'z';
  for (char c : value) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(field), " must be 1..64 characters of [a-z0-9_-] starting with a letter, got '", std::string(value), "'"));
  }
  return absl::OkStatus();
}

}  // namespace tessera
