#include "services/auth/api_key.h"

#include <sodium.h>

#include <algorithm>

#include "absl/strings/match.h"

namespace tessera::auth {
namespace {

constexpr absl::string_view kPrefix = "tsk_";
constexpr size_t kKeyIdHex = 16;
constexpr size_t kSecretHex = 64;

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  std::string hex(2 * bytes + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
  hex.pop_back();
  return hex;
}

bool IsLowerHex(absl::string_view s, size_t length) {
  return s.size() == length && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

bool IsKeyId(absl::string_view key_id) { return IsLowerHex(key_id, kKeyIdHex); }

GeneratedApiKey GenerateApiKey() {
  GeneratedApiKey key;
  key.key_id = RandomHex(kKeyIdHex / 2);
  const std::string secret = RandomHex(kSecretHex / 2);
  key.text = std::string(kPrefix) + key.key_id + "_" + secret;
  key.secret_sha256 = SecretSha256(secret);
  return key;
}

absl::StatusOr<ParsedApiKey> ParseApiKey(absl::string_view text) {
  const size_t expected = kPrefix.size() + kKeyIdHex + 1 + kSecretHex;
  if (text.size() != expected || !absl::StartsWith(text, kPrefix) || text[kPrefix.size() + kKeyIdHex] != '_') {
    return absl::UnauthenticatedError("malformed API key: expected tsk_<16 hex>_<64 hex>");
  }
  ParsedApiKey parsed{.key_id = std::string(text.substr(kPrefix.size(), kKeyIdHex)),
                      .secret = std::string(text.substr(kPrefix.size() + kKeyIdHex + 1))};
  if (!IsLowerHex(parsed.key_id, kKeyIdHex) || !IsLowerHex(parsed.secret, kSecretHex)) {
    return absl::UnauthenticatedError("malformed API key: expected tsk_<16 hex>_<64 hex>");
  }
  return parsed;
}

std::string SecretSha256(absl::string_view secret) {
  std::string digest(crypto_hash_sha256_BYTES, '\0');
  crypto_hash_sha256(reinterpret_cast<unsigned char*>(digest.data()), reinterpret_cast<const unsigned char*>(secret.data()),
                     secret.size());
  return digest;
}

bool SecretMatches(absl::string_view stored_sha256, absl::string_view secret) {
  const std::string presented = SecretSha256(secret);
  if (stored_sha256.size() != presented.size()) return false;
  return sodium_memcmp(stored_sha256.data(), presented.data(), presented.size()) == 0;
}

}  // namespace tessera::auth
