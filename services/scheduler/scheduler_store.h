// What the scheduler host reads and writes of the store of record, as one interface: the host
// receives it, PostgreSQL implements it in the product (SchedulerRepository), and the simulation
// can put its own behind it. Every call is one transaction of the store: it happens whole or not at
// all. The host's own decisions (ApplyHello, PersistDecisions, Requeue, CancelExpiredQueued) are
// refused once another scheduler holds the leadership epoch set here (a hello UNAVAILABLE, so that
// its agent reconnects to the leader; the rest FAILED_PRECONDITION); what workers report is stored
// whoever leads. Batch-shaped: a call carries every event of one ingest or scheduling round.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/market_types.h"
#include "services/lifecycle/ended_lease.h"
#include "services/scheduler/hello_plan.h"
#include "services/scheduler/usage_screen.h"
#include "services/scheduler/worker_record.h"
#include "services/store/notifications.h"
#include "tessera/v1/workers.pb.h"

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

// One ended lease of a requeued job (a spread job has one per worker), or of a FAILED one.
using Requeued = lifecycle::EndedLease;

// What one matching round wrote.
struct PersistedDecisions {
  std::vector<Requeued> preempted;      // their leases ended; the workers get a cancel
  std::vector<LiveAssignment> assigned;  // ready to send; a job no longer QUEUED is left out
};

// What a hello changed (SchedulerStore::ApplyHello).
struct AppliedHello {
  WorkerRecord worker;
  std::vector<LiveAssignment> keep;       // live, and its agent runs them (resumed ones included)
  std::vector<LiveAssignment> resend;     // live, never started, and its agent never got them
  std::vector<Requeued> requeued;         // the runs its agent lost, and their leases elsewhere
  std::vector<RunKey> resumed;            // among `keep`: leases made live again
  std::vector<RunKey> not_live;           // runs its agent has without a live lease: to cancel there
  std::vector<RendezvousOut> rendezvous;  // of its live leases at node rank > 0 that have one
};

// What other processes tell the scheduler by NOTIFY (a customer's cancel or extension, an
// operator's or a challenge's quarantine), read back for the jobs and workers it holds: a
// notification sent while its LISTEN was not in place reached no one.
struct NotifiedState {
  std::vector<store::JobCancelled> cancelled;  // leases a customer's cancel ended (worker 0: it was queued)
  std::vector<store::JobExtended> limits;      // each open job's live leases (worker 0: queued), with its limit
  std::vector<int64_t> quarantined;            // of the given workers
};

// What ApplyStateEvents did: the jobs it moved to a terminal state.
struct AppliedEvents {
  std::vector<int64_t> ended;
  // Leases ended because another worker of the same (spread) job failed: those workers get a cancel.
  std::vector<Requeued> cancelled;
};

class SchedulerStore {
 public:
  virtual ~SchedulerStore() = default;

  // The leadership epoch this process was elected with. Placements and requeues are written only
  // while the store still names this epoch, so a deposed leader that wakes up late cannot write.
  virtual void set_epoch(int64_t epoch) = 0;
  // A new leadership term: what ingest remembers of leases is read again from the store.
  virtual void ForgetLeases() = 0;

  // ---- Worker streams ----
  // Who a hello's worker id is: its provider and public key. `provider_account_id` non-zero: the
  // stream's key is that provider's, and a worker of anyone else (or none) is PERMISSION_DENIED,
  // in the same words, so a stream can never speak for a machine its provider does not own.
  virtual absl::StatusOr<WorkerIdentity> Identify(int64_t worker_id, int64_t provider_account_id) = 0;
  // A worker's hello: the worker ACTIVE (DRAINING when its agent drains; PENDING_VERIFICATION with
  // `require_verification` until it passes a GPU challenge), its policy and profile as the hello
  // gives them (an audit entry when they change; RETIRED is FAILED_PRECONDITION, QUARANTINED
  // PERMISSION_DENIED), and its live leases reconciled with what its agent says (hello_plan.h): the
  // runs it keeps are RUNNING (also one whose JobStarted was lost), the runs it lost are requeued
  // with their other leases, those it runs without a live lease resumed
  // where nothing took their place (the job RUNNING again on that same attempt, the lease its only
  // one, none of its GPUs leased anew), and the communicator ids it waits for read.
  virtual absl::StatusOr<AppliedHello> ApplyHello(const v1::Hello& hello, bool require_verification) = 0;
  // An ACTIVE worker whose agent is draining becomes DRAINING (no new jobs), with its audit entry.
  // Returns whether it changed.
  virtual absl::StatusOr<bool> DrainWorker(int64_t worker_id, const std::string& reason) = 0;
  // The connected workers were seen now.
  virtual absl::Status TouchWorkers(const std::vector<int64_t>& worker_ids) = 0;

