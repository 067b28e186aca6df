#include "services/auth/authenticator.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/auth/access_policy.h"
#include "services/auth/api_key.h"

namespace tessera::auth {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

absl::Status Rejected() { return absl::UnauthenticatedError("invalid or revoked API key"); }

}  // namespace

absl::StatusOr<Caller> Authenticator::Authorize(const grpc::ServerContextBase& context, absl::string_view method) {
  absl::StatusOr<Caller> caller = Authenticate(context);
  if (!caller.ok()) return caller;
  if (!RoleMayCall(caller->role, method)) {
    return absl::PermissionDeniedError(absl::StrCat("a ", RoleName(caller->role), " key may not call ", method));
  }
  return caller;
}

absl::StatusOr<Caller> Authenticator::Authenticate(const grpc::ServerContextBase& context) {
  const auto& metadata = context.client_metadata();
  const auto found = metadata.find("authorization");
  if (found == metadata.end()) {
    return absl::UnauthenticatedError("missing API key: send metadata 'authorization: Bearer tsk_…' (tessera --api-key)");
  }
  const absl::string_view value(found->second.data(), found->second.size());
  if (!absl::StartsWith(value, kBearer)) return absl::UnauthenticatedError("the authorization metadata must be 'Bearer tsk_…'");
  absl::StatusOr<ParsedApiKey> parsed = ParseApiKey(value.substr(kBearer.size()));
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<ApiKeyRecord> record = Lookup(parsed->key_id);
  if (absl::IsNotFound(record.status())) return Rejected();
  if (!record.ok()) return absl::UnavailableError(absl::StrCat("cannot check the API key: ", record.status().message()));
  if (record->revoked || !SecretMatches(record->secret_sha256, parsed->secret)) return Rejected();
  return record->caller;
}

absl::StatusOr<ApiKeyRecord> Authenticator::Lookup(const std::string& key_id) {
  const int64_t now_ms = clock_.NowMs();
  {
    std::lock_guard lock(mu_);
    if (auto it = cache_.find(key_id); it != cache_.end() && now_ms - it->second.fetched_ms < cache_ttl_ms_) return it->second.record;
  }
  absl::StatusOr<ApiKeyRecord> record = keys_.Find(key_id);
  if (!record.ok()) return record;
  std::lock_guard lock(mu_);
  if (cache_.size() >= kMaxCachedKeys) cache_.clear();  // bounded; the next calls refill it
  cache_[key_id] = Cached{.record = *record, .fetched_ms = now_ms};
  return record;
}

}  // namespace tessera::auth
