#include "services/scheduler/market_inputs.h"

#include "services/common/compute_capability.h"
#include "services/common/workloads.h"

namespace tessera::scheduler_host {

scheduler::JobRequirements JobRequirementsFrom(int64_t job_id, const std::string& account, const v1::JobSpec& spec,
                                               int64_t submitted_at_ms) {
  // The spec was validated at submit; an unparsable capability cannot get here, 0 is "any".
  const uint32_t capability =
      spec.min_compute_capability().empty() ? 0 : ParseComputeCapability("", spec.min_compute_capability()).value_or(0);
  return {.job_id = job_id,
          .account = account,
          .kind = std::string(MatchingKind(spec)),
          .gpu_count = spec.gpu_count(),
          .gpu_models = {spec.gpu_models().begin(), spec.gpu_models().end()},
          .min_memory_mib = spec.min_gpu_memory_mib(),
          .min_compute_capability = capability,
          .regions = {spec.regions().begin(), spec.regions().end()},
          .min_reputation = spec.min_reputation(),
          .same_host = spec.placement() != v1::GPU_PLACEMENT_SPREAD,
          .bid_utok_per_gpu_hour = spec.bid_utok_per_gpu_hour(),
          .max_duration_ms = spec.max_duration_ms(),
          .priority = spec.priority_class() == v1::PRIORITY_CLASS_SPOT ? scheduler::Priority::kSpot
                                                                       : scheduler::Priority::kOnDemand,
          .submitted_at_ms = submitted_at_ms,
          .needs_network = spec.has_container() && spec.container().network()};
}

scheduler::ProviderPolicy ProviderPolicyFrom(const v1::ProviderPolicy& policy) {
  return {.min_bid_by_model = {policy.min_bid_utok_per_gpu_hour().begin(), policy.min_bid_utok_per_gpu_hour().end()},
          .max_duration_ms = policy.max_job_duration_ms(),
          .allowed_accounts = {policy.allowed_accounts().begin(), policy.allowed_accounts().end()},
          .denied_accounts = {policy.denied_accounts().begin(), policy.denied_accounts().end()},
          .accepts_spot = !policy.refuse_spot(),
          .allows_network = policy.allow_job_network()};
}

scheduler::WorkerSpec WorkerSpecFrom(const WorkerRecord& worker) {
  scheduler::WorkerSpec spec{.worker_id = worker.worker_id, .region = worker.region, .reputation = worker.reputation,
                             .ask_utok_per_gpu_hour = worker.ask_utok_per_gpu_hour, .gpus = {},
                             .policy = ProviderPolicyFrom(worker.policy), .job_kinds = worker.job_kinds};
  // The core addresses a GPU by its position; the host keeps gpus ordered by index, dense from 0.
  for (const v1::Gpu& gpu : worker.gpus) {
    spec.gpus.push_back({.model = gpu.model(), .memory_mib = gpu.memory_mib(),
                         .compute_capability = ParseComputeCapability("", gpu.compute_capability()).value_or(0)});
  }
  return spec;
}

}  // namespace tessera::scheduler_host
