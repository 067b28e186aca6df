// What a worker may register with, say in its hello, and ask of the jobs it takes (its provider's
// policy): validated at the edge, before anything is written, by the services that take them.
// Every error is INVALID_ARGUMENT naming the field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "scheduler/market_types.h"
#include "tessera/v1/workers.pb.h"

namespace tessera {

absl::Status ValidateRegisterWorker(const v1::RegisterWorkerRequest& request);
// The name, region and ask a worker registers with or a hello changes (empty or 0 in a hello:
// unchanged). `prefix` names the message in errors ("hello.").
absl::Status ValidateWorkerProfile(absl::string_view prefix, const std::string& name, const std::string& region, int64_t ask,
                                   const std::vector<std::string>& job_kinds = {});
// Also checked on a hello that carries a new policy.
absl::Status ValidateProviderPolicy(const v1::ProviderPolicy& policy);

// Whether the provider takes a job of this limit: the one rule the market applies when it places a
// job and ExtendJob when it raises a running job's limit (scheduler::AllowsDuration).
bool PolicyAllowsDuration(const v1::ProviderPolicy& policy, int64_t max_duration_ms);

}  // namespace tessera
