// The simulation's store of record behind the product's scheduler host: the SchedulerStore
// interface over the in-memory Store (sim_model.h). Each call is applied whole, as one transaction
// of the PostgreSQL repository (SchedulerRepository with services/lifecycle) would be, by the same
// rules: the hello plan (hello_plan.h), the usage checks (usage_screen.h), the job state machine's
// moves. What only the store can see that breaks an invariant (an honest worker flagged as a
// fraud) is reported to the world.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "services/common/clock.h"
#include "services/scheduler/scheduler_store.h"
#include "tests/sim/sim_model.h"

namespace tessera::sim {

class SimSchedulerStore final : public scheduler_host::SchedulerStore {
 public:
  // `note` adds a line to the trace; `violation` reports a broken invariant. `bug` is the store
  // defect to inject, if any (kStaleLease, kNoRequeueOnHello).
  SimSchedulerStore(Store& store, const Clock& clock, InjectedBug bug, std::function<void(const std::string&)> note,
                    std::function<void(const std::string&)> violation);

  void set_epoch(int64_t epoch) override { store_.epoch = epoch; }
  void ForgetLeases() override {}  // nothing is cached
  absl::StatusOr<scheduler_host::WorkerIdentity> Identify(int64_t worker_id, int64_t provider_account_id) override;
  absl::StatusOr<scheduler_host::AppliedHello> ApplyHello(const v1::Hello& hello, bool require_verification) override;
  absl::StatusOr<bool> DrainWorker(int64_t worker_id, const std::string& reason) override;
  absl::Status TouchWorkers(const std::vector<int64_t>& worker_ids) override;
  absl::StatusOr<std::vector<scheduler_host::UsageOutcome>> IngestUsage(const std::vector<scheduler_host::UsageIn>& usage) override;
  absl::StatusOr<scheduler_host::AppliedEvents> ApplyStateEvents(const scheduler_host::StateEvents& events) override;
  absl::Status RecordFraudSignals(const std::vector<scheduler_host::FraudSignal>& signals) override;
  absl::StatusOr<scheduler_host::RendezvousOut> RecordRendezvous(int64_t worker_id, const v1::RendezvousOffer& offer) override;
  absl::StatusOr<scheduler_host::MarketSnapshot> LoadMarket() override;
  absl::StatusOr<std::vector<scheduler::JobRequirements>> LoadQueuedJobs(const std::vector<int64_t>& job_ids) override;
  absl::StatusOr<std::vector<int64_t>> QueuedJobIds() override;
  absl::StatusOr<scheduler_host::NotifiedState> ReadNotifiedState(const std::vector<int64_t>& job_ids,
                                                                  const std::vector<int64_t>& worker_ids) override;
  absl::StatusOr<scheduler_host::PersistedDecisions> PersistDecisions(const std::vector<scheduler::JobPlacement>& placements,
                                                                      const std::vector<int64_t>& preempted_jobs) override;
  absl::Status UpdateWaitReasons(const std::vector<std::pair<int64_t, std::string>>& reasons) override;
  absl::StatusOr<std::vector<scheduler_host::Requeued>> Requeue(const std::vector<std::pair<int64_t, uint32_t>>& assignments,
                                                                const std::vector<int64_t>& offline_workers,
                                                                const std::string& reason) override;
  absl::StatusOr<std::vector<int64_t>> CancelExpiredQueued(int limit) override;
  absl::StatusOr<std::vector<std::pair<int64_t, int32_t>>> RefreshReputations() override;

  int64_t reports_refused() const { return reports_refused_; }

 private:
  // lifecycle::EndLeases: the live leases of the offline workers, of the attempts named and of the
  // preempted jobs end, with every other live lease of the same attempts; their jobs go back to the
  // queue (FAILED with no attempt left, unless preempted). One entry per ended lease of a job moved.
  std::vector<scheduler_host::Requeued> EndLeases(const std::vector<int64_t>& offline_workers,
                                                  const std::vector<scheduler_host::RunKey>& attempts,
                                                  const std::vector<int64_t>& preempted_jobs, const std::string& reason);
  // lifecycle::ResumeLeases: a run the worker kept through a blip longer than its lease is live again
  // where nothing took its place. Returns the runs resumed.
  std::vector<scheduler_host::RunKey> ResumeLeases(int64_t worker_id, const std::vector<scheduler_host::RunKey>& runs);
  scheduler_host::LiveAssignment AssignmentOf(const scheduler_host::LeaseKey& key, const StoreLease& lease) const;
  std::vector<scheduler_host::LiveAssignment> LiveAssignmentsOf(int64_t worker_id) const;

  Store& store_;
  const Clock& clock_;
  const InjectedBug bug_;
  const std::function<void(const std::string&)> note_, violation_;
  // Reports refused as dated in the future (a worker's clock jumped): resent after a later seq was
  // stored, such a report is refused again as not after it, a consequence of the same clock.
  std::set<scheduler_host::ReportKey> future_dated_;
  int64_t reports_refused_ = 0;
};

}  // namespace tessera::sim
