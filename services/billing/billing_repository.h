// Billing's reads and the admin deposit. Money moves only through PostTransfers (ledger.h).
#pragma once

#include "absl/status/statusor.h"
#include "services/store/database.h"
#include "tessera/v1/admin.pb.h"
#include "tessera/v1/billing.pb.h"

namespace tessera::billing {

// Whose usage reports a caller may see: the job's customer sees its jobs' reports, the reporting
// worker's provider its workers' reports; an admin (both empty) sees all.
struct UsageViewer {
  std::string customer;  // non-empty: only reports of this customer's jobs
  std::string provider;  // non-empty: only reports of this provider's workers
};

class BillingRepository {
 public:
  explicit BillingRepository(store::Database& db) : db_(db) {}

  absl::StatusOr<v1::Transfer> Deposit(const v1::DepositRequest& request);
  absl::StatusOr<v1::Balance> GetBalance(const std::string& account);
  absl::StatusOr<v1::ListTransfersResponse> ListTransfers(const v1::ListTransfersRequest& request);
  // `account` non-empty: the customer asking; another account's job is NOT_FOUND.
  absl::StatusOr<v1::Invoice> GetJobInvoice(int64_t job_id, const std::string& account);
  // `month` is "YYYY-MM" (validated by the service).
  absl::StatusOr<v1::Statement> GetStatement(const std::string& account, const std::string& month);
  // Rebuilds the report's batch tree from the stored reports; INTERNAL if it no longer matches the
  // stored root (the stored reports were altered). Reports `viewer` may not see do not exist for it:
  // NOT_FOUND, never an error that tells they exist.
  absl::StatusOr<v1::UsageProof> GetUsageProof(const v1::GetUsageProofRequest& request, const UsageViewer& viewer = {});
  absl::StatusOr<v1::ListSettlementBatchesResponse> ListSettlementBatches(const v1::ListSettlementBatchesRequest& request);

  absl::StatusOr<v1::Account> CreateAccount(const v1::CreateAccountRequest& request);
  absl::StatusOr<v1::ListAccountsResponse> ListAccounts(const v1::ListAccountsRequest& request);

 private:
  store::Database& db_;
};

}  // namespace tessera::billing
