// API keys: "tsk_<key_id>_<secret>", where key_id (16 hex) names the key's row and secret (64 hex,
// 32 random bytes) proves possession. The store keeps only SHA-256(secret); a presented key is
// checked by a constant-time comparison of hashes, so a timing side channel tells nothing.
//
//   GeneratedApiKey key = GenerateApiKey();          // key.text goes to the user once
//   absl::StatusOr<ParsedApiKey> parsed = ParseApiKey("tsk_…");
//   bool ok = SecretMatches(stored_sha256, parsed->secret);
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"

namespace tessera::auth {

struct ParsedApiKey {
  std::string key_id;  // 16 lowercase hex
  std::string secret;  // 64 lowercase hex
};

struct GeneratedApiKey {
  std::string key_id;
  std::string text;           // what the user sends: tsk_<key_id>_<secret>
  std::string secret_sha256;  // 32 raw bytes, what the store keeps
};

GeneratedApiKey GenerateApiKey();

// INVALID_ARGUMENT-free by design: a malformed key is UNAUTHENTICATED, with a message that names
// the expected form and never echoes the presented secret.
absl::StatusOr<ParsedApiKey> ParseApiKey(absl::string_view text);

// SHA-256 of the secret's text, 32 raw bytes.
std::string SecretSha256(absl::string_view secret);

// Constant-time: compares SHA-256(secret) with the stored hash.
bool SecretMatches(absl::string_view stored_sha256, absl::string_view secret);

bool IsKeyId(absl::string_view key_id);

}  // namespace tessera::auth
