#include "services/common/pagination.h"

#include <charconv>

namespace tessera {

absl::StatusOr<Page> ParsePage(std::string_view page_token, uint32_t page_size) {
  Page page;
  if (!page_token.empty()) {
    auto [end, ec] = std::from_chars(page_token.data(), page_token.data() + page_token.size(), page.before_id);
    if (ec != std::errc() || end != page_token.data() + page_token.size()) return absl::InvalidArgumentError("page_token is not valid");
  }
  if (page_size > 500) return absl::InvalidArgumentError("page_size must be at most 500");
  if (page_size > 0) page.size = page_size;
  return page;
}

}  // namespace tessera
