#include "services/billing/billing_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/auth/access_policy.h"
#include "services/billing/period.h"
#include "services/common/grpc_status.h"
#include "services/common/money.h"
#include "services/common/names.h"

namespace tessera::billing {

grpc::Status BillingServiceImpl::Deposit(grpc::ServerContext* context, const v1::DepositRequest* request, v1::Transfer* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/Deposit");
  if (absl::Status s = ValidateName("account", request->account()); !s.ok()) return ToGrpcStatus(s);
  if (request->amount_utok() <= 0 || request->amount_utok() > kMaxTokenSupplyUtok) {
    return InvalidArgumentStatus(absl::StrCat("amount_utok must be between 1 and ", kMaxTokenSupplyUtok,
                                                             " (the network's supply limit), got ", request->amount_utok()));
  }
  if (request->idempotency_key().empty() || request->idempotency_key().size() > 128) {
    return InvalidArgumentStatus("idempotency_key must be 1..128 characters");
  }
  return Reply(repo_.Deposit(*request), response);
}

grpc::Status BillingServiceImpl::GetBalance(grpc::ServerContext* context, const v1::GetBalanceRequest* request, v1::Balance* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/GetBalance");
  if (absl::Status s = ValidateName("account", request->account()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = auth::RequireAccount(*caller, "account", request->account()); !s.ok()) return ToGrpcStatus(s);
  return Reply(repo_.GetBalance(request->account()), response);
}

grpc::Status BillingServiceImpl::ListTransfers(grpc::ServerContext* context, const v1::ListTransfersRequest* request,
                                               v1::ListTransfersResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/ListTransfers");
  if (absl::Status s = ValidateName("account", request->account()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = auth::RequireAccount(*caller, "account", request->account()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = ValidatePeriod(request->period()); !s.ok()) return ToGrpcStatus(s);
  return Reply(repo_.ListTransfers(*request), response);
}

grpc::Status BillingServiceImpl::GetStatement(grpc::ServerContext* context, const v1::GetStatementRequest* request,
                                              v1::Statement* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/GetStatement");
  if (absl::Status s = ValidateName("account", request->account()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = auth::RequireAccount(*caller, "account", request->account()); !s.ok()) return ToGrpcStatus(s);
  const std::string& m = request->month();
  const bool digits = m.size() == 7 && m[4] == '-' &&
                      std::all_of(m.begin(), m.end(), [](char c) { return c == '-' || (c >= '0' && c <= '9'); });
  const int month = digits ? (m[5] - '0') * 10 + (m[6] - '0') : 0;
  if (!digits || month < 1 || month > 12 || m.substr(0, 4) < "1970") {
    return InvalidArgumentStatus(absl::StrCat("month must be YYYY-MM (UTC), e.g. 2026-11, got '", m, "'"));
  }
  return Reply(repo_.GetStatement(request->account(), m), response);
}

grpc::Status BillingServiceImpl::GetJobInvoice(grpc::ServerContext* context, const v1::GetJobInvoiceRequest* request,
                                               v1::Invoice* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/GetJobInvoice");
  if (request->job_id() <= 0) return InvalidArgumentStatus("job_id must be positive");
  // A customer sees only its own invoices: another's job is NOT_FOUND, as one that never was; naming
  // another account is PERMISSION_DENIED, as in every other call.
  absl::StatusOr<std::string> account = auth::ScopeAccountFilter(*caller, "account", request->account());
  if (!account.ok()) return ToGrpcStatus(account.status());
  return Reply(repo_.GetJobInvoice(request->job_id(), *account), response);
}

grpc::Status BillingServiceImpl::GetUsageProof(grpc::ServerContext* context, const v1::GetUsageProofRequest* request,
                                               v1::UsageProof* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/GetUsageProof");
  if (request->job_id() <= 0) return InvalidArgumentStatus("job_id must be positive");
  if (request->seq() == 0 || request->seq() > static_cast<uint64_t>(INT64_MAX)) {
    return InvalidArgumentStatus("seq must be positive");
  }
  if (request->worker_id() < 0) return InvalidArgumentStatus("worker_id must be 0 (any) or positive");
  // The job's customer and the reporting worker's provider may prove a report; to anyone else it
  // does not exist, whatever else is wrong with the request.
  UsageViewer viewer;
  if (caller->role == v1::ROLE_CUSTOMER) viewer.customer = caller->account;
  if (caller->role == v1::ROLE_PROVIDER) viewer.provider = caller->account;
  absl::StatusOr<v1::UsageProof> proof = repo_.GetUsageProof(*request, viewer);
  return Reply(std::move(proof), response);
}

grpc::Status BillingServiceImpl::ListSettlementBatches(grpc::ServerContext* context, const v1::ListSettlementBatchesRequest* request,
                                                       v1::ListSettlementBatchesResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/ListSettlementBatches");
  return Reply(repo_.ListSettlementBatches(*request), response);
}

grpc::Status BillingServiceImpl::RequestPayout(grpc::ServerContext* context, const v1::RequestPayoutRequest* request,
                                               v1::Payout* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/RequestPayout");
  if (absl::Status s = ValidateName("account", request->account()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = auth::RequireAccount(*caller, "account", request->account()); !s.ok()) return ToGrpcStatus(s);
  if (request->amount_utok() <= 0) {
    return InvalidArgumentStatus(absl::StrCat("amount_utok must be positive, got ", request->amount_utok()));
  }
  if (request->idempotency_key().empty() || request->idempotency_key().size() > 128) {
    return InvalidArgumentStatus("idempotency_key must be 1..128 characters");
  }
  return Reply(payouts_.Request(*request), response);
}

grpc::Status BillingServiceImpl::ListPayouts(grpc::ServerContext* context, const v1::ListPayoutsRequest* request,
                                             v1::ListPayoutsResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/ListPayouts");
  if (!request->account().empty()) {
    if (absl::Status s = ValidateName("account", request->account()); !s.ok()) return ToGrpcStatus(s);
  }
  if (!v1::PayoutState_IsValid(request->state())) return InvalidArgumentStatus("state is not a payout state");
  absl::StatusOr<std::string> account = auth::ScopeAccountFilter(*caller, "account", request->account());
  if (!account.ok()) return ToGrpcStatus(account.status());
  v1::ListPayoutsRequest scoped = *request;
  scoped.set_account(*account);
  return Reply(payouts_.List(scoped), response);
}

grpc::Status BillingServiceImpl::ApprovePayout(grpc::ServerContext* context, const v1::DecidePayoutRequest* request,
                                               v1::Payout* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/ApprovePayout");
  if (request->payout_id() <= 0) return InvalidArgumentStatus("payout_id must be positive");
  return Reply(payouts_.Approve(request->payout_id()), response);
}

grpc::Status BillingServiceImpl::RejectPayout(grpc::ServerContext* context, const v1::DecidePayoutRequest* request,
                                              v1::Payout* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/RejectPayout");
  if (request->payout_id() <= 0) return InvalidArgumentStatus("payout_id must be positive");
  if (request->reason().empty() || request->reason().size() > 500) {
    return InvalidArgumentStatus("reason must be 1..500 characters to reject a payout");
  }
  return Reply(payouts_.Reject(request->payout_id(), request->reason()), response);
}

grpc::Status BillingServiceImpl::GetUsageReport(grpc::ServerContext* context, const v1::GetUsageReportRequest* request,
                                                v1::UsageReportSummary* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/GetUsageReport");
  if (absl::Status s = ValidatePeriod(request->period()); !s.ok()) return ToGrpcStatus(s);
  if (request->group_by() == v1::USAGE_GROUP_UNSPECIFIED || !v1::UsageGroup_IsValid(request->group_by())) {
    return InvalidArgumentStatus("group_by must be CUSTOMER, PROVIDER, GPU_MODEL, REGION or WORKER");
  }
  if (!request->account().empty()) {
    if (absl::Status s = ValidateName("account", request->account()); !s.ok()) return ToGrpcStatus(s);
  }
  absl::StatusOr<std::string> account = auth::ScopeAccountFilter(*caller, "account", request->account());
  if (!account.ok()) return ToGrpcStatus(account.status());
  v1::GetUsageReportRequest scoped = *request;
  scoped.set_account(*account);
  return Reply(reports_.UsageReport(scoped), response);
}

grpc::Status BillingServiceImpl::GetRevenue(grpc::ServerContext* context, const v1::GetRevenueRequest* request, v1::Revenue* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/GetRevenue");
  if (absl::Status s = ValidatePeriod(request->period()); !s.ok()) return ToGrpcStatus(s);
  return Reply(reports_.Revenue(request->period()), response);
}

grpc::Status BillingServiceImpl::ExportUsage(grpc::ServerContext* context, const v1::ExportUsageRequest* request,
                                             grpc::ServerWriter<v1::ExportChunk>* writer) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/ExportUsage");
  if (absl::Status s = ValidatePeriod(request->period()); !s.ok()) return ToGrpcStatus(s);
  if (!v1::ExportFormat_IsValid(request->format())) return InvalidArgumentStatus("format is not an export format");
  absl::Status exported = reports_.ExportUsage(*request, [&](std::string data) {
    v1::ExportChunk chunk;
    chunk.set_data(std::move(data));
    return !context->IsCancelled() && writer->Write(chunk);
  });
  return ToGrpcStatus(exported);
}

}  // namespace tessera::billing
