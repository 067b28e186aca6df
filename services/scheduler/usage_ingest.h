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
#include "services/scheduler/usage_screen.h"
#include "services/store/database.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::scheduler_host {


void InsertFraudSignals(pqxx::work& tx, const std::vector<FraudSignal>& signals);

class UsageIngest {
 public:
  explicit UsageIngest(store::Database& db) : db_(db) {}

  absl::StatusOr<std::vector<UsageOutcome>> Ingest(const std::vector<UsageIn>& usage);
  void Forget();

 private:
  static constexpr size_t kMaxCachedLeases = 1'000'000;

  store::Database& db_;
  std::mutex mu_;
  std::map<LeaseKey, IngestLease> leases_ ABSL_GUARDED_BY(mu_);  // only leases that exist
};

}  // namespace tessera::scheduler_host
