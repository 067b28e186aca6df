#include "scheduler/matcher.h"

#include <algorithm>
#include <limits>
#include <tuple>

namespace tessera::scheduler {
namespace {

bool ServedBefore(const PendingJob& a, const PendingJob& b) {
  return std::tuple(a.priority, -a.bid_utok_per_gpu_hour, a.submitted_at_ms, a.job_id) <
         std::tuple(b.priority, -b.bid_utok_per_gpu_hour, b.submitted_at_ms, b.job_id);
}

uint32_t CountAccepted(const PendingJob& job, const WorkerOffer& worker) {
  uint32_t n = 0;
  for (const FreeGpu& gpu : worker.free_gpus) n += AcceptsModel(job.gpu_models, gpu.model) ? 1 : 0;
  return n;
}

// Explains why no worker could take the job, from the capacity that was free when it was
// considered.
std::string WaitReason(const PendingJob& job, const std::vector<WorkerOffer>& workers) {
  uint32_t matching_gpus = 0;
  uint32_t largest_fit = 0;
  int64_t lowest_ask_with_room = std::numeric_limits<int64_t>::max();
  uint32_t gpus_with_room = 0;
  for (const WorkerOffer& worker : workers) {
    const uint32_t accepted = CountAccepted(job, worker);
    matching_gpus += accepted;
    largest_fit = std::max(largest_fit, accepted);
    if (accepted >= job.gpu_count) {
      lowest_ask_with_room = std::min(lowest_ask_with_room, worker.ask_utok_per_gpu_hour);
      gpus_with_room += accepted;
    }
  }
  if (matching_gpus == 0) return "no free GPU of an accepted model";
  if (gpus_with_room == 0) {
    return "needs " + std::to_string(job.gpu_count) + " free GPUs on one worker; the largest free fit is " +
           std::to_string(largest_fit);
  }
  return "bid " + std::to_string(job.bid_utok_per_gpu_hour) + " below the lowest ask " +
         std::to_string(lowest_ask_with_room) + " of " + std::to_string(gpus_with_room) + " matching GPUs";
}

// Cheapest ask first; among equal asks the worker with fewer free GPUs (packing), then the lower id.
bool BetterHost(const WorkerOffer& a, const WorkerOffer& b) {
  return std::tuple(a.ask_utok_per_gpu_hour, a.free_gpus.size(), a.worker_id) <
         std::tuple(b.ask_utok_per_gpu_hour, b.free_gpus.size(), b.worker_id);
}

Placement Take(const PendingJob& job, WorkerOffer& worker) {
  Placement placement{.job_id = job.job_id,
                      .worker_id = worker.worker_id,
                      .gpu_indexes = {},
                      .price_utok_per_gpu_hour = worker.ask_utok_per_gpu_hour};
  std::vector<FreeGpu> remaining;
  for (FreeGpu& gpu : worker.free_gpus) {
    if (placement.gpu_indexes.size() < job.gpu_count && AcceptsModel(job.gpu_models, gpu.model)) {
      placement.gpu_indexes.push_back(gpu.index);
    } else {
      remaining.push_back(std::move(gpu));
    }
  }
  worker.free_gpus = std::move(remaining);
  return placement;
}

}  // namespace

bool AcceptsModel(const std::vector<std::string>& accepted, const std::string& model) {
  return accepted.empty() || std::find(accepted.begin(), accepted.end(), model) != accepted.end();
}

MatchResult Match(const MatchInput& input) {
  std::vector<const PendingJob*> order;
  order.reserve(input.jobs.size());
  for (const PendingJob& job : input.jobs) order.push_back(&job);
  std::sort(order.begin(), order.end(), [](const PendingJob* a, const PendingJob* b) { return ServedBefore(*a, *b); });

  std::vector<WorkerOffer> workers = input.workers;
  MatchResult result;
  for (const PendingJob* job : order) {
    WorkerOffer* best = nullptr;
    for (WorkerOffer& worker : workers) {
      if (worker.ask_utok_per_gpu_hour > job->bid_utok_per_gpu_hour) continue;
      if (CountAccepted(*job, worker) < job->gpu_count) continue;
      if (best == nullptr || BetterHost(worker, *best)) best = &worker;
    }
    if (best == nullptr) {
      result.waiting.push_back({.job_id = job->job_id, .reason = WaitReason(*job, workers)});
      continue;
    }
    result.placements.push_back(Take(*job, *best));
  }
  return result;
}

}  // namespace tessera::scheduler
