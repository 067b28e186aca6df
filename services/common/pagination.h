// Keyset pagination shared by every List call: a page token is the id of the last row of the
// previous page (rows are listed by descending id), and a page holds 1..500 rows, 50 by default.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace tessera {

struct Page {
  int64_t before_id = INT64_MAX;  // list rows with ids below this
  uint32_t size = 50;
};

// INVALID_ARGUMENT for a token that is not one we issued or a size above 500.
absl::StatusOr<Page> ParsePage(std::string_view page_token, uint32_t page_size);

}  // namespace tessera
