// The scheduling thread's loop: each round applies the events posted since the last one, expires
// silent workers' leases, ticks the market, commits the round's decisions to the store and only
// then sends them.
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "services/scheduler/host_messages.h"
#include "services/scheduler/scheduler_host.h"
#include <algorithm>
#include <chrono>

namespace tessera::scheduler_host {
namespace {


// A round's commit withdraws placements that did not take effect and persists what the market
// decided instead; this bounds the repetitions (a later round picks up the rest).
constexpr int kMaxCommitRepeats = 4;

}  // namespace

void SchedulerHost::SchedulingLoop() {
  const auto wake_every = std::chrono::milliseconds(std::clamp<int64_t>(options_.lease_timeout_ms / 8, 20, 250));
  while (true) {
    MarketEvents events;
    {
      std::unique_lock lock(events_mu_);
      events_cv_.wait_for(lock, wake_every, [&] { return !events_.empty() || stopping_; });
      if (stopping_) return;
      std::swap(events, events_);
    }
    RunRound(events);
  }
}

void SchedulerHost::RunRound(MarketEvents& events) {
  const int64_t now_ms = clock_.NowMs();
  const auto round_started = std::chrono::steady_clock::now();
  scheduler::Decisions decisions;
  if (market_stale_) {
    if (absl::Status s = Rebuild(decisions); !s.ok()) {
      spdlog::warn("rebuilding the market: {}", s.ToString());
      // The events are not lost: the rebuild reads them all from PostgreSQL, except hellos and
      // streams, which must be handled in any case.
      events.submitted.clear();
      events.finished.clear();
    } else {
      market_stale_ = false;
    }
  }
  if (market_stale_) {
    // Without a market only streams are looked after; the rest is in PostgreSQL for the rebuild.
    for (Inbound& in : events.hellos) in.session->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "scheduler is recovering; reconnect"));
    for (const store::JobCancelled& c : events.cancelled) SendCancel(c);
    for (const store::JobExtended& x : events.extended) SendExtension(x);
    if (events.read_back_notified) read_back_pending_ = true;  // once rebuilt
    return;
  }
  // Asked for, or left over from a round that could not do it (a rebuild, a failed read): then at
  // the periodic reconcile, so that an unreachable database is not asked again at once.
  if (events.read_back_notified) read_back_pending_ = true;
  if (read_back_pending_ && (events.read_back_notified || now_ms >= due_.reconcile_ms)) read_back_pending_ = !ReadBackNotified(events);
  // The queue is compared with the store before the market decides anything this round (an event
  // may place a job, and a placement may preempt): a decision not yet committed (a preempted job
  // back in the market's queue while the store still has it RUNNING) would look like a difference,
  // and the job would be dropped until the next reconcile. The simulation found this (issue 17).
  // The jobs the market lacks join after the events, which may drain or remove workers.
  std::optional<std::vector<int64_t>> store_queue;
  if (events.reconcile || now_ms >= due_.reconcile_ms) {
    store_queue = DropJobsNotQueued(decisions);
    due_.reconcile_ms = now_ms + options_.reconcile_interval_ms;
  }
  ApplyEvents(events, decisions);
  ExpireLeases(decisions);
  if (store_queue.has_value()) AddJobsQueued(*store_queue, decisions);
  const bool tick = now_ms >= due_.tick_ms;
  if (tick) {
    CancelExpiredQueued(now_ms, decisions);
    StartDueRechecks(now_ms, decisions);
    Merge(decisions, market_->Tick(now_ms));
    due_.tick_ms = now_ms + options_.tick_interval_ms;
  }
  // A market found inconsistent this round decides nothing; the next round rebuilds it.
  RoundReport round;
  if (!market_stale_) std::tie(round.placements, round.preemptions) = Commit(std::move(decisions));
  if (!market_stale_) {
    round.queued_jobs = market_->queued_jobs();
    round.latency_us = MicrosecondsSince(round_started);
    observer_.OnRound(round);
  }
  if (tick && !market_stale_) RefreshWaitReasons();
  if (now_ms >= due_.reputation_ms && !market_stale_) {
    due_.reputation_ms = now_ms + options_.reputation_interval_ms;
    RefreshReputations();
  }
  if (now_ms >= due_.touch_ms) {
    due_.touch_ms = now_ms + kTouchWorkersEveryMs;
    if (absl::Status s = repo_.TouchWorkers(registry_.ConnectedWorkers()); !s.ok()) spdlog::warn("{}", s.ToString());
  }
}

