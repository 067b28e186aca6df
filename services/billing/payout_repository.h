// Provider payouts: request (earnings → payout_pending), then an admin's single decision: approve
// (payout_pending → treasury) or reject (payout_pending → earnings). The payout row and its
// transfer change in one transaction; money moves only through PostTransfers.
#pragma once

#include "absl/status/statusor.h"
#include "services/store/database.h"
#include "tessera/v1/billing.pb.h"

namespace tessera::billing {

class PayoutRepository {
 public:
  explicit PayoutRepository(store::Database& db) : db_(db) {}

  absl::StatusOr<v1::Payout> Request(const v1::RequestPayoutRequest& request);
  absl::StatusOr<v1::ListPayoutsResponse> List(const v1::ListPayoutsRequest& request);
  absl::StatusOr<v1::Payout> Approve(int64_t payout_id);
  absl::StatusOr<v1::Payout> Reject(int64_t payout_id, const std::string& reason);

 private:
  absl::StatusOr<v1::Payout> Decide(int64_t payout_id, bool approve, const std::string& reason);

  store::Database& db_;
};

}  // namespace tessera::billing
