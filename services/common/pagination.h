// Keyset pagination shared by every List call. A page token is opaque to clients: it names the
// list it belongs to, the filters of the request that issued it and where the next page starts
// (the last row's key: rows are listed by descending id; an offset for ranked reports). A token
// is good only for the list and the filters it was issued for, so a client that changes a filter
// mid-way gets INVALID_ARGUMENT instead of a page of another query (AIP-158). A page holds 1..500
// rows, 50 by default.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tessera {

struct Page {
  std::optional<int64_t> after;  // the previous page's last key; unset on the first page
  uint32_t size = 50;

  // For lists by descending id: list rows with ids below this.
  int64_t before_id() const { return after.value_or(INT64_MAX); }
};

// What a token belongs to: the list ("jobs", "transfers", …) and the request's filters, spelled
// out by the caller (e.g. absl::StrCat(account, "|", state)).
struct PageQuery {
  std::string_view list;
  std::string_view filters;
};

// INVALID_ARGUMENT (naming page_token or page_size) for a token we did not issue for this query,
// or a size above 500.
absl::StatusOr<Page> ParsePage(const PageQuery& query, std::string_view page_token, uint32_t page_size);

// The token of the page after the one whose last row has key `last`.
std::string NextPageToken(const PageQuery& query, int64_t last);

}  // namespace tessera
