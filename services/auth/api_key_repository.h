// API keys in PostgreSQL: issue, look up, list, revoke, and the server's bootstrap admin key. Each
// issue and revoke writes its audit_log row in the same transaction.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/auth/caller.h"
#include "services/store/database.h"
#include "tessera/v1/admin.pb.h"

namespace tessera::auth {

struct ApiKeyRecord {
  Caller caller;               // who the key's holder is
  std::string secret_sha256;   // 32 raw bytes
  bool revoked = false;
};

class ApiKeyRepository {
 public:
  explicit ApiKeyRepository(store::Database& db) : db_(db) {}

  // NOT_FOUND when no key has this id.
  absl::StatusOr<ApiKeyRecord> Find(const std::string& key_id);
  // `actor_key_id` is the admin key that asks.
  absl::StatusOr<v1::CreateApiKeyResponse> Create(const v1::CreateApiKeyRequest& request, const std::string& actor_key_id);
  absl::StatusOr<v1::ListApiKeysResponse> List(const v1::ListApiKeysRequest& request);
  absl::StatusOr<v1::ApiKey> Revoke(const std::string& key_id, const std::string& actor_key_id);

  // When no active admin key exists, issues one and hands its text to `deliver` (which writes it
  // where the operator finds it) before the transaction commits: a failed delivery issues nothing.
  // Servers sharing a database serialize on an advisory lock, so only one issues. Returns whether
  // a key was issued.
  absl::StatusOr<bool> EnsureAdminKey(const std::function<absl::Status(const std::string& key_text)>& deliver);

 private:
  store::Database& db_;
};

}  // namespace tessera::auth
