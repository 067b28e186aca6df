// Translates the API's view of jobs and workers (tessera.v1 messages, as stored in PostgreSQL) into
// the scheduling core's plain types.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "scheduler/market_types.h"
#include "services/scheduler/worker_record.h"
#include "tessera/v1/jobs.pb.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::scheduler_host {

scheduler::JobRequirements JobRequirementsFrom(int64_t job_id, const std::string& account, const v1::JobSpec& spec,
                                               int64_t submitted_at_ms);

scheduler::ProviderPolicy ProviderPolicyFrom(const v1::ProviderPolicy& policy);

scheduler::WorkerSpec WorkerSpecFrom(const WorkerRecord& worker);

}  // namespace tessera::scheduler_host
