// The scheduler host's transactions: worker registration, loading what the matcher needs,
// persisting its decisions, and applying what workers report. Batch-shaped throughout: a call
// carries every event of one ingest round and costs a fixed number of statements, whatever its size.
// Lock order everywhere: jobs rows, then assignments, then ledger rows (no deadlocks by design).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/market_types.h"
#include "services/lifecycle/job_lifecycle.h"
#include "services/scheduler/hello_plan.h"
#include "services/scheduler/worker_record.h"
#include "services/scheduler/trust_repository.h"
#include "services/scheduler/usage_ingest.h"
#include "services/store/database.h"
#include "tessera/v1/workers.pb.h"
#include "services/store/notifications.h"

namespace tessera::scheduler_host {


struct LiveAssignment {
  int64_t job_id = 0;
  uint32_t attempt = 0;
  int64_t worker_id = 0;
  std::vector<uint32_t> gpu_indexes;
  bool running = false;  // the job is RUNNING (else ASSIGNED)
  v1::Assignment message;
  std::string account;  // the customer, for the job's requirements
  int64_t submitted_at_ms = 0;
};

// Everything the scheduling core holds, as PostgreSQL has it: the workers that may hold leases,
// every live assignment and every queued job.
struct MarketSnapshot {
  std::vector<WorkerRecord> workers;
  std::vector<LiveAssignment> live;
  std::vector<scheduler::JobRequirements> queued;
};

// A job's communicator id; `recipients` (RecordRendezvous only): the attempt's other live workers.
struct RendezvousOut {
  int64_t job_id = 0;
  uint32_t attempt = 0;
  std::string unique_id;
  std::vector<uint32_t> node_gpu_counts;  // in node_rank order
  std::vector<int64_t> recipients;
};



// What a hello may change of a worker's registration (empty or 0: unchanged).
struct WorkerProfile {
  std::string name;
  std::string region;
  int64_t ask_utok_per_gpu_hour = 0;
  std::vector<std::string> job_kinds;  // what its agent runs; empty: not said (every kind)
};

struct WorkerIdentity {
  int64_t provider_account_id = 0;
  std::string public_key;  // empty: registered before keys (its reports cannot be accepted)
};


struct StateEvents {
  std::vector<std::pair<int64_t, v1::JobStarted>> started;    // (worker_id, message)
  std::vector<std::pair<int64_t, v1::JobProgress>> progress;
  std::vector<std::pair<int64_t, v1::JobFinished>> finished;
};

// One ended lease of a requeued job (a spread job has one per worker).
// A lease ended and its job requeued, or FAILED with its attempts exhausted.
using Requeued = lifecycle::EndedLease;

// What one matching round wrote.
struct PersistedDecisions {
  std::vector<Requeued> preempted;      // their leases ended; the workers get a cancel
  std::vector<LiveAssignment> assigned;  // ready to send; a job no longer QUEUED is left out
};

// What a hello changed (SchedulerRepository::ApplyHello).
struct AppliedHello {
  WorkerRecord worker;
  std::vector<LiveAssignment> keep;       // live, and its agent runs them (resumed ones included)
  std::vector<LiveAssignment> resend;     // live, never started, and its agent never got them
  std::vector<Requeued> requeued;         // the runs its agent lost, and their leases elsewhere
  std::vector<RunKey> resumed;            // among `keep`: leases made live again
  std::vector<RunKey> not_live;           // runs its agent has without a live lease: to cancel there
  std::vector<RendezvousOut> rendezvous;  // of its live leases at node rank > 0 that have one
};

class SchedulerRepository {
 public:
  explicit SchedulerRepository(store::Database& db) : db_(db), ingest_(db) {}

  // The leadership epoch this process was elected with. Placements and requeues are written only
  // while the database still names this epoch (FAILED_PRECONDITION otherwise), so a deposed leader
  // that wakes up late cannot write.
  void set_epoch(int64_t epoch) { epoch_.store(epoch); }
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

  // Marks the worker ACTIVE (it passed hello), or DRAINING when its agent is `draining`, replacing
  // its policy when `policy` is given, and returns it with its live assignments. With
  // `require_verification`, a worker that never passed a GPU challenge, or whose re-check did not
  // finish, is PENDING_VERIFICATION instead.
  // A `profile` that differs from the stored name, region or ask replaces it, with an audit entry. A
  // RETIRED worker is FAILED_PRECONDITION: it never connects again.
  absl::StatusOr<std::pair<WorkerRecord, std::vector<LiveAssignment>>> ActivateWorker(int64_t worker_id,
                                                                                      const v1::ProviderPolicy* policy,
                                                                                      bool require_verification,
                                                                                      bool draining = false,
                                                                                      const WorkerProfile& profile = WorkerProfile());
  // A worker's hello, in one transaction: the worker activated as ActivateWorker does (with
  // `require_verification`), its live leases reconciled with what its agent says (hello_plan.h): the
  // runs it lost are requeued with their other leases, those it runs without a live lease resumed
  // where nothing took their place (the job RUNNING again on that same attempt, the lease its only
  // one, none of its GPUs leased anew), and the communicator ids it waits for read.
  absl::StatusOr<AppliedHello> ApplyHello(const v1::Hello& hello, bool require_verification);
  // Retires a worker for good (RetireWorker): RETIRED, retired_at, an audit entry by `actor_key_id`,
  // in one transaction; its GPUs stop counting as registered. `provider_account_id` non-zero: only
  // that provider's worker (another's is NOT_FOUND). A live lease is FAILED_PRECONDITION. Retiring
  // again returns the worker unchanged.
  absl::StatusOr<v1::Worker> RetireWorker(int64_t worker_id, int64_t provider_account_id, const std::string& reason,
                                          const std::string& actor_key_id);
  // An ACTIVE worker whose agent is draining becomes DRAINING (no new jobs), with its audit entry.
  // Returns whether it changed.
  absl::StatusOr<bool> DrainWorker(int64_t worker_id, const std::string& reason);
  // Who a hello's worker id is: its provider and public key. `provider_account_id` non-zero: the
  // stream's key is that provider's, and a worker of anyone else (or none) is PERMISSION_DENIED,
  // in the same words, so a stream can never speak for a machine its provider does not own.
  absl::StatusOr<WorkerIdentity> Identify(int64_t worker_id, int64_t provider_account_id);
  absl::Status RecordFraudSignals(const std::vector<FraudSignal>& signals);

