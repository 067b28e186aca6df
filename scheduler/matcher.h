// The naive, first-version matcher, kept as the baseline the benchmarks measure the incremental core
// (scheduler/market.h) against: given the queued jobs and the free GPUs of the live workers, decide
// which jobs start where, scanning everything every round. Pure and deterministic.
//
//   MatchInput in{.jobs = queued, .workers = offers};
//   MatchResult out = Match(in);
//   for (const Placement& p : out.placements) persist_then_push(p);
//
// First version (DESIGN.md "Market rules"): price-time priority (ON_DEMAND before SPOT, higher bid
// first, then earlier submit), all GPUs of a job on one worker (gang: all or nothing), the cheapest
// feasible ask wins, ties go to the fuller worker (packing keeps whole machines free), pay-as-ask.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::scheduler {

struct FreeGpu {
  uint32_t index = 0;
  std::string model;
};

// A live worker and the GPUs it has free right now.
struct WorkerOffer {
  int64_t worker_id = 0;
  int64_t ask_utok_per_gpu_hour = 0;
  std::vector<FreeGpu> free_gpus;
};

enum class Priority { kOnDemand = 0, kSpot = 1 };

struct PendingJob {
  int64_t job_id = 0;
  uint32_t gpu_count = 0;
  // Empty: any model.
  std::vector<std::string> gpu_models;
  int64_t bid_utok_per_gpu_hour = 0;
  Priority priority = Priority::kOnDemand;
  int64_t submitted_at_ms = 0;
};

struct Placement {
  int64_t job_id = 0;
  int64_t worker_id = 0;
  std::vector<uint32_t> gpu_indexes;
  int64_t price_utok_per_gpu_hour = 0;
};

// A job that stays queued this round, and why, in words a customer understands.
struct Waiting {
  int64_t job_id = 0;
  std::string reason;
};

struct MatchInput {
  std::vector<PendingJob> jobs;
  std::vector<WorkerOffer> workers;
};

struct MatchResult {
  std::vector<Placement> placements;
  std::vector<Waiting> waiting;
};

// Orders jobs by price-time priority and places each on the cheapest feasible worker.
MatchResult Match(const MatchInput& input);

// True when `model` is acceptable to a job that lists `accepted` (an empty list accepts any).
bool AcceptsModel(const std::vector<std::string>& accepted, const std::string& model);

}  // namespace tessera::scheduler
