// tessera.v1.BillingService and tessera.v1.AdminService (accounts): validation at the edge, then
// the BillingRepository. Synchronous gRPC API: each call is one short transaction. Every call is
// authenticated and scoped to the caller's account (services/auth/access_policy.h); AdminService
// also issues and revokes API keys.
#pragma once

#include "services/auth/api_key_repository.h"
#include "services/auth/authenticator.h"
#include "services/billing/billing_repository.h"
#include "services/billing/payout_repository.h"
#include "services/billing/report_repository.h"
#include "services/scheduler/trust_repository.h"
#include "tessera/v1/admin.grpc.pb.h"
#include "tessera/v1/billing.grpc.pb.h"

namespace tessera::billing {

class BillingServiceImpl final : public v1::BillingService::Service {
 public:
  BillingServiceImpl(BillingRepository& repo, PayoutRepository& payouts, ReportRepository& reports, auth::Authenticator& auth)
      : repo_(repo), payouts_(payouts), reports_(reports), auth_(auth) {}
  grpc::Status Deposit(grpc::ServerContext*, const v1::DepositRequest*, v1::Transfer*) override;
  grpc::Status GetBalance(grpc::ServerContext*, const v1::GetBalanceRequest*, v1::Balance*) override;
  grpc::Status ListTransfers(grpc::ServerContext*, const v1::ListTransfersRequest*, v1::ListTransfersResponse*) override;
  grpc::Status GetJobInvoice(grpc::ServerContext*, const v1::GetJobInvoiceRequest*, v1::Invoice*) override;
  grpc::Status GetStatement(grpc::ServerContext*, const v1::GetStatementRequest*, v1::Statement*) override;
  grpc::Status GetUsageProof(grpc::ServerContext*, const v1::GetUsageProofRequest*, v1::UsageProof*) override;
  grpc::Status ListSettlementBatches(grpc::ServerContext*, const v1::ListSettlementBatchesRequest*,
                                     v1::ListSettlementBatchesResponse*) override;
  grpc::Status RequestPayout(grpc::ServerContext*, const v1::RequestPayoutRequest*, v1::Payout*) override;
  grpc::Status ListPayouts(grpc::ServerContext*, const v1::ListPayoutsRequest*, v1::ListPayoutsResponse*) override;
  grpc::Status ApprovePayout(grpc::ServerContext*, const v1::DecidePayoutRequest*, v1::Payout*) override;
  grpc::Status RejectPayout(grpc::ServerContext*, const v1::DecidePayoutRequest*, v1::Payout*) override;
  grpc::Status GetUsageReport(grpc::ServerContext*, const v1::GetUsageReportRequest*, v1::UsageReportSummary*) override;
  grpc::Status GetRevenue(grpc::ServerContext*, const v1::GetRevenueRequest*, v1::Revenue*) override;
  grpc::Status ExportUsage(grpc::ServerContext*, const v1::ExportUsageRequest*, grpc::ServerWriter<v1::ExportChunk>*) override;

 private:
  BillingRepository& repo_;
  PayoutRepository& payouts_;
  ReportRepository& reports_;
  auth::Authenticator& auth_;
};

class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  AdminServiceImpl(BillingRepository& repo, auth::ApiKeyRepository& keys, scheduler_host::TrustRepository& trust,
                   auth::Authenticator& auth)
      : repo_(repo), keys_(keys), trust_(trust), auth_(auth) {}
  grpc::Status CreateAccount(grpc::ServerContext*, const v1::CreateAccountRequest*, v1::Account*) override;
  grpc::Status ListAccounts(grpc::ServerContext*, const v1::ListAccountsRequest*, v1::ListAccountsResponse*) override;
  grpc::Status CreateApiKey(grpc::ServerContext*, const v1::CreateApiKeyRequest*, v1::CreateApiKeyResponse*) override;
  grpc::Status ListApiKeys(grpc::ServerContext*, const v1::ListApiKeysRequest*, v1::ListApiKeysResponse*) override;
  grpc::Status RevokeApiKey(grpc::ServerContext*, const v1::RevokeApiKeyRequest*, v1::ApiKey*) override;
  grpc::Status ListFraudSignals(grpc::ServerContext*, const v1::ListFraudSignalsRequest*, v1::ListFraudSignalsResponse*) override;
  grpc::Status GetWorkerTrust(grpc::ServerContext*, const v1::GetWorkerTrustRequest*, v1::WorkerTrust*) override;
  grpc::Status QuarantineWorker(grpc::ServerContext*, const v1::QuarantineWorkerRequest*, v1::WorkerTrust*) override;
  grpc::Status ReleaseWorker(grpc::ServerContext*, const v1::ReleaseWorkerRequest*, v1::WorkerTrust*) override;

 private:
  BillingRepository& repo_;
  auth::ApiKeyRepository& keys_;
  scheduler_host::TrustRepository& trust_;
  auth::Authenticator& auth_;
};

}  // namespace tessera::billing
