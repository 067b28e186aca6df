// tessera.v1.BillingService: validation at the edge, then the billing repositories. Synchronous
// gRPC API: each call is one short transaction. Every call is authenticated and scoped to the
// caller's account (services/auth/access_policy.h).
#pragma once

#include "services/auth/authenticator.h"
#include "services/billing/billing_repository.h"
#include "services/billing/payout_repository.h"
#include "services/billing/report_repository.h"
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

}  // namespace tessera::billing
