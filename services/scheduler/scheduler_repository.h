// The scheduler's store on PostgreSQL: the SchedulerStore the host runs on (scheduler_store.h, which
// documents each call), and the worker registry calls of the API (register, list, retire). A call
// costs a fixed number of statements, whatever its batch's size. Lock order everywhere: workers rows,
// then jobs rows, then assignments, then ledger rows (no deadlocks by design).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/scheduler/scheduler_store.h"
#include "services/scheduler/trust_repository.h"
#include "services/scheduler/usage_ingest.h"
#include "services/store/database.h"

namespace tessera::scheduler_host {

class SchedulerRepository final : public SchedulerStore {
 public:
  explicit SchedulerRepository(store::Database& db) : db_(db), ingest_(db), trust_(db) {}

  void set_epoch(int64_t epoch) override { epoch_.store(epoch); }
  int64_t epoch() const { return epoch_.load(); }

  // `subnet` is where the request came from (SubnetOfPeer; empty: unknown). A machine whose GPU
  // UUIDs another worker already has is registered QUARANTINED; crowds are flagged (TrustLimits).
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& request, const std::string& subnet = "",
                                                            const TrustLimits& limits = {});
  // Workers newest first: of one provider (empty: all), one worker (0: any), with ids below
  // `before_worker_id`, at most `limit`.
  struct WorkerQuery {
    std::string provider_account;
    int64_t worker_id = 0;
    int64_t before_worker_id = INT64_MAX;
    uint32_t limit = UINT32_MAX;
  };
  absl::StatusOr<std::vector<v1::Worker>> ListWorkers(const WorkerQuery& query);

  // Retires a worker for good (RetireWorker): RETIRED, retired_at, an audit entry by `actor_key_id`,
  // in one transaction; its GPUs stop counting as registered. `provider_account_id` non-zero: only
  // that provider's worker (another's is NOT_FOUND). A live lease is FAILED_PRECONDITION. Retiring
  // again returns the worker unchanged.
  absl::StatusOr<v1::Worker> RetireWorker(int64_t worker_id, int64_t provider_account_id, const std::string& reason,
                                          const std::string& actor_key_id);
  // ---- SchedulerStore (scheduler_store.h) ----
  void ForgetLeases() override { ingest_.Forget(); }
  absl::StatusOr<WorkerIdentity> Identify(int64_t worker_id, int64_t provider_account_id) override;
  absl::StatusOr<AppliedHello> ApplyHello(const v1::Hello& hello, bool require_verification) override;
  absl::StatusOr<bool> DrainWorker(int64_t worker_id, const std::string& reason) override;
  absl::Status TouchWorkers(const std::vector<int64_t>& worker_ids) override;
  absl::StatusOr<std::vector<UsageOutcome>> IngestUsage(const std::vector<UsageIn>& usage) override;
  absl::StatusOr<AppliedEvents> ApplyStateEvents(const StateEvents& events) override;
  absl::Status RecordFraudSignals(const std::vector<FraudSignal>& signals) override;
  absl::StatusOr<RendezvousOut> RecordRendezvous(int64_t worker_id, const v1::RendezvousOffer& offer) override;
  absl::StatusOr<MarketSnapshot> LoadMarket() override;
  absl::StatusOr<std::vector<scheduler::JobRequirements>> LoadQueuedJobs(const std::vector<int64_t>& job_ids) override;
  absl::StatusOr<std::vector<int64_t>> QueuedJobIds() override;
  absl::StatusOr<NotifiedState> ReadNotifiedState(const std::vector<int64_t>& job_ids, const std::vector<int64_t>& worker_ids) override;
  absl::StatusOr<PersistedDecisions> PersistDecisions(const std::vector<scheduler::JobPlacement>& placements,
                                                      const std::vector<int64_t>& preempted_jobs) override;
  absl::Status UpdateWaitReasons(const std::vector<std::pair<int64_t, std::string>>& reasons) override;
  absl::StatusOr<std::vector<Requeued>> Requeue(const std::vector<std::pair<int64_t, uint32_t>>& assignments,
                                                const std::vector<int64_t>& offline_workers, const std::string& reason) override;
  absl::StatusOr<std::vector<int64_t>> CancelExpiredQueued(int limit) override;
  absl::StatusOr<std::vector<std::pair<int64_t, int32_t>>> RefreshReputations() override { return trust_.RefreshReputations(); }

 private:
  // A hello's first write: marks the worker ACTIVE, or DRAINING when its agent is `draining`,
  // replacing its policy when `policy` is given, and returns it with its live assignments. With
  // `require_verification`, a worker that never passed a GPU challenge, or whose re-check did not
  // finish, is PENDING_VERIFICATION instead. A `profile` that differs from the stored name, region or
  // ask replaces it, with an audit entry. A RETIRED worker is FAILED_PRECONDITION: it never connects
  // again.
  using ActivatedWorker = std::pair<WorkerRecord, std::vector<LiveAssignment>>;
  absl::StatusOr<ActivatedWorker> ActivateInTx(pqxx::work& tx, int64_t worker_id, const v1::ProviderPolicy* policy,
                                               bool require_verification, bool draining, const WorkerProfile& profile);
  absl::Status CheckEpoch(pqxx::work& tx) const;
  // Applies a hello's profile to the stored row `stored` (state, verified, name, region, ask).
  static void UpdateProfile(pqxx::work& tx, int64_t worker_id, const pqxx::row& stored, const WorkerProfile& profile);

  store::Database& db_;
  std::atomic<int64_t> epoch_{0};
  UsageIngest ingest_;
  TrustRepository trust_;
};

}  // namespace tessera::scheduler_host
