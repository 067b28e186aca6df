// The incremental scheduling core: the whole market (workers, their free GPUs, queued and running
// jobs) with indexes, so that a new job or a freed GPU is handled without rescanning everything.
// Pure and deterministic: no I/O, no clock (time is an argument), same calls → same decisions.
//
//   Market market(options);
//   market.UpsertWorker(spec);
//   Decisions d = market.AddJob(job, now_ms);     // placed at once if it fits, else queued
//   d = market.FinishJob(job_id, now_ms);         // its GPUs go to the best queued jobs
//   d = market.Tick(now_ms);                      // reservations, preemption, a full pass
//
// Rules (DESIGN.md "Market rules", issue 3):
//  - both sides' requirements hold: the job's (models, memory, compute capability, regions,
//    reputation, bid) and the provider's policy (minimum bid per model, maximum duration, allowed
//    and denied accounts, spot or not);
//  - price-time priority: ON_DEMAND before SPOT, higher bid first, then earlier submit;
//  - placement: lowest ask first, then higher reputation, then packing (the fuller worker);
//    a same_host gang uses GPUs of one model on one worker, a spread gang GPUs of one region;
//    pay-as-ask, never above the bid; all GPUs in one decision or none;
//  - bounded backfill: a gang job waiting past `reserve_after_ms` reserves a worker whose GPUs are
//    then held for it; smaller jobs only use other GPUs;
//  - preemption: an ON_DEMAND job that fits nowhere evicts SPOT jobs on one worker, the fewest
//    and then the least work lost.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "scheduler/market_types.h"

namespace tessera::scheduler {

class Market {
 public:
  explicit Market(MarketOptions options = {});

  // Adds a worker with all GPUs free, or updates an existing worker's ask, reputation and policy.
  void UpsertWorker(const WorkerSpec& spec);
  // A worker's reputation changed (the trust checks): later matching sees it. False when the market
  // does not hold the worker (nothing is added).
  bool SetReputation(int64_t worker_id, int32_t reputation);
  // Removes a worker; returns the jobs that ran on it. They leave the core; the host requeues them
  // (AddJob again) or fails them.
  std::vector<int64_t> RemoveWorker(int64_t worker_id);
  // A worker that is not schedulable (disconnected, draining, not yet back after a restart) keeps
  // its running jobs but gets no new ones. Workers start schedulable. Becoming schedulable again
  // offers its free GPUs to the queue.
  Decisions SetSchedulable(int64_t worker_id, bool schedulable, int64_t now_ms);

  // Queues a job and places it at once when it fits (higher-priority jobs already waiting cannot
  // use the free GPUs, or they would have been placed).
  Decisions AddJob(const JobRequirements& job, int64_t now_ms);
  // Recovery: a job that already holds these GPUs (from the store of record).
  bool RestoreRunning(const JobRequirements& job, const std::vector<PlacedGpu>& gpus, int64_t started_at_ms);
  // A running job ended: its GPUs are re-matched to the queue.
  Decisions FinishJob(int64_t job_id, int64_t now_ms);
  // A running job goes back to the queue (lease lost, preempted by the host).
  Decisions Requeue(int64_t job_id, int64_t now_ms);
  // Cancelled: removed wherever it is.
  Decisions RemoveJob(int64_t job_id, int64_t now_ms);
  // The customer extended the job (ExtendJob): providers' duration limits are checked against the
  // new one from its next placement on. Unknown jobs are ignored.
  void SetMaxDuration(int64_t job_id, int64_t max_duration_ms);
  // Periodic: reservations for long-waiting gang jobs, preemption for ON_DEMAND jobs, and a full
  // pass over the queue.
  Decisions Tick(int64_t now_ms);

  // Why a queued job is still waiting, in words; empty if it is not queued.
  std::string WhyWaiting(int64_t job_id) const;

  size_t queued_jobs() const { return queue_.size(); }
  // Every queued job, best first (for reconciliation with the store of record).
  std::vector<int64_t> QueuedJobIds() const;
  // Every job it holds, queued or running.
  std::vector<int64_t> JobIds() const;
  bool HasJob(int64_t job_id) const { return jobs_.contains(job_id); }
  // The job's requirements, null if the market does not hold it.
  const JobRequirements* FindJob(int64_t job_id) const {
    auto it = jobs_.find(job_id);
    return it == jobs_.end() ? nullptr : &it->second.req;
  }
  bool HasWorker(int64_t worker_id) const { return workers_.contains(worker_id); }
  // Known, holding no job on any GPU and reserved for none (a re-check of its hardware disturbs nothing).
  bool IsIdle(int64_t worker_id) const;
  // For tests and invariant checks: the job holding a GPU, 0 if free.
  int64_t HolderOf(int64_t worker_id, uint32_t index) const;

 private:
  using QueueKey = std::tuple<int, int64_t, int64_t, int64_t>;     // priority, -bid, submitted, id
  using IndexKey = std::tuple<int64_t, int32_t, uint32_t, int64_t>;  // ask, -reputation, free, worker
  using BucketKey = std::tuple<int, int, uint32_t>;                  // model, region, GPU count

