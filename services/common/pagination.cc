#include "services/common/pagination.h"

#include <array>

#include "absl/strings/escaping.h"

namespace tessera {
namespace {

constexpr uint8_t kTokenVersion = 1;
constexpr size_t kTokenBytes = 1 + 8 + 8;

// FNV-1a: stable across servers and builds (a token issued by one server is read by another).
uint64_t QueryDigest(const PageQuery& query) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  };
  mix(query.list);
  mix(std::string_view("\0", 1));
  mix(query.filters);
  return h;
}

void PutBigEndian(uint64_t v, char* out) {
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xFF);
}

uint64_t GetBigEndian(const char* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

}  // namespace

absl::StatusOr<Page> ParsePage(const PageQuery& query, std::string_view page_token, uint32_t page_size) {
  if (page_size > 500) return absl::InvalidArgumentError("page_size must be at most 500");
  Page page;
  if (page_size > 0) page.size = page_size;
  if (page_token.empty()) return page;
  std::string raw;
  if (!absl::WebSafeBase64Unescape(absl::string_view(page_token.data(), page_token.size()), &raw) || raw.size() != kTokenBytes || raw[0] != kTokenVersion) {
    return absl::InvalidArgumentError("page_token is not valid: pass a previous response's next_page_token unchanged");
  }
  if (GetBigEndian(raw.data() + 9) != QueryDigest(query)) {
    return absl::InvalidArgumentError(
        "page_token was issued for another query: keep the filters of the request that returned it, or start again without a token");
  }
  page.after = static_cast<int64_t>(GetBigEndian(raw.data() + 1));
  return page;
}

std::string NextPageToken(const PageQuery& query, int64_t last) {
  std::array<char, kTokenBytes> raw{};
  raw[0] = static_cast<char>(kTokenVersion);
  PutBigEndian(static_cast<uint64_t>(last), raw.data() + 1);
  PutBigEndian(QueryDigest(query), raw.data() + 9);
  std::string token;
  absl::WebSafeBase64Escape(absl::string_view(raw.data(), raw.size()), &token);
  return token;
}

}  // namespace tessera
