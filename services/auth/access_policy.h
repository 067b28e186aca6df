// The authorization matrix: which roles may call which RPC, and how a call is scoped to the
// caller's own account. An admin may call everything for every account (the operator acts on
// behalf of anyone, as a cluster-admin does); customers and providers are limited to the RPCs
// listed for their role and, inside them, to their own account's jobs, workers and money.
//
//   if (absl::Status s = RequireAccount(caller, "account", request.account()); !s.ok()) …
//
// Scoping never tells a caller whether another account's resource exists: another customer's job
// is NOT_FOUND exactly as a job that was never submitted, and another account's name is
// PERMISSION_DENIED whether or not such an account exists.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/auth/caller.h"

namespace tessera::auth {

// Whether `role` may call `method` ("tessera.v1.JobService/SubmitJob"). Unknown methods: no one
// but an admin (fail closed).
bool RoleMayCall(v1::Role role, absl::string_view method);

// Every RPC the policy names, "service/method". A test checks that it names every RPC of the API.
std::vector<std::string> PolicyMethods();

// OK for an admin or when `account` is the caller's own; PERMISSION_DENIED otherwise.
absl::Status RequireAccount(const Caller& caller, absl::string_view field, absl::string_view account);

// A list filter on accounts: an admin's request stands (empty: everyone); anyone else sees only
// their own account, whether the filter is empty or names it. Naming another is PERMISSION_DENIED.
absl::StatusOr<std::string> ScopeAccountFilter(const Caller& caller, absl::string_view field, absl::string_view requested);

// Whether the caller may see a resource owned by `owner_account` (an admin sees all).
bool MaySee(const Caller& caller, absl::string_view owner_account);

}  // namespace tessera::auth
