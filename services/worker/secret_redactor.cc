#include "services/worker/secret_redactor.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "services/common/workloads.h"

namespace tessera::worker {

SecretRedactor::SecretRedactor(const google::protobuf::Map<std::string, std::string>& secrets) {
  for (const auto& [name, value] : secrets) {
    if (value.size() >= 4) values_.push_back(value);
    for (absl::string_view line : absl::StrSplit(value, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (line.size() >= 4) values_.emplace_back(line);
    }
  }
  std::sort(values_.begin(), values_.end(), [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  values_.erase(std::unique(values_.begin(), values_.end()), values_.end());
}

std::string SecretRedactor::operator()(std::string text) const {
  static const std::string mark(kRedacted);
  for (const std::string& value : values_) absl::StrReplaceAll({{value, mark}}, &text);
  return text;
}

}  // namespace tessera::worker