  // Recovery: the whole market in one consistent snapshot. Workers are those that may hold leases:
  // ACTIVE or DRAINING, or with a LIVE assignment.
  absl::StatusOr<MarketSnapshot> LoadMarket();
  // The requirements of those of `job_ids` that are QUEUED.
  absl::StatusOr<std::vector<scheduler::JobRequirements>> LoadQueuedJobs(const std::vector<int64_t>& job_ids);
  absl::StatusOr<std::vector<int64_t>> QueuedJobIds();

  // What other processes tell the scheduler by NOTIFY (a customer's cancel or extension, an
  // operator's or a challenge's quarantine), read back for the jobs and workers it holds: a
  // notification sent while its LISTEN was not in place reached no one.
  struct NotifiedState {
    std::vector<store::JobCancelled> cancelled;  // leases a customer's cancel ended (worker 0: it was queued)
    std::vector<store::JobExtended> limits;      // each open job's live leases (worker 0: queued), with its limit
    std::vector<int64_t> quarantined;            // of the given workers
  };
  absl::StatusOr<NotifiedState> ReadNotifiedState(const std::vector<int64_t>& job_ids, const std::vector<int64_t>& worker_ids);

  // One matching round in one transaction: ends the preempted jobs' leases (requeued, the attempt
  // not counted against max_attempts), then writes the placements. A placement spans one worker.
  absl::StatusOr<PersistedDecisions> PersistDecisions(const std::vector<scheduler::JobPlacement>& placements,
                                                      const std::vector<int64_t>& preempted_jobs);
  absl::Status UpdateWaitReasons(const std::vector<std::pair<int64_t, std::string>>& reasons);

  // Stores the reports that pass the checks that need the store of record, in order: a live lease
  // of that worker, a seq after the lease's last (an identical resend is a duplicate, stored
  // already), at most the lease's wall time × GPUs in total, not dated in the future. The others
  // are refused, and those no honest worker sends become fraud signals, in the same transaction.
  // Signatures are checked before this (SchedulerHost, with the worker's key).
  absl::StatusOr<std::vector<UsageOutcome>> IngestUsage(const std::vector<UsageIn>& usage);
  // A new leadership term: what ingest remembers of leases is read again from the store.
  void ForgetLeases() { ingest_.Forget(); }
  // The offer of `worker_id`, which must hold the attempt's live node-rank-0 lease
  // (PERMISSION_DENIED otherwise). The first offer of an attempt is kept; a later one gets the kept
  // id back. Recipients: the attempt's other live workers.
  absl::StatusOr<RendezvousOut> RecordRendezvous(int64_t worker_id, const v1::RendezvousOffer& offer);
  // Applies started/progress/finished. Every finish is acknowledged (recorded now, or its lease had
  // already ended); `ended` lists the jobs that this call moved to a terminal state. A spread job
  // ends when one of its workers fails or the last one finishes.
  struct AppliedEvents {
    std::vector<int64_t> ended;
    // Leases ended because another worker of the same (spread) job failed: those workers get a cancel.
    std::vector<Requeued> cancelled;
  };
  absl::StatusOr<AppliedEvents> ApplyStateEvents(const StateEvents& events);


  // Ends the given live assignments, and the other leases of their jobs, and returns the jobs to the
  // queue (or FAILED when attempts are exhausted); one entry per ended lease. `offline_workers`
  // are also marked OFFLINE in the same transaction.
  absl::StatusOr<std::vector<Requeued>> Requeue(const std::vector<std::pair<int64_t, uint32_t>>& assignments,
                                                const std::vector<int64_t>& offline_workers, const std::string& reason);
  absl::Status TouchWorkers(const std::vector<int64_t>& worker_ids);
  // Cancels up to `limit` jobs that never started and are past their queue deadline, each with a
  // CANCELLED event naming the timeout and its last wait reason; settlement then releases their
  // escrow. Returns their ids, for the market to drop.
  absl::StatusOr<std::vector<int64_t>> CancelExpiredQueued(int limit);

 private:
  using ActivatedWorker = std::pair<WorkerRecord, std::vector<LiveAssignment>>;
  absl::StatusOr<ActivatedWorker> ActivateInTx(pqxx::work& tx, int64_t worker_id, const v1::ProviderPolicy* policy,
                                               bool require_verification, bool draining, const WorkerProfile& profile);
  absl::Status CheckEpoch(pqxx::work& tx) const;
  // Applies a hello's profile to the stored row `stored` (state, verified, name, region, ask).
  static void UpdateProfile(pqxx::work& tx, int64_t worker_id, const pqxx::row& stored, const WorkerProfile& profile);

  store::Database& db_;
  std::atomic<int64_t> epoch_{0};
  UsageIngest ingest_;
};

}  // namespace tessera::scheduler_host
