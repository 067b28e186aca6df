#include "services/worker/workload_factory.h"

#include "absl/strings/str_cat.h"
#include "services/common/workloads.h"
#include "services/worker/kernel_workload.h"

namespace tessera::worker {

absl::StatusOr<std::unique_ptr<Workload>> MakeWorkload(const v1::Assignment& assignment, WorkloadEnvironment environment) {
  if (assignment.spec().workload_case() == v1::JobSpec::WORKLOAD_NOT_SET) {
    return absl::InvalidArgumentError(absl::StrCat("the assignment names no workload this agent runs (kind '",
                                                   assignment.spec().kind(), "')"));
  }
  if (assignment.spec().has_container()) {
    if (environment.containers == nullptr) return absl::FailedPreconditionError("this worker runs no container jobs (its sandbox is off)");
    return std::make_unique<ContainerWorkload>(assignment, *environment.containers);
  }
  return std::make_unique<KernelWorkload>(assignment, environment.backend, environment.clock, environment.communicators);
}

std::vector<std::string> WorkloadKindsOn(const kernels::ComputeBackend& backend, bool runs_containers, bool runs_images) {
  std::vector<std::string> kinds;
  for (std::string_view kind : kWorkloadKinds) {
    if (kind == "allreduce_bench" && !backend.HasCollectives()) continue;  // NCCL only
    // Only where the sandbox works (BwrapSandbox::Probe): elsewhere such a job waits with the
    // reason "no worker runs job kind 'container'" rather than failing on this machine.
    if (kind == "container" && !runs_containers) continue;
    kinds.emplace_back(kind);
  }
  if (runs_containers && runs_images) kinds.emplace_back(kOciImageKind);
  return kinds;
}

}  // namespace tessera::worker
