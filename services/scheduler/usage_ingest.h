// Usage ingest: stores the worker-signed usage reports that pass the checks needing the store of
// record, in order, and turns the others into fraud signals, all in one transaction per batch:
// a live lease of that worker (checked under a share lock as the reports are inserted), a seq after
// the lease's last (an identical resend is a duplicate, stored already), at most the lease's wall
// time × GPUs in total, not dated in the future. Signatures are checked before this, by the
// scheduler host with the worker's registered key.
//
// What it needs to know of a lease (when it began, its GPUs, its last seq and totals so far,
// lease_ingest) it keeps in memory after the first read: one writer (the leader's ingest thread)
// updates lease_ingest, in the same transactions, so the copy stays exact; a new leadership term
// forgets it. A batch then costs one statement for the reports and the lease records together.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "services/store/database.h"
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

void InsertFraudSignals(pqxx::work& tx, const std::vector<FraudSignal>& signals);

class UsageIngest {
 public:
  explicit UsageIngest(store::Database& db) : db_(db) {}

  absl::StatusOr<std::vector<UsageOutcome>> Ingest(const std::vector<UsageIn>& usage);
  void Forget();

  // A lease's ingest record (lease_ingest) as batches move it.
  struct Totals {
    int64_t last_seq = 0;
    int64_t gpu_ms_reported = 0;
    int64_t utilization_gpu_ms = 0, energy_mj = 0, metered_gpu_ms = 0;
    void Add(const v1::UsageReport& r);
  };
  struct Lease {
    bool exists = false;  // the worker held this (job, attempt) at some time
    int64_t created_at_ms = 0;
    int64_t gpus = 0;
    Totals totals;
  };
  using LeaseKey = std::tuple<int64_t, uint32_t, int64_t>;  // job, attempt, worker

 private:
  static constexpr size_t kMaxCachedLeases = 1'000'000;

  store::Database& db_;
  std::mutex mu_;
  std::map<LeaseKey, Lease> leases_ ABSL_GUARDED_BY(mu_);  // only leases that exist
};

}  // namespace tessera::scheduler_host
