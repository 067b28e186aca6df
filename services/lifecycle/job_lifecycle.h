// The one door to job state: every write of a job's lifecycle (jobs.state and what moves with it:
// attempt, worker, result, wait reason, progress, limit), of its audit trail (job_events) and of
// its leases (assignments) is a function here, run inside the caller's transaction together with
// its event and its NOTIFYs. Intake, the scheduler host and settlement call these; none of them
// writes those tables itself. Each statement that moves jobs.state declares its edges of
// job_state_machine, checked before first use (state_write.h).
//
// What stays outside, on purpose: settlement writes the money columns of a job (charged, released,
// hold state, GPU-ms) in the ledger's transaction, and worker rows belong to the scheduler.
//
// Locks: the caller holds the job rows (FOR NO KEY UPDATE) where a function says so; otherwise the
// statement takes them itself, jobs before assignments, the project's lock order.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "services/lifecycle/ended_lease.h"
#include "tessera/v1/common.pb.h"

namespace tessera::lifecycle {

// ---- Intake --------------------------------------------------------------------------------------

// New jobs as columns (one entry per job), validated and priced by intake.
struct NewJobs {
  std::vector<int64_t> account_ids, gpu_counts, bids, max_duration_ms, max_attempts, holds, queue_timeout_ms;
  std::vector<std::string> request_ids, specs_hex, kinds, gpu_models, priority_classes;
};

struct QueuedJob {
  int64_t account_id = 0;
  std::string request_id;
  int64_t job_id = 0, created_ms = 0, queue_deadline_ms = 0;
};

// → QUEUED: inserts the jobs with their QUEUED events and the scheduler's wake-ups (a JobSubmitted
// NOTIFY each), in one statement.
std::vector<QueuedJob> InsertQueued(pqxx::work& tx, const NewJobs& jobs, int64_t fee_bps);

// QUEUED | ASSIGNED | RUNNING → CANCELLED by its customer: ends the attempt's live leases, audits,
// wakes settlement and tells the scheduler (a JobCancelled per worker that held a lease; worker 0
// when none did). The caller holds the job row and checked the edge against `state`.
void CancelByCustomer(pqxx::work& tx, int64_t job_id, v1::JobState state, uint32_t attempt);

// A raised limit (the state stays): the job's max_duration_ms and hold, the extension's idempotency
// row, the EXTENDED event and a JobExtended NOTIFY per worker running it (worker 0 when none).
struct Extension {
  int64_t job_id = 0;
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  uint32_t attempt = 0;
  std::string request_id;
  int64_t additional_ms = 0, added_hold_utok = 0, new_max_ms = 0, new_hold_utok = 0;
  std::vector<int64_t> running_on;  // the workers with a live lease
};
void RecordExtension(pqxx::work& tx, const Extension& extension);

// ---- The scheduler host --------------------------------------------------------------------------

// QUEUED (never started) → CANCELLED past its queue deadline, at most `limit` jobs; skips jobs
// locked by a customer right now. Returns the jobs cancelled.
std::vector<int64_t> CancelExpiredQueued(pqxx::work& tx, int limit);

// Why each queued job still waits (the state stays QUEUED).
void SetWaitReasons(pqxx::work& tx, const std::vector<int64_t>& job_ids, const std::vector<std::string>& reasons);

// Placements as columns, one row per (job, worker): a spread job has a lease on each of its
// workers, node_rank in the order the market chose them.
struct Placements {
  std::vector<int64_t> job_ids, worker_ids, prices, node_ranks;
  std::vector<std::string> gpu_lists, node_lists;  // int[] literals
};
// QUEUED → ASSIGNED with the next attempt, a LIVE lease per worker, lease totals and the ASSIGNED
// events. Rows: job_id, attempt, worker_id, gpu_indexes, price, spec, state, account name,
// submitted ms, node_rank, node list, max_duration_ms (the lease columns the scheduler reads).
pqxx::result Assign(pqxx::work& tx, const Placements& placements);

// ASSIGNED → RUNNING for the attempts whose workers (holding a live lease) said they started.
void RecordStarted(pqxx::work& tx, const std::vector<int64_t>& job_ids, const std::vector<int64_t>& attempts,
                   const std::vector<int64_t>& worker_ids);

// Progress of ASSIGNED or RUNNING attempts from their live leases' workers (the last report wins).
void RecordProgress(pqxx::work& tx, const std::vector<int64_t>& job_ids, const std::vector<int64_t>& attempts,
                    const std::vector<int64_t>& worker_ids, const std::vector<int64_t>& ppm, const std::vector<std::string>& losses);

// Finishes reported by workers (state "SUCCEEDED" or "FAILED", result as hex, the event's text).
struct Finishes {
  std::vector<int64_t> job_ids, attempts, worker_ids;
  std::vector<std::string> states, results_hex, messages;
};
// Each finish ends its lease. ASSIGNED | RUNNING → FAILED when one of its workers failed (its
// other leases end), → SUCCEEDED when its last live lease finished. Rows: (job_id, 0, 0) per job
// that ended, (job_id, attempt, worker_id) per sibling lease ended by another worker's failure.
pqxx::result RecordFinished(pqxx::work& tx, const Finishes& finishes);

// QUEUED → RUNNING: the leases `worker_id` reconnected still running (job, attempt) that was
// requeued and not reassigned, whose GPUs nobody took meanwhile, go LIVE again. Returns the jobs.
std::vector<int64_t> ResumeLeases(pqxx::work& tx, int64_t worker_id, const std::vector<int64_t>& job_ids,
                                  const std::vector<int64_t>& attempts);

// ASSIGNED | RUNNING → QUEUED (or FAILED with no attempt left; a preempted job always requeues):
// ends the live leases of the offline workers, of the (job, attempt)s named and of the preempted
// jobs, and every other live lease of the same attempts (a spread job loses all its workers
// together), with `reason` in the events; wakes settlement.
std::vector<EndedLease> EndLeases(pqxx::work& tx, const std::vector<int64_t>& offline_workers,
                                  const std::vector<std::pair<int64_t, uint32_t>>& attempts,
                                  const std::vector<int64_t>& preempted_jobs, const std::string& reason);

// ---- Settlement ----------------------------------------------------------------------------------

// An ESCROW_LOW event (WatchJob streams it) for each ASSIGNED or RUNNING job named, once per
// limit: the job's warned-at mark is its current max_duration_ms, so an extension re-arms it.
void WarnEscrowLow(pqxx::work& tx, const std::vector<int64_t>& job_ids, const std::vector<int64_t>& remaining_ms);

}  // namespace tessera::lifecycle
