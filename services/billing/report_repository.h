// Admin reports over settled money: usage grouped by customer, provider, GPU model or region, and
// the platform's fee revenue, each over a period.
#pragma once

#include "absl/status/statusor.h"
#include "services/store/database.h"
#include "tessera/v1/billing.pb.h"

namespace tessera::billing {

class ReportRepository {
 public:
  explicit ReportRepository(store::Database& db) : db_(db) {}

  // `request` is validated by the service (a known group, a well-formed period).
  absl::StatusOr<v1::UsageReportSummary> UsageReport(const v1::GetUsageReportRequest& request);
  absl::StatusOr<v1::Revenue> Revenue(const v1::Period& period);

 private:
  store::Database& db_;
};

}  // namespace tessera::billing
