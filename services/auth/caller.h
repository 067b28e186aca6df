// Who is calling: what an authenticated API key says about its holder. Every RPC handler gets one
// from the Authenticator before it touches data, and scopes what it reads and writes by it.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "tessera/v1/admin.pb.h"

namespace tessera::auth {

struct Caller {
  std::string key_id;
  v1::Role role = v1::ROLE_UNSPECIFIED;
  int64_t account_id = 0;  // 0 for an admin
  std::string account;     // empty for an admin

  bool admin() const { return role == v1::ROLE_ADMIN; }
};

// "customer", "provider", "admin": the store's and the CLI's spelling.
absl::string_view RoleName(v1::Role role);
// UNSPECIFIED for anything else.
v1::Role ParseRole(absl::string_view name);

}  // namespace tessera::auth