  // ---- What workers report ----
  // Stores the reports that pass the checks that need the store of record, in order: a live lease
  // of that worker, a seq after the lease's last (an identical resend is a duplicate, stored
  // already), at most the lease's wall time × GPUs in total, not dated in the future. The others
  // are refused, and those no honest worker sends become fraud signals, in the same transaction.
  // Signatures are checked before this (SchedulerHost, with the worker's key).
  virtual absl::StatusOr<std::vector<UsageOutcome>> IngestUsage(const std::vector<UsageIn>& usage) = 0;
  // Applies started/progress/finished. Every finish is acknowledged (recorded now, or its lease had
  // already ended). A spread job ends when one of its workers fails or the last one finishes.
  virtual absl::StatusOr<AppliedEvents> ApplyStateEvents(const StateEvents& events) = 0;
  virtual absl::Status RecordFraudSignals(const std::vector<FraudSignal>& signals) = 0;
  // The offer of `worker_id`, which must hold the attempt's live node-rank-0 lease
  // (PERMISSION_DENIED otherwise). The first offer of an attempt is kept; a later one gets the kept
  // id back. Recipients: the attempt's other live workers.
  virtual absl::StatusOr<RendezvousOut> RecordRendezvous(int64_t worker_id, const v1::RendezvousOffer& offer) = 0;

  // ---- The market ----
  // Recovery: the whole market in one consistent snapshot. Workers are those that may hold leases:
  // ACTIVE or DRAINING, or with a LIVE assignment.
  virtual absl::StatusOr<MarketSnapshot> LoadMarket() = 0;
  // The requirements of those of `job_ids` that are QUEUED.
  virtual absl::StatusOr<std::vector<scheduler::JobRequirements>> LoadQueuedJobs(const std::vector<int64_t>& job_ids) = 0;
  virtual absl::StatusOr<std::vector<int64_t>> QueuedJobIds() = 0;
  virtual absl::StatusOr<NotifiedState> ReadNotifiedState(const std::vector<int64_t>& job_ids,
                                                          const std::vector<int64_t>& worker_ids) = 0;
  // One matching round: ends the preempted jobs' leases (requeued, the attempt not counted against
  // max_attempts), then writes the placements. A placement spans one worker.
  virtual absl::StatusOr<PersistedDecisions> PersistDecisions(const std::vector<scheduler::JobPlacement>& placements,
                                                              const std::vector<int64_t>& preempted_jobs) = 0;
  virtual absl::Status UpdateWaitReasons(const std::vector<std::pair<int64_t, std::string>>& reasons) = 0;
  // Ends the given live assignments, and the other leases of their jobs, and returns the jobs to the
  // queue (or FAILED when attempts are exhausted); one entry per ended lease. `offline_workers`
  // are also marked OFFLINE.
  virtual absl::StatusOr<std::vector<Requeued>> Requeue(const std::vector<std::pair<int64_t, uint32_t>>& assignments,
                                                        const std::vector<int64_t>& offline_workers, const std::string& reason) = 0;
  // Cancels up to `limit` jobs that never started and are past their queue deadline, each with a
  // CANCELLED event naming the timeout and its last wait reason. Returns their ids.
  virtual absl::StatusOr<std::vector<int64_t>> CancelExpiredQueued(int limit) = 0;
  // Recomputes reputations from the store's record; returns the workers whose score changed.
  virtual absl::StatusOr<std::vector<std::pair<int64_t, int32_t>>> RefreshReputations() = 0;
};

}  // namespace tessera::scheduler_host