void SchedulerHost::ApplyEvents(MarketEvents& events, scheduler::Decisions& decisions) {
  const int64_t now_ms = clock_.NowMs();
  for (Inbound& in : events.hellos) HandleHello(in.session, in.message.hello(), decisions);
  for (int64_t worker_id : events.quarantined) {
    // No new jobs from now on; its stream ends (it cannot reconnect), so its leases expire and their
    // jobs run elsewhere.
    Merge(decisions, market_->SetSchedulable(worker_id, false, now_ms));
    if (auto session = registry_.SessionOf(worker_id)) {
      session->Close(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, absl::StrCat("worker ", worker_id, " is quarantined")));
    }
  }
  for (const auto& [session, reason] : events.draining) {
    // Its running jobs go on; it gets no new one. The state survives its reconnects (their hellos
    // say draining) and a scheduler restart (PostgreSQL has it). A drain from a stream that a newer
    // one replaced is stale: the newer hello said whether the agent drains.
    const int64_t worker_id = session->worker_id();
    if (registry_.SessionOf(worker_id) != session) continue;
    absl::StatusOr<bool> drained = repo_.DrainWorker(worker_id, reason);
    if (!drained.ok()) {
      spdlog::warn("worker {}: drain not recorded: {}", worker_id, drained.status().ToString());
      continue;
    }
    if (*drained) spdlog::info("worker {} is draining: {}", worker_id, reason.empty() ? "its agent asked" : reason);
    Merge(decisions, market_->SetSchedulable(worker_id, false, now_ms));
  }
  for (int64_t worker_id : events.disconnected) {
    // A newer stream may already have replaced the closed one.
    if (registry_.SessionOf(worker_id) == nullptr) {
      Merge(decisions, market_->SetSchedulable(worker_id, false, now_ms));
      recheck_at_ms_.erase(worker_id);
    }
  }
  for (const auto& [worker_id, state] : events.verified) {
    // Its hardware is what it claims: it joins the market (unless it went away meanwhile).
    if (registry_.SessionOf(worker_id) == nullptr || !market_->HasWorker(worker_id)) continue;
    Merge(decisions, market_->SetSchedulable(worker_id, state == v1::WORKER_STATE_ACTIVE, now_ms));
    if (state == v1::WORKER_STATE_ACTIVE) ScheduleRecheck(worker_id, now_ms);
  }
  for (const store::JobCancelled& c : events.cancelled) {
    SendCancel(c);
    Merge(decisions, market_->RemoveJob(c.job_id, now_ms));
  }
  for (const store::JobExtended& x : events.extended) {
    SendExtension(x);
    market_->SetMaxDuration(x.job_id, x.max_duration_ms);
  }
  for (int64_t job_id : events.finished) Merge(decisions, market_->FinishJob(job_id, now_ms));
  AddQueuedJobs(events.submitted, decisions);
}

bool SchedulerHost::ReadBackNotified(MarketEvents& events) {
  absl::StatusOr<NotifiedState> state = repo_.ReadNotifiedState(market_->JobIds(), registry_.ConnectedWorkers());
  if (!state.ok()) {
    spdlog::warn("reading back notified cancels, extensions and quarantines: {}; trying again at the next reconcile",
                 state.status().ToString());
    return false;
  }
  // Applying one twice is harmless (a worker ignores a cancel or an extension of a run it does not
  // have, the market one of a job it no longer holds), so a notification heard too is no matter.
  size_t missed = 0;
  events.cancelled.insert(events.cancelled.end(), state->cancelled.begin(), state->cancelled.end());
  missed += state->cancelled.size();
  for (const store::JobExtended& limit : state->limits) {
    const scheduler::JobRequirements* job = market_->FindJob(limit.job_id);
    if (job == nullptr || job->max_duration_ms == limit.max_duration_ms) continue;
    events.extended.push_back(limit);
    ++missed;
  }
  for (int64_t worker_id : state->quarantined) {
    events.quarantined.push_back(worker_id);
    ++missed;
  }
  if (missed > 0) spdlog::warn("{} cancels, extensions or quarantines were notified while not listening; applied now", missed);
  return true;
}

void SchedulerHost::SendExtension(const store::JobExtended& x) {
  if (x.worker_id == 0) return;  // not running: the limit travels with its next assignment
  if (auto session = registry_.SessionOf(x.worker_id)) session->Send(ExtendedMessage(x.job_id, x.attempt, x.max_duration_ms));
}

void SchedulerHost::SendCancel(const store::JobCancelled& c) {
  if (c.worker_id == 0) return;  // it was still queued
  if (auto session = registry_.SessionOf(c.worker_id)) session->Send(CancelMessage(c.job_id, c.attempt, "cancelled by the customer"));
}

void SchedulerHost::SendLeaseLost(const Requeued& r) {
  if (auto session = registry_.SessionOf(r.worker_id)) {
    session->Send(CancelMessage(r.job_id, r.attempt, "the job lost another of its workers; it is requeued"));
  }
}

void SchedulerHost::ExpireLeases(scheduler::Decisions& decisions) {
  const int64_t now_ms = clock_.NowMs();
  auto expired = registry_.TakeExpired(now_ms, options_.lease_timeout_ms);
  if (expired.empty()) return;
  std::vector<int64_t> ids;
  for (const auto& [id, session] : expired) ids.push_back(id);
  auto requeued = repo_.Requeue({}, ids, absl::StrCat("lease expired (worker silent for more than ", options_.lease_timeout_ms, " ms)"));
  if (!requeued.ok()) {
    spdlog::error("expiring leases: {}", requeued.status().ToString());
    for (int64_t id : ids) registry_.Track(id, now_ms - options_.lease_timeout_ms - 1);  // again next round
    return;
  }
  std::set<int64_t> gone(ids.begin(), ids.end());
  for (const Requeued& r : *requeued) {
    if (!gone.contains(r.worker_id)) SendLeaseLost(r);
  }
  for (const auto& [id, session] : expired) {
    // The market forgets the worker and its jobs; those requeued come back from PostgreSQL.
    (void)market_->RemoveWorker(id);
    if (session) session->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "lease expired"));
  }
  std::set<int64_t> back;
  for (const Requeued& r : *requeued) {
    if (!r.failed) back.insert(r.job_id);
  }
  spdlog::info("{} worker lease(s) expired; {} job(s) requeued", ids.size(), back.size());
  observer_.OnLeasesExpired(ids.size(), back.size());
  AddQueuedJobs({back.begin(), back.end()}, decisions);
}

