// Which Workload an assignment gets, and which workloads this machine offers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/compute_backend.h"
#include "services/common/clock.h"
#include "services/worker/container_workload.h"
#include "services/worker/rendezvous.h"
#include "services/worker/workload.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::worker {

// What a workload may use on this machine.
struct WorkloadEnvironment {
  kernels::ComputeBackend& backend;
  const Clock& clock;
  // The communicator of a job spread over several workers.
  CommunicatorSource& communicators;
  // What container jobs get; null where the agent runs none (no sandbox on this machine).
  const ContainerHost* containers = nullptr;
};

// The workload an assignment names; INVALID_ARGUMENT when it names none (an assignment from a newer
// scheduler). Whether this machine can run it is the backend's to say (WorkloadKindsOn keeps the
// scheduler from asking).
absl::StatusOr<std::unique_ptr<Workload>> MakeWorkload(const v1::Assignment& assignment, WorkloadEnvironment environment);

// The workloads (JobSpec.kind names) an agent on `backend` runs (`container` only where it has a
// working sandbox): what its hello offers, so that the
// scheduler never leases this machine a job it would fail.
std::vector<std::string> WorkloadKindsOn(const kernels::ComputeBackend& backend, bool runs_containers, bool runs_images = false);

}  // namespace tessera::worker