  struct WorkerState {
    WorkerSpec spec;
    int region = 0;
    std::vector<int> gpu_model;   // model id per GPU index
    std::vector<int64_t> holder;  // job id per GPU index, 0 if free
    std::map<int, uint32_t> free_by_model;
    std::map<int, IndexKey> indexed;  // model → its key in index_, while listed
    int64_t reserved_for = 0;
    bool schedulable = true;
    std::set<int64_t> spot_jobs;
    std::vector<int> kinds;  // job kind ids it runs, sorted; empty: every kind
  };

  struct JobState {
    JobRequirements req;
    std::vector<int> models;   // accepted model ids; empty: any
    std::vector<int> regions;  // accepted region ids; empty: any
    int kind = -1;             // its job kind's id
    bool queued = true;
    std::vector<PlacedGpu> gpus;
    int64_t started_at_ms = 0;
    int64_t reserved_worker = 0;
  };

  int ModelId(const std::string& model);
  int RegionId(const std::string& region);
  int KindId(const std::string& kind);
  std::vector<int> KindIds(const std::vector<std::string>& kinds);
  static bool Runs(const WorkerState& w, const JobState& j);
  // The first of the job's requirements no known worker meets at all, in words; empty if none.
  std::string UnmetRequirement(const JobState& j) const;
  void EraseFromIndex(int model, int region, const IndexKey& key);
  void Reindex(WorkerState& w, int model);
  void Unindex(WorkerState& w);
  void ReindexAll(WorkerState& w);

  // Open to any job: schedulable and not held for a reservation (such workers are not indexed).
  static bool Open(const WorkerState& w) { return w.schedulable && w.reserved_for == 0; }
  bool PolicyAccepts(const WorkerState& w, const JobState& j) const;
  bool ModelCanMeet(const JobState& j, int model) const;
  bool GpuMeetsJob(const WorkerState& w, uint32_t index, const JobState& j) const;  // the job's side
  bool GpuFits(const WorkerState& w, uint32_t index, const JobState& j) const;      // and the provider's
  bool AcceptsModel(const JobState& j, int model) const;
  bool AcceptsRegion(const JobState& j, int region) const;
  uint32_t CountFittingFree(const WorkerState& w, int model, const JobState& j, uint32_t limit) const;
  std::vector<uint32_t> FittingFree(const WorkerState& w, int model, const JobState& j, uint32_t limit) const;

  bool TryPlace(JobState& j, Decisions& out);
  bool PlaceSameHost(JobState& j, Decisions& out);
  bool PlaceSpread(JobState& j, Decisions& out);
  uint32_t FreeInRegion(const JobState& j, int region) const;
  uint32_t AffordableFreeInRegion(const JobState& j, int region) const;
  bool PlaceOnWorker(JobState& j, WorkerState& w, Decisions& out);
  bool TryPreempt(JobState& j, int64_t now_ms, Decisions& out);
  void MaybeReserve(JobState& j, int64_t now_ms);

  void Take(JobState& j, std::vector<PlacedGpu> gpus, Decisions& out);
  std::vector<std::pair<int64_t, int>> Release(JobState& j);  // freed (worker, model)
  std::vector<BucketKey> BucketsOf(const JobState& j) const;
  void Enqueue(JobState& j);
  void Dequeue(JobState& j);
  void Rematch(const std::vector<std::pair<int64_t, int>>& freed, int64_t now_ms, Decisions& out);
  bool CouldUseFreed(const JobState& j, const std::vector<std::pair<int64_t, int>>& freed) const;
  void FullPass(int64_t now_ms, Decisions& out);

  const MarketOptions options_;
  std::unordered_map<std::string, int> model_ids_, region_ids_;
  std::vector<std::string> model_names_, region_names_;
  std::unordered_map<std::string, int> kind_ids_;
  std::vector<int> all_region_ids_;
  std::vector<uint64_t> model_max_memory_mib_;  // by model id, over every GPU ever seen
  std::vector<uint32_t> model_max_capability_;
  std::unordered_map<int64_t, WorkerState> workers_;
  std::unordered_map<int64_t, JobState> jobs_;
  // (model, region) → free-GPU count → workers with that many free GPUs of the model, cheapest
  // first. Reserved workers are not listed: their free GPUs are held.
  struct IndexCell {
    std::map<uint32_t, std::set<IndexKey>> levels;
    uint32_t free = 0;  // free GPUs over all levels
    // best_from[c]: the best key among levels with at least c free GPUs (ask = INT64_MAX if none),
    // so the usual same-host search is one look per cell.
    std::vector<IndexKey> best_from;
  };
  static void RecomputeBest(IndexCell& cell);
  IndexCell& Cell(int model, int region);
  const IndexCell* FindCell(int model, int region) const;
  std::vector<std::vector<IndexCell>> index_;  // [model][region], dense ids
  std::set<QueueKey> queue_;
  std::map<BucketKey, std::set<QueueKey>> buckets_;        // see BucketsOf
  std::set<int64_t> workers_with_spot_;
  uint32_t reservations_ = 0;
};

}  // namespace tessera::scheduler
