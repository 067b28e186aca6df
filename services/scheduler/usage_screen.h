// The checks a usage report must pass before it is stored, without a database: a lease this worker
// held, a seq after the lease's last (an identical resend is a duplicate, already stored), not dated
// in the future, at most the lease's wall time × GPUs in total. Usage ingest (usage_ingest.cc) runs
// them against what it reads from the store; the deterministic simulation (tests/sim) against its
// simulated store, so that both apply one implementation of these rules.
//
//   Verdict v = ScreenReport(in, lease, totals, now_ms, stored, accepted, reason, signal);
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "tessera/v1/workers.pb.h"

namespace tessera::scheduler_host {

struct UsageIn {
  int64_t worker_id = 0;
  v1::UsageReport report;
};

// What the ingest round stored: per report, whether it is (now or already) durable, and why not.
struct UsageOutcome {
  int64_t job_id = 0;
  uint32_t attempt = 0;
  uint64_t seq = 0;
  bool stored = false;
  std::string reason;  // empty when stored
};

// A refused report or result, stored with what shows it (fraud_signals).
struct FraudSignal {
  int64_t worker_id = 0;
  std::string kind;  // BAD_SIGNATURE, REPLAYED_REPORT, FUTURE_DATED, OVER_CLAIM, UNLEASED_REPORT, …
  int64_t job_id = 0;
  uint32_t attempt = 0;
  uint64_t seq = 0;
  std::string evidence;
};

// A worker's clock may run ahead of ours by this much; a report dated later is refused.
inline constexpr int64_t kMaxFutureMs = 60'000;
// A lease's wall time bounds the GPU-ms it can report: (age + slack) × GPUs × (1 + 1%), the slack
// and the percent for clocks that tick at slightly different rates.
inline constexpr int64_t kClaimSlackMs = 2'000;

// One report covers about a second; anything beyond an hour of 64 GPUs is not a measurement.
inline constexpr int64_t kMaxGpuMsPerReport = 64LL * 3'600'000;

// The shape check a report passes before its signature is checked: ids and seq positive, gpu_ms
// within one report's reach. The worker gateway refuses a report that fails it, unstored.
bool PlausibleUsage(const v1::UsageReport& usage);

using LeaseKey = std::tuple<int64_t, uint32_t, int64_t>;             // job, attempt, worker
using ReportKey = std::tuple<int64_t, uint32_t, int64_t, uint64_t>;  // job, attempt, worker, seq
using ReportContent = std::pair<std::string, int64_t>;              // signature, gpu_ms

LeaseKey LeaseKeyOf(const UsageIn& u);
ReportKey ReportKeyOf(const UsageIn& u);
int64_t SeqOf(const v1::UsageReport& r);  // clamped to int64

// A lease's ingest record (lease_ingest) as batches move it.
struct IngestTotals {
  int64_t last_seq = 0;
  int64_t gpu_ms_reported = 0;
  int64_t utilization_gpu_ms = 0, energy_mj = 0, metered_gpu_ms = 0;
  void Add(const v1::UsageReport& r);
};

struct IngestLease {
  bool exists = false;  // the worker held this (job, attempt) at some time
  int64_t created_at_ms = 0;
  int64_t gpus = 0;
  IngestTotals totals;
};

enum class Verdict { kNew, kDuplicate, kRefused };

// The checks, in order, against what the store holds (`stored`) and what this batch accepted before
// it (`accepted`). A refusal sets `reason`; one no honest worker causes also fills `signal`.
Verdict ScreenReport(const UsageIn& u, const IngestLease& lease, const IngestTotals& totals, int64_t now_ms,
                     const std::map<ReportKey, ReportContent>& stored, const std::map<ReportKey, ReportContent>& accepted,
                     std::string& reason, FraudSignal& signal);

}  // namespace tessera::scheduler_host
