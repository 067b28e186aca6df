// tessera.v1.BillingService and tessera.v1.AdminService (accounts): validation at the edge, then
// the BillingRepository. Synchronous gRPC API: each call is one short transaction.
#pragma once

#include "services/billing/billing_repository.h"
#include "services/billing/payout_repository.h"
#include "services/billing/report_repository.h"
#include "tessera/v1/admin.grpc.pb.h"
#include "tessera/v1/billing.grpc.pb.h"

namespace tessera::billing {

class BillingServiceImpl final : public v1::BillingService::Service {
 public:
  BillingServiceImpl(BillingRepository& repo, PayoutRepository& payouts, ReportRepository& reports)
      : repo_(repo), payouts_(payouts), reports_(reports) {}
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
};

class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  explicit AdminServiceImpl(BillingRepository& repo) : repo_(repo) {}
  grpc::Status CreateAccount(grpc::ServerContext*, const v1::CreateAccountRequest*, v1::Account*) override;
  grpc::Status ListAccounts(grpc::ServerContext*, const v1::ListAccountsRequest*, v1::ListAccountsResponse*) override;

 private:
  BillingRepository& repo_;
};

}  // namespace tessera::billing
