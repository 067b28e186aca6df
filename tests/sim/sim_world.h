// The deterministic simulation: the product's scheduler host (scheduler_host::SchedulerHost: worker
// ingest, hello reconciliation, the scheduling rounds with the real scheduler::Market, lease expiry,
// the usage checks) and the real settlement arithmetic (billing::ChargeBatch, BatchTransfers,
// ReleaseTransfer) run against simulated workers, customers, network, clock and store of record,
// every choice drawn from one seed: the same seed gives the same trace.
//
//   SimOptions options = OptionsForSeed(42);      // fault probabilities drawn from the seed too
//   SimResult r = RunSimulation(options);         // r.ok, r.violation, r.trace_hash
//   if (!r.ok) SimResult small = Shrink(options); // fewer faults, fewer jobs, the trace up to it
//
// The host is started with HostThreads::kCaller and stepped by the world; its parts come in through
// HostParts as in the product: the store of record is SimSchedulerStore (sim_store.h), an in-memory
// model of the tables the PostgreSQL repository's transactions touch, each applied whole or not at
// all; worker streams are SimSessions (sim_wire.h) carrying the real protobuf messages, signed with
// each worker's Ed25519 key; the clock is the world's. What is still re-typed: the worker agent's
// control flow (outbox resend, grace period, hello), which follows services/worker/agent.cc, and
// the intake's and the settlement's transactions.
//
// After every step the DESIGN.md invariants are checked: the ledger sums to zero and no customer
// or provider balance is negative; each customer's money is conserved (deposits = available +
// escrow + charged); each report is charged once and each lease's transfers equal its reports'
// charges; no accepted job is lost; no GPU holds two live leases (nor, on a worker, two runs); no
// job pays above its bid. At the end, with faults stopped, every job must reach a terminal state
// and every hold must be released.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::sim {

// Probabilities in parts per million, per opportunity (per worker and step, per message, …).
struct FaultRates {
  int worker_crash = 0;       // a worker process dies (its memory with it) and restarts later
  int worker_partition = 0;   // a worker is cut off from the server, then comes back
  int message_delay = 0;      // a message is held back (its stream stays in order)
  int duplicate = 0;          // a message is delivered twice
  int reorder = 0;            // a broken stream's in-flight messages arrive after the new stream's
  int usage_lost = 0;         // a usage report is lost, breaking its stream; the worker resends
  int scheduler_restart = 0;  // the server dies; it rebuilds its state from the store
  int kernel_failure = 0;     // a job's kernel fails on the worker
  int clock_jump = 0;         // a worker's wall clock jumps
  int settlement_crash = 0;   // a settlement pass dies before it commits
};

// A defect to inject, so that the tests can show the checks catch it.
enum class InjectedBug { kNone, kResettle, kStaleLease, kNoRequeueOnHello };

struct SimOptions {
  uint64_t seed = 1;
  int workers = 4;
  int customers = 3;
  int jobs = 24;
  int64_t fault_phase_ms = 120'000;  // faults fire until then; afterwards the system must settle
  int64_t settle_limit_ms = 900'000;
  FaultRates faults;
  InjectedBug bug = InjectedBug::kNone;
  bool record_trace = false;  // keep the trace's lines (the hash is always computed)
};

struct SimResult {
  bool ok = true;
  std::string violation;  // what broke, empty when ok
  int64_t step = 0;       // the step it broke at, or the last step
  uint64_t trace_hash = 0;
  std::vector<std::string> trace;  // when recorded
  // What happened, for the summary.
  int64_t jobs_accepted = 0, jobs_succeeded = 0, jobs_failed = 0, jobs_cancelled = 0;
  int64_t reports_settled = 0, reports_refused = 0, faults_fired = 0;
  int64_t charged_utok = 0;
};

// The options of a seed: the workload size and every fault's probability come from the seed.
SimOptions OptionsForSeed(uint64_t seed);
SimResult RunSimulation(const SimOptions& options);

struct ShrunkFailure {
  SimOptions options;  // the smallest failing options found
  SimResult result;    // its run, with the trace recorded
};
// Turns faults off one by one and makes the workload smaller while the run still fails.
ShrunkFailure Shrink(const SimOptions& failing);

std::string Describe(const SimOptions& options);
const char* BugName(InjectedBug bug);

}  // namespace tessera::sim
