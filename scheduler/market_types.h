// The vocabulary of the scheduling core: what a worker offers and will accept (provider policy),
// what a job requires, and the decisions the core takes. Plain data, no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "scheduler/matcher.h"  // Priority

namespace tessera::scheduler {

struct GpuSpec {
  std::string model;               // "H100", "A100", …
  uint64_t memory_mib = 0;
  uint32_t compute_capability = 0;  // major × 10 + minor: 90 for 9.0
};

// What a provider requires of the jobs its worker takes (two-sided matching).
struct ProviderPolicy {
  std::map<std::string, int64_t> min_bid_by_model;  // µT per GPU-hour; a model not listed has none
  int64_t max_duration_ms = 0;                       // 0: any
  std::vector<std::string> allowed_accounts;         // empty: every account
  std::vector<std::string> denied_accounts;
  bool accepts_spot = true;
  bool allows_network = false;  // container jobs that ask for the network
};

// A provider whose jobs may last at most `limit_ms` (0: any) takes a job of `max_duration_ms`: the
// one rule for placing a job and for extending a running one.
inline bool AllowsDuration(int64_t limit_ms, int64_t max_duration_ms) { return limit_ms <= 0 || max_duration_ms <= limit_ms; }

struct WorkerSpec {
  int64_t worker_id = 0;
  std::string region;
  int32_t reputation = 0;  // higher is better
  int64_t ask_utok_per_gpu_hour = 0;
  std::vector<GpuSpec> gpus;  // the GPU at position i has index i
  ProviderPolicy policy;
  std::vector<std::string> job_kinds;  // the job kinds its agent runs; empty: every kind
};

struct JobRequirements {
  int64_t job_id = 0;
  std::string account;
  std::string kind;  // JobSpec.kind: only workers that run it take the job
  uint32_t gpu_count = 1;
  std::vector<std::string> gpu_models;  // empty: any
  uint64_t min_memory_mib = 0;
  uint32_t min_compute_capability = 0;
  std::vector<std::string> regions;  // empty: any
  int32_t min_reputation = 0;
  // All GPUs on one worker (NCCL over NVLink/PCIe); otherwise spread over workers of one region.
  bool same_host = true;
  int64_t bid_utok_per_gpu_hour = 0;
  int64_t max_duration_ms = 0;
  Priority priority = Priority::kOnDemand;
  int64_t submitted_at_ms = 0;
  bool needs_network = false;  // a container job that asks for outbound network
};

struct PlacedGpu {
  int64_t worker_id = 0;
  uint32_t index = 0;
  int64_t price_utok_per_gpu_hour = 0;  // the worker's ask, never above the bid
};

struct JobPlacement {
  int64_t job_id = 0;
  std::vector<PlacedGpu> gpus;
};

struct Decisions {
  std::vector<JobPlacement> placements;
  // SPOT jobs evicted to make room for ON_DEMAND ones; the host requeues them (billed only for
  // reported usage). They are back in the core's queue already.
  std::vector<int64_t> preempted;
};

// Appends `from` to `into`, in order.
inline void Merge(Decisions& into, Decisions from) {
  for (auto& p : from.placements) into.placements.push_back(std::move(p));
  into.preempted.insert(into.preempted.end(), from.preempted.begin(), from.preempted.end());
}

struct MarketOptions {
  // A gang job waiting longer than this reserves a worker: its free GPUs are held for the job
  // and smaller jobs may only use other GPUs (bounded backfill).
  int64_t reserve_after_ms = 60'000;
  uint32_t reserve_min_gpus = 2;
  uint32_t max_reservations = 64;
};

}  // namespace tessera::scheduler
