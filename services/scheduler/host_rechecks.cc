// Trust on the scheduling thread: reputations recomputed from the store, and the proof-of-GPU
// re-checks of connected workers when they are due and idle.
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "services/scheduler/host_messages.h"
#include "services/scheduler/scheduler_host.h"

namespace tessera::scheduler_host {

void SchedulerHost::RefreshReputations() {
  absl::StatusOr<std::vector<std::pair<int64_t, int32_t>>> changed = repo_.RefreshReputations();
  if (!changed.ok()) {
    spdlog::warn("reputation refresh: {}", changed.status().ToString());
    return;
  }
  for (const auto& [worker_id, reputation] : *changed) (void)market_->SetReputation(worker_id, reputation);
}

void SchedulerHost::ScheduleRecheck(int64_t worker_id, int64_t now_ms) {
  if (!options_.verifier.enabled || options_.verifier.recheck_mean_interval_ms <= 0) return;
  // Exponential gaps: when the next re-check comes cannot be told from when the last one came.
  const double gap_ms = -std::log1p(-random_.Unit()) * static_cast<double>(options_.verifier.recheck_mean_interval_ms);
  recheck_at_ms_[worker_id] = now_ms + static_cast<int64_t>(gap_ms);
}

void SchedulerHost::StartDueRechecks(int64_t now_ms, scheduler::Decisions& decisions) {
  for (auto it = recheck_at_ms_.begin(); it != recheck_at_ms_.end();) {
    const auto [worker_id, due_ms] = *it;
    std::shared_ptr<WorkerSession> session = registry_.SessionOf(worker_id);
    if (session == nullptr) {
      it = recheck_at_ms_.erase(it);
      continue;
    }
    // A busy worker is re-checked once it is idle: a challenge never competes with a customer's job.
    if (due_ms > now_ms || !market_->IsIdle(worker_id)) {
      ++it;
      continue;
    }
    Merge(decisions, market_->SetSchedulable(worker_id, false, now_ms));
    verifier_->Challenge(session, ChallengeReason::kRecheck);
    it = recheck_at_ms_.erase(it);
  }
}

}  // namespace tessera::scheduler_host
