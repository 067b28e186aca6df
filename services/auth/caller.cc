#include "services/auth/caller.h"

namespace tessera::auth {

absl::string_view RoleName(v1::Role role) {
  switch (role) {
    case v1::ROLE_CUSTOMER: return "customer";
    case v1::ROLE_PROVIDER: return "provider";
    case v1::ROLE_ADMIN: return "admin";
    default: return "unspecified";
  }
}

v1::Role ParseRole(absl::string_view name) {
  if (name == "customer") return v1::ROLE_CUSTOMER;
  if (name == "provider") return v1::ROLE_PROVIDER;
  if (name == "admin") return v1::ROLE_ADMIN;
  return v1::ROLE_UNSPECIFIED;
}

}  // namespace tessera::auth
