// A job's secret values kept out of what leaves the worker: its log lines and the last lines in a
// failed job's error. Each value, and each line of a multi-line one, becomes "<redacted>"; values
// shorter than 4 characters are left alone (they would redact ordinary words).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "google/protobuf/map.h"

namespace tessera::worker {

class SecretRedactor {
 public:
  explicit SecretRedactor(const google::protobuf::Map<std::string, std::string>& secrets);
  std::string operator()(std::string text) const;

 private:
  std::vector<std::string> values_;  // longest first, so that a whole secret goes before its lines
};

}  // namespace tessera::worker
