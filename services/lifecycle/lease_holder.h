// Whether a provider's worker holds a job attempt's lease: what a worker's reads and writes of a
// job's data (its artifacts, its logs, its checkpoints) are checked against, in the caller's
// transaction. A stopped program still writes its last lines and its last checkpoint in its grace
// period, so a caller may accept a lease that ended within `ended_within`.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <pqxx/pqxx>

#include "absl/status/statusor.h"
#include "tessera/v1/artifacts.pb.h"
#include "tessera/v1/jobs.pb.h"

namespace tessera::lifecycle {

struct HeldLease {
  std::string account;     // the job's customer account
  v1::JobSpec spec;
  uint32_t node_rank = 0;  // which node of a spread job this worker is
};

// PERMISSION_DENIED naming the worker, job and attempt when the provider's worker holds no such
// lease (live, or ended within `ended_within`).
absl::StatusOr<HeldLease> LeaseHeldBy(pqxx::work& tx, int64_t provider_account_id, const v1::JobLease& lease,
                                      std::chrono::seconds ended_within = std::chrono::seconds(0));

}  // namespace tessera::lifecycle
