// What the scheduler host sends down a worker's stream, built in one place.
#pragma once

#include <cstdint>
#include <string>

#include "services/scheduler/scheduler_store.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::scheduler_host {

v1::ServerMessage CancelMessage(int64_t job_id, uint32_t attempt, const std::string& reason);
// The job's limit in force (ExtendJob raised it, or a reconnect restates it).
v1::ServerMessage ExtendedMessage(int64_t job_id, uint32_t attempt, int64_t max_duration_ms);
v1::ServerMessage RendezvousMessage(const RendezvousOut& r);
v1::ServerMessage AssignmentMessage(const LiveAssignment& a);

}  // namespace tessera::scheduler_host
