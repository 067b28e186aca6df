// The market kept equal to the store of record: queued jobs loaded as NOTIFY announces them, the
// queue reconciled periodically, and the whole market rebuilt at start and after a failed write.
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "services/scheduler/host_messages.h"
#include "services/scheduler/scheduler_host.h"
#include "services/scheduler/market_inputs.h"

namespace tessera::scheduler_host {
namespace {

std::vector<scheduler::PlacedGpu> PlacedGpus(const LiveAssignment& a) {
  std::vector<scheduler::PlacedGpu> gpus;
  for (uint32_t index : a.gpu_indexes) {
    gpus.push_back({.worker_id = a.worker_id, .index = index, .price_utok_per_gpu_hour = a.message.price_utok_per_gpu_hour()});
  }
  return gpus;
}

scheduler::JobRequirements RequirementsOf(const LiveAssignment& a) {
  return JobRequirementsFrom(a.job_id, a.account, a.message.spec(), a.submitted_at_ms);
}

}  // namespace

size_t SchedulerHost::AddQueuedJobs(const std::vector<int64_t>& job_ids, scheduler::Decisions& decisions) {
  std::vector<int64_t> unknown;
  for (int64_t id : job_ids) {
    if (!market_->HasJob(id)) unknown.push_back(id);
  }
  if (unknown.empty()) return 0;
  auto jobs = repo_.LoadQueuedJobs(unknown);
  if (!jobs.ok()) {
    // The periodic reconcile finds them in PostgreSQL: asking again at once would only spin this
    // loop against a database that cannot answer.
    spdlog::warn("loading queued jobs: {}; they are placed after the next reconcile", jobs.status().ToString());
    return 0;
  }
  const int64_t now_ms = clock_.NowMs();
  for (const scheduler::JobRequirements& job : *jobs) Merge(decisions, market_->AddJob(job, now_ms));
  return jobs->size();
}

std::optional<std::vector<int64_t>> SchedulerHost::DropJobsNotQueued(scheduler::Decisions& decisions) {
  auto ids = repo_.QueuedJobIds();
  if (!ids.ok()) {
    spdlog::warn("reconciling the queue: {}", ids.status().ToString());
    return std::nullopt;
  }
  const std::set<int64_t> queued(ids->begin(), ids->end());
  const int64_t now_ms = clock_.NowMs();
  size_t dropped = 0;
  for (int64_t id : market_->QueuedJobIds()) {
    if (!queued.contains(id)) {
      Merge(decisions, market_->RemoveJob(id, now_ms));
      ++dropped;
    }
  }
  if (dropped > 0) spdlog::info("queue reconciled with PostgreSQL: {} dropped", dropped);
  return std::move(*ids);
}

void SchedulerHost::AddJobsQueued(const std::vector<int64_t>& store_queue, scheduler::Decisions& decisions) {
  if (const size_t added = AddQueuedJobs(store_queue, decisions); added > 0) {
    spdlog::info("queue reconciled with PostgreSQL: {} added", added);
  }
}

absl::Status SchedulerHost::Rebuild(scheduler::Decisions& decisions) {
  absl::StatusOr<MarketSnapshot> snapshot = repo_.LoadMarket();
  if (!snapshot.ok()) return snapshot.status();
  market_ = std::make_unique<scheduler::Market>(options_.market);
  decisions = {};
  const int64_t now_ms = clock_.NowMs();
  for (const WorkerRecord& w : snapshot->workers) {
    market_->UpsertWorker(WorkerSpecFrom(w));
    (void)market_->SetSchedulable(w.worker_id, false, now_ms);
    registry_.Track(w.worker_id, now_ms);
  }
  // A job's leases (one per worker it spans) restore together.
  std::map<int64_t, std::vector<const LiveAssignment*>> by_job;
  for (const LiveAssignment& a : snapshot->live) by_job[a.job_id].push_back(&a);
  for (const auto& [job_id, leases] : by_job) {
    std::vector<scheduler::PlacedGpu> gpus;
    for (const LiveAssignment* a : leases) {
      for (const scheduler::PlacedGpu& g : PlacedGpus(*a)) gpus.push_back(g);
    }
    if (!market_->RestoreRunning(RequirementsOf(*leases.front()), gpus, now_ms)) {
      spdlog::error("job {}: its live lease names GPUs that are missing or held twice; left out of the market", job_id);
    }
  }
  for (const scheduler::JobRequirements& job : snapshot->queued) (void)market_->AddJob(job, now_ms);
  for (const WorkerRecord& w : snapshot->workers) {
    if (w.state == v1::WORKER_STATE_ACTIVE && registry_.SessionOf(w.worker_id) != nullptr) {
      Merge(decisions, market_->SetSchedulable(w.worker_id, true, now_ms));
    }
  }
  spdlog::info("market rebuilt from PostgreSQL: {} workers, {} running jobs, {} queued", snapshot->workers.size(),
               by_job.size(), market_->queued_jobs());
  return absl::OkStatus();
}

}  // namespace tessera::scheduler_host
