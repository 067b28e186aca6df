// Settlement: turns stored usage reports into ledger transfers, and releases the unspent escrow of
// ended jobs. One pass is one transaction over a bounded batch: either the whole batch settles or
// none of it, and a report is marked settled in the same transaction as its transfers, so it is
// charged exactly once whatever crashes or retries.
//
//   Settlement settlement(db);
//   absl::StatusOr<SettleStats> stats = settlement.SettleOnce(10'000);
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "services/store/database.h"
#include "services/store/notification_listener.h"

namespace tessera::billing {

struct SettleStats {
  int64_t reports_settled = 0;
  int64_t jobs_released = 0;
  int64_t transfers_posted = 0;
};

class Settlement {
 public:
  explicit Settlement(store::Database& db) : db_(db) {}
  absl::StatusOr<SettleStats> SettleOnce(int max_reports);

 private:
  store::Database& db_;
};

// Runs settlement passes in the background: after every NOTIFY tessera_settle / usage ingest
// wake-up and at least every `interval_ms`, until a pass finds nothing to do.
class SettlementLoop {
 public:
  SettlementLoop(store::Database& db, int64_t interval_ms, int max_reports_per_batch);
  ~SettlementLoop();
  void Wake();

 private:
  void Run();

  Settlement settlement_;
  const int64_t interval_ms_;
  const int max_reports_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool wake_ = false;
  std::atomic<bool> stop_{false};
  std::unique_ptr<store::NotificationListener> listener_;
  std::thread thread_;
};

}  // namespace tessera::billing
