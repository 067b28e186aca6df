// Authenticates a call by the API key in its `authorization` metadata ("Bearer tsk_…") and checks
// the access policy for the method. Every RPC handler calls Authorize first (gRPC C++ server
// interceptors cannot fail a call, so the check lives at each handler's first line; a test calls
// every RPC with every role to prove none is missed).
//
//   TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.JobService/SubmitJob");
//   // … `caller` (a StatusOr<Caller>, OK here) names the key's role and account
//
// Key records are cached for `cache_ttl_ms` so that a call costs no database round trip; a
// revoked key therefore stops working within that time. The secret is checked on every call.
#pragma once

#include <grpcpp/grpcpp.h>

#include <mutex>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "services/auth/api_key_repository.h"
#include "services/auth/caller.h"
#include "services/common/clock.h"
#include "services/common/grpc_status.h"

// At a handler's first line: authenticates the call and checks the policy for `method`, declaring
// `caller`; on failure returns UNAUTHENTICATED or PERMISSION_DENIED from the handler.
#define TESSERA_AUTHORIZE(authenticator, context, caller, method)                                  \
  const absl::StatusOr<::tessera::auth::Caller> caller = (authenticator).Authorize(*(context), method); \
  if (!caller.ok()) return ::tessera::ToGrpcStatus(caller.status())

namespace tessera::auth {

class Authenticator {
 public:
  Authenticator(ApiKeyRepository& keys, const Clock& clock, int64_t cache_ttl_ms)
      : keys_(keys), clock_(clock), cache_ttl_ms_(cache_ttl_ms) {}

  // UNAUTHENTICATED for a missing, malformed, unknown, wrong or revoked key (one message for the
  // last three, so a prober learns nothing); PERMISSION_DENIED when the role may not call `method`.
  absl::StatusOr<Caller> Authorize(const grpc::ServerContextBase& context, absl::string_view method);
  absl::StatusOr<Caller> Authenticate(const grpc::ServerContextBase& context);

 private:
  static constexpr size_t kMaxCachedKeys = 65'536;
  struct Cached {
    ApiKeyRecord record;
    int64_t fetched_ms = 0;
  };
  absl::StatusOr<ApiKeyRecord> Lookup(const std::string& key_id);

  ApiKeyRepository& keys_;
  const Clock& clock_;
  const int64_t cache_ttl_ms_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera::auth
