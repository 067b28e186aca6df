// Admin reports over settled money: usage grouped by customer, provider, GPU model or region, and
// the platform's fee revenue, each over a period.
#pragma once

#include <functional>
#include <string>

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
  // Hands the export to `sink` in chunks of whole lines (one short transaction per chunk, keyset
  // paged); stops early, OK, when `sink` returns false (the client went away).
  absl::Status ExportUsage(const v1::ExportUsageRequest& request, const std::function<bool(std::string)>& sink);

 private:
  store::Database& db_;
};

}  // namespace tessera::billing