void SchedulerHost::CancelExpiredQueued(int64_t now_ms, scheduler::Decisions& decisions) {
  absl::StatusOr<std::vector<int64_t>> cancelled = repo_.CancelExpiredQueued(256);
  if (!cancelled.ok()) {
    spdlog::warn("cancelling jobs past their queue timeout: {}", cancelled.status().ToString());
    return;
  }
  for (int64_t job_id : *cancelled) Merge(decisions, market_->RemoveJob(job_id, now_ms));
  if (!cancelled->empty()) spdlog::info("{} job(s) cancelled at their queue timeout", cancelled->size());
}

std::pair<size_t, size_t> SchedulerHost::Commit(scheduler::Decisions decisions) {
  size_t placed = 0, preempted = 0;
  for (int repeat = 0; repeat < kMaxCommitRepeats && !(decisions.placements.empty() && decisions.preempted.empty()); ++repeat) {
    // The market's last word per job: a placement superseded later in the round (the job was
    // preempted, removed or placed again) no longer holds its GPUs and is dropped.
    std::vector<scheduler::JobPlacement> placements;
    std::set<int64_t> seen;
    for (auto it = decisions.placements.rbegin(); it != decisions.placements.rend(); ++it) {
      if (!seen.insert(it->job_id).second) continue;
      bool holds = true;
      for (const scheduler::PlacedGpu& g : it->gpus) holds = holds && market_->HolderOf(g.worker_id, g.index) == it->job_id;
      if (holds) placements.push_back(std::move(*it));
    }
    std::reverse(placements.begin(), placements.end());
    absl::StatusOr<PersistedDecisions> persisted = repo_.PersistDecisions(placements, decisions.preempted);
    if (!persisted.ok()) {
      // Nothing was written or sent; PostgreSQL still has the truth, so the market is rebuilt from it.
      spdlog::warn("persisting {} placements: {}", placements.size(), persisted.status().ToString());
      market_stale_ = true;
      return {placed, preempted};
    }
    placed += persisted->assigned.size();
    preempted += persisted->preempted.size();
    for (const Requeued& r : persisted->preempted) {
      if (auto session = registry_.SessionOf(r.worker_id)) session->Send(CancelMessage(r.job_id, r.attempt, "preempted by an on-demand job"));
    }
    std::set<int64_t> assigned;
    for (const LiveAssignment& a : persisted->assigned) {
      assigned.insert(a.job_id);
      // No stream: the worker gets it in its next hello, or its lease expires and the job returns.
      if (auto session = registry_.SessionOf(a.worker_id)) session->Send(AssignmentMessage(a));
    }
    decisions = {};
    const int64_t now_ms = clock_.NowMs();
    for (const scheduler::JobPlacement& p : placements) {
      if (!assigned.contains(p.job_id)) Merge(decisions, market_->RemoveJob(p.job_id, now_ms));  // no longer QUEUED
    }
  }
  return {placed, preempted};
}

void SchedulerHost::RefreshWaitReasons() {
  const std::vector<int64_t> queued = market_->QueuedJobIds();
  const int64_t now_ms = clock_.NowMs();
  std::vector<std::pair<int64_t, std::string>> changed;
  const size_t n = std::min(options_.wait_reasons_per_tick, queued.size());
  for (size_t k = 0; k < n; ++k) {
    const int64_t id = queued[(wait_reason_cursor_ + k) % queued.size()];
    // A job that just arrived is usually placed within milliseconds: explain only real waits.
    const scheduler::JobRequirements* job = market_->FindJob(id);
    if (job == nullptr || now_ms - job->submitted_at_ms < options_.tick_interval_ms) continue;
    std::string reason = market_->WhyWaiting(id);
    std::string& known = wait_reasons_[id];
    if (known != reason) {
      known = reason;
      changed.emplace_back(id, std::move(reason));
    }
  }
  wait_reason_cursor_ = queued.empty() ? 0 : (wait_reason_cursor_ + n) % queued.size();
  if (wait_reasons_.size() > 2 * queued.size() + 1024) {
    const std::set<int64_t> still(queued.begin(), queued.end());
    std::erase_if(wait_reasons_, [&](const auto& kv) { return !still.contains(kv.first); });
  }
  if (absl::Status s = repo_.UpdateWaitReasons(changed); !s.ok()) spdlog::warn("wait reasons: {}", s.ToString());
}

}  // namespace tessera::scheduler_host
