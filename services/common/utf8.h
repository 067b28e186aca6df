// Text from outside (a job's output, its file names) made valid UTF-8 before it goes into a proto3
// `string`, which a parser refuses otherwise (a whole request would fail for one bad byte). Each
// byte that does not start a well-formed sequence (RFC 3629: no overlong forms, no surrogates,
// nothing past U+10FFFF) becomes U+FFFD.
#pragma once

#include <string>
#include <string_view>

namespace tessera {

std::string ValidUtf8(std::string_view bytes);

// The longest prefix of `text` (valid UTF-8) of at most `max_bytes` that ends on a character boundary.
std::string_view Utf8Prefix(std::string_view text, size_t max_bytes);

}  // namespace tessera
