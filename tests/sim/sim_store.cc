#include "tests/sim/sim_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "scheduler/node_leases.h"
#include "services/scheduler/hello_plan.h"

namespace tessera::sim {

using scheduler_host::LeaseKey;
using scheduler_host::LiveAssignment;
using scheduler_host::Requeued;
using scheduler_host::RunKey;

SimSchedulerStore::SimSchedulerStore(Store& store, const Clock& clock, InjectedBug bug, std::function<void(const std::string&)> note,
                                     std::function<void(const std::string&)> violation)
    : store_(store), clock_(clock), bug_(bug), note_(std::move(note)), violation_(std::move(violation)) {}

LiveAssignment SimSchedulerStore::AssignmentOf(const LeaseKey& key, const StoreLease& lease) const {
  const auto& [job_id, attempt, worker_id] = key;
  const StoreJob& job = store_.jobs.at(job_id);
  LiveAssignment a{.job_id = job_id, .attempt = attempt, .worker_id = worker_id, .gpu_indexes = lease.gpus,
                   .running = job.state == JobState::kRunning, .message = {}, .account = job.req.account,
                   .submitted_at_ms = job.req.submitted_at_ms};
  a.message.set_job_id(job_id);
  a.message.set_attempt(attempt);
  *a.message.mutable_spec() = job.spec;
  for (uint32_t g : lease.gpus) a.message.add_gpu_indexes(g);
  a.message.set_price_utok_per_gpu_hour(lease.price);
  a.message.set_node_rank(lease.node_rank);
  for (int64_t node : lease.nodes) a.message.add_node_worker_ids(node);
  return a;
}

std::vector<LiveAssignment> SimSchedulerStore::LiveAssignmentsOf(int64_t worker_id) const {
  std::vector<LiveAssignment> out;
  for (const auto& [key, lease] : store_.leases) {
    if (lease.live && std::get<2>(key) == worker_id) out.push_back(AssignmentOf(key, lease));
  }
  return out;
}

absl::StatusOr<std::vector<scheduler_host::UsageOutcome>> SimSchedulerStore::IngestUsage(const std::vector<scheduler_host::UsageIn>& usage) {
  std::vector<scheduler_host::UsageOutcome> outcomes;
  const int64_t now_ms = clock_.NowMs();
  for (const scheduler_host::UsageIn& in : usage) {
    const LeaseKey key = scheduler_host::LeaseKeyOf(in);
    const scheduler_host::ReportKey report_key = scheduler_host::ReportKeyOf(in);
    auto lease_it = store_.leases.find(key);
    scheduler_host::IngestLease lease;
    if (lease_it != store_.leases.end()) {
      lease = {.exists = true, .created_at_ms = lease_it->second.created_at_ms,
               .gpus = static_cast<int64_t>(lease_it->second.gpus.size()), .totals = lease_it->second.ingest};
    }
    std::map<scheduler_host::ReportKey, scheduler_host::ReportContent> stored;
    if (auto r = store_.reports.find(report_key); r != store_.reports.end()) stored.emplace(report_key, r->second.content);
    std::string reason;
    scheduler_host::FraudSignal signal;
    const scheduler_host::Verdict verdict = ScreenReport(in, lease, lease.totals, now_ms, stored, {}, reason, signal);
    bool accepted = verdict == scheduler_host::Verdict::kDuplicate;
    if (verdict == scheduler_host::Verdict::kNew) {
      if (lease_it->second.live) {
        lease_it->second.ingest.Add(in.report);
        store_.reports[report_key] = {.content = {in.report.signature(), in.report.gpu_ms()}, .measured_at_ms = in.report.measured_at_ms()};
        store_.unsettled.insert(report_key);
        accepted = true;
      } else {
        reason = "the lease has ended";
      }
    }
    // Every simulated worker is honest, and the faults it meets (crashes, partitions, duplicates,
    // delays, reordering) must not make it look like fraud. Only a clock jump may: a report dated
    // over 60 s ahead is FUTURE_DATED by design, as a worker whose clock runs ahead is not trusted
    // (and that report, resent once a later one was stored, comes after it).
    if (signal.kind == "FUTURE_DATED") future_dated_.insert(report_key);
    const bool clock = signal.kind == "FUTURE_DATED" || (signal.kind == "REPLAYED_REPORT" && future_dated_.contains(report_key));
    if (!signal.kind.empty() && !clock) {
      violation_(absl::StrCat("honest worker ", in.worker_id, " flagged ", signal.kind, " for job ", in.report.job_id(), "/",
                              in.report.attempt(), " seq ", in.report.seq(), ": ", reason));
    }
    if (!accepted) {
      ++reports_refused_;
      note_(absl::StrCat("usage job ", in.report.job_id(), "/", in.report.attempt(), " seq ", in.report.seq(), " from worker ", in.worker_id,
                         " refused: ", reason, signal.kind.empty() ? "" : " [" + signal.kind + "]"));
    }
    outcomes.push_back({.job_id = in.report.job_id(), .attempt = in.report.attempt(), .seq = in.report.seq(), .stored = accepted,
                        .reason = accepted ? "" : reason});
  }
  return outcomes;
}

absl::StatusOr<scheduler_host::AppliedEvents> SimSchedulerStore::ApplyStateEvents(const scheduler_host::StateEvents& events) {
  for (const auto& [worker_id, m] : events.started) {
    auto it = store_.leases.find({m.job_id(), m.attempt(), worker_id});
    if (it == store_.leases.end() || !it->second.live) continue;
    StoreJob& job = store_.jobs.at(m.job_id());
    if (job.state == JobState::kAssigned && job.attempt == m.attempt()) job.state = JobState::kRunning;
  }
  scheduler_host::AppliedEvents applied;
  for (const auto& [worker_id, m] : events.finished) {
    auto it = store_.leases.find({m.job_id(), m.attempt(), worker_id});
    if (it == store_.leases.end() || !it->second.live) continue;  // ended already (cancel, expiry): nothing changes
    it->second.live = false;
    StoreJob& job = store_.jobs.at(m.job_id());
    if (job.attempt != m.attempt() || Terminal(job.state) || job.state == JobState::kQueued) continue;
    if (!m.succeeded()) {
      // The job's other workers stop too.
      for (auto other = store_.leases.lower_bound({m.job_id(), m.attempt(), 0});
           other != store_.leases.end() && std::get<0>(other->first) == m.job_id() && std::get<1>(other->first) == m.attempt(); ++other) {
        if (!other->second.live) continue;
        other->second.live = false;
        applied.cancelled.push_back({.job_id = m.job_id(), .attempt = m.attempt(), .worker_id = std::get<2>(other->first), .failed = true});
      }
      job.state = JobState::kFailed;
    } else if (store_.LiveLeasesOf(m.job_id(), m.attempt()).empty()) {
      job.state = JobState::kSucceeded;
    } else {
      continue;  // a spread job ends with its last worker
    }
    applied.ended.push_back(m.job_id());
    note_(absl::StrCat("job ", m.job_id(), " ", StateName(job.state), " on worker ", worker_id));
  }
  return applied;
}

absl::Status SimSchedulerStore::RecordFraudSignals(const std::vector<scheduler_host::FraudSignal>& signals) {
  // The host refuses at the edge only what no honest worker sends (bad signatures).
  for (const scheduler_host::FraudSignal& s : signals) {
    violation_(absl::StrCat("honest worker ", s.worker_id, " flagged ", s.kind, " for job ", s.job_id, "/", s.attempt, ": ", s.evidence));
  }
  return absl::OkStatus();
}

absl::StatusOr<scheduler_host::MarketSnapshot> SimSchedulerStore::LoadMarket() {
  scheduler_host::MarketSnapshot snapshot;
  std::set<int64_t> leased;
  for (const auto& [key, lease] : store_.leases) {
    if (!lease.live) continue;
    leased.insert(std::get<2>(key));
    snapshot.live.push_back(AssignmentOf(key, lease));
  }
  for (const auto& [id, worker] : store_.workers) {
    const v1::WorkerState state = worker.record.state;
    if (state == v1::WORKER_STATE_ACTIVE || state == v1::WORKER_STATE_DRAINING || leased.contains(id)) {
      snapshot.workers.push_back(worker.record);
    }
  }
  for (const auto& [id, job] : store_.jobs) {
    if (job.state == JobState::kQueued) snapshot.queued.push_back(job.req);
  }
  return snapshot;
}

absl::StatusOr<std::vector<scheduler::JobRequirements>> SimSchedulerStore::LoadQueuedJobs(const std::vector<int64_t>& job_ids) {
  const std::set<int64_t> wanted(job_ids.begin(), job_ids.end());
  std::vector<scheduler::JobRequirements> jobs;
  for (int64_t id : wanted) {
    auto it = store_.jobs.find(id);
    if (it != store_.jobs.end() && it->second.state == JobState::kQueued) jobs.push_back(it->second.req);
  }
  return jobs;
}

absl::StatusOr<std::vector<int64_t>> SimSchedulerStore::QueuedJobIds() {
  std::vector<int64_t> ids;
  for (const auto& [id, job] : store_.jobs) {
    if (job.state == JobState::kQueued) ids.push_back(id);
  }
  return ids;
}

absl::StatusOr<scheduler_host::NotifiedState> SimSchedulerStore::ReadNotifiedState(const std::vector<int64_t>& job_ids,
                                                                                   const std::vector<int64_t>& /*worker_ids*/) {
  // No simulated worker is ever quarantined: only cancels and limits are read back.
  scheduler_host::NotifiedState out;
  for (int64_t id : std::set<int64_t>(job_ids.begin(), job_ids.end())) {
    auto it = store_.jobs.find(id);
    if (it == store_.jobs.end()) continue;
    const StoreJob& job = it->second;
    const bool open = job.state == JobState::kQueued || job.state == JobState::kAssigned || job.state == JobState::kRunning;
    if (job.state != JobState::kCancelled && !open) continue;
    std::vector<int64_t> workers;
    for (auto l = store_.leases.lower_bound({id, job.attempt, 0});
         l != store_.leases.end() && std::get<0>(l->first) == id && std::get<1>(l->first) == job.attempt; ++l) {
      if (open ? l->second.live : l->second.cancelled) workers.push_back(std::get<2>(l->first));
    }
    if (workers.empty()) workers.push_back(0);
    for (int64_t worker_id : workers) {
      if (open) {
        out.limits.push_back({.job_id = id, .attempt = job.attempt, .worker_id = worker_id, .max_duration_ms = job.req.max_duration_ms});
      } else {
        out.cancelled.push_back({.job_id = id, .attempt = job.attempt, .worker_id = worker_id});
      }
    }
  }
  return out;
}

absl::StatusOr<scheduler_host::PersistedDecisions> SimSchedulerStore::PersistDecisions(
    const std::vector<scheduler::JobPlacement>& placements, const std::vector<int64_t>& preempted_jobs) {
  scheduler_host::PersistedDecisions out;
  if (!preempted_jobs.empty()) out.preempted = EndLeases({}, {}, preempted_jobs, "preempted by an on-demand job");
  const int64_t now_ms = clock_.NowMs();
  for (const scheduler::JobPlacement& p : placements) {
    StoreJob& job = store_.jobs.at(p.job_id);
    if (job.state != JobState::kQueued) continue;  // no longer QUEUED: left out, the host drops it from its market
    job.attempt += 1;
    job.state = JobState::kAssigned;
    // A lease per worker, ranked in the order the market chose them.
    const std::vector<scheduler::NodeLease> leases = scheduler::NodeLeases(p);
    std::vector<int64_t> nodes;
    for (const scheduler::NodeLease& n : leases) nodes.push_back(n.worker_id);
    for (size_t rank = 0; rank < leases.size(); ++rank) {
      const int64_t worker_id = leases[rank].worker_id;
      StoreLease lease{.gpus = leases[rank].gpu_indexes, .price = leases[rank].price_utok_per_gpu_hour, .created_at_ms = now_ms,
                       .node_rank = static_cast<uint32_t>(rank), .nodes = nodes};
      lease.money = {.price = lease.price, .gpus = static_cast<int64_t>(lease.gpus.size()), .earnings_ledger_id = EarningsOf(worker_id)};
      const LeaseKey key{p.job_id, job.attempt, worker_id};
      store_.leases[key] = lease;
      out.assigned.push_back(AssignmentOf(key, lease));
      note_(absl::StrCat("job ", p.job_id, " attempt ", job.attempt, " → worker ", worker_id, " GPUs ", lease.gpus.size(), " at ", lease.price));
    }
  }
  return out;
}

absl::Status SimSchedulerStore::UpdateWaitReasons(const std::vector<std::pair<int64_t, std::string>>& reasons) {
  for (const auto& [job_id, reason] : reasons) {
    auto it = store_.jobs.find(job_id);
    if (it != store_.jobs.end() && it->second.state == JobState::kQueued) it->second.wait_reason = reason;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Requeued>> SimSchedulerStore::Requeue(const std::vector<std::pair<int64_t, uint32_t>>& assignments,
                                                                 const std::vector<int64_t>& offline_workers, const std::string& reason) {
  for (int64_t worker_id : offline_workers) {
    auto it = store_.workers.find(worker_id);
    v1::WorkerState& state = it->second.record.state;
    if (state == v1::WORKER_STATE_ACTIVE || state == v1::WORKER_STATE_DRAINING) state = v1::WORKER_STATE_OFFLINE;
  }
  if (bug_ == InjectedBug::kStaleLease) {
    // The defect: the jobs go back to the queue, but their leases are left live.
    std::vector<Requeued> out;
    const std::set<int64_t> offline(offline_workers.begin(), offline_workers.end());
    for (const auto& [key, lease] : store_.leases) {
      const auto& [job_id, attempt, worker_id] = key;
      StoreJob& job = store_.jobs.at(job_id);
      if (!lease.live || !offline.contains(worker_id) || job.attempt != attempt || Terminal(job.state) || job.state == JobState::kQueued) continue;
      job.state = JobState::kQueued;
      out.push_back({.job_id = job_id, .attempt = attempt, .worker_id = worker_id, .failed = false});
    }
    return out;
  }
  return EndLeases(offline_workers, assignments, {}, reason);
}

std::vector<Requeued> SimSchedulerStore::EndLeases(const std::vector<int64_t>& offline_workers, const std::vector<RunKey>& attempts,
                                                   const std::vector<int64_t>& preempted_jobs, const std::string& reason) {
  const std::set<int64_t> offline(offline_workers.begin(), offline_workers.end());
  const std::set<RunKey> named(attempts.begin(), attempts.end());
  const std::set<int64_t> preempted(preempted_jobs.begin(), preempted_jobs.end());
  std::set<RunKey> targets;
  for (const auto& [key, lease] : store_.leases) {
    const auto& [job_id, attempt, worker_id] = key;
    if (lease.live && (offline.contains(worker_id) || preempted.contains(job_id) || named.contains({job_id, attempt}))) {
      targets.insert({job_id, attempt});
    }
  }
  std::vector<Requeued> out;
  for (const auto& [job_id, attempt] : targets) {
    std::vector<int64_t> ended;
    for (auto it = store_.leases.lower_bound({job_id, attempt, 0});
         it != store_.leases.end() && std::get<0>(it->first) == job_id && std::get<1>(it->first) == attempt; ++it) {
      if (!it->second.live) continue;
      it->second.live = false;
      ended.push_back(std::get<2>(it->first));
    }
    StoreJob& job = store_.jobs.at(job_id);
    if (job.attempt != attempt || (job.state != JobState::kAssigned && job.state != JobState::kRunning)) continue;
    const bool failed = job.attempt >= job.max_attempts && !preempted.contains(job_id);
    job.state = failed ? JobState::kFailed : JobState::kQueued;
    for (int64_t worker_id : ended) out.push_back({.job_id = job_id, .attempt = attempt, .worker_id = worker_id, .failed = failed});
    note_(absl::StrCat("job ", job_id, " attempt ", attempt, " lost (", reason, "): ", StateName(job.state)));
  }
  return out;
}

absl::StatusOr<std::vector<int64_t>> SimSchedulerStore::CancelExpiredQueued(int limit) {
  const int64_t now_ms = clock_.NowMs();
  std::vector<int64_t> cancelled;
  for (auto& [id, job] : store_.jobs) {
    if (static_cast<int>(cancelled.size()) >= limit) break;
    const int64_t timeout_ms = job.spec.queue_timeout_ms();
    if (job.state != JobState::kQueued || job.attempt != 0 || timeout_ms <= 0 || now_ms < job.req.submitted_at_ms + timeout_ms) continue;
    job.state = JobState::kCancelled;
    cancelled.push_back(id);
    note_(absl::StrCat("job ", id, " cancelled: queue timeout: not started within ", timeout_ms, " ms",
                       job.wait_reason.empty() ? "" : " (" + job.wait_reason + ")"));
  }
  return cancelled;
}

absl::StatusOr<std::vector<std::pair<int64_t, int32_t>>> SimSchedulerStore::RefreshReputations() {
  return std::vector<std::pair<int64_t, int32_t>>{};  // reputations are fixed in the simulation
}

}  // namespace tessera::sim
