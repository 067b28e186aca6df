#include "services/billing/billing_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/auth/access_policy.h"
#include "services/auth/api_key.h"
#include "services/billing/period.h"
#include "services/common/grpc_status.h"
#include "services/common/money.h"
#include "services/intake/job_spec_validator.h"

namespace tessera::billing {
namespace {

// Copies a StatusOr's value into the response, or returns its error as a gRPC status.
template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

grpc::Status Invalid(const absl::Status& s) { return ToGrpcStatus(s); }


}  // namespace

grpc::Status BillingServiceImpl::Deposit(grpc::ServerContext* context, const v1::DepositRequest* request, v1::Transfer* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/Deposit");
  if (absl::Status s = intake::ValidateName("account", request->account()); !s.ok()) return Invalid(s);
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
  if (absl::Status s = intake::ValidateName("account", request->account()); !s.ok()) return Invalid(s);
  if (absl::Status s = auth::RequireAccount(*caller, "account", request->account()); !s.ok()) return Invalid(s);
  return Reply(repo_.GetBalance(request->account()), response);
}

grpc::Status BillingServiceImpl::ListTransfers(grpc::ServerContext* context, const v1::ListTransfersRequest* request,
                                               v1::ListTransfersResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/ListTransfers");
  if (absl::Status s = intake::ValidateName("account", request->account()); !s.ok()) return Invalid(s);
  if (absl::Status s = auth::RequireAccount(*caller, "account", request->account()); !s.ok()) return Invalid(s);
  if (absl::Status s = ValidatePeriod(request->period()); !s.ok()) return Invalid(s);
  return Reply(repo_.ListTransfers(*request), response);
}

grpc::Status BillingServiceImpl::GetStatement(grpc::ServerContext* context, const v1::GetStatementRequest* request,
                                              v1::Statement* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/GetStatement");
  if (absl::Status s = intake::ValidateName("account", request->account()); !s.ok()) return Invalid(s);
  if (absl::Status s = auth::RequireAccount(*caller, "account", request->account()); !s.ok()) return Invalid(s);
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
  if (!account.ok()) return Invalid(account.status());
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
  if (absl::Status s = intake::ValidateName("account", request->account()); !s.ok()) return Invalid(s);
  if (absl::Status s = auth::RequireAccount(*caller, "account", request->account()); !s.ok()) return Invalid(s);
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
    if (absl::Status s = intake::ValidateName("account", request->account()); !s.ok()) return Invalid(s);
  }
  if (!v1::PayoutState_IsValid(request->state())) return InvalidArgumentStatus("state is not a payout state");
  absl::StatusOr<std::string> account = auth::ScopeAccountFilter(*caller, "account", request->account());
  if (!account.ok()) return Invalid(account.status());
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
  if (absl::Status s = ValidatePeriod(request->period()); !s.ok()) return Invalid(s);
  if (request->group_by() == v1::USAGE_GROUP_UNSPECIFIED || !v1::UsageGroup_IsValid(request->group_by())) {
    return InvalidArgumentStatus("group_by must be CUSTOMER, PROVIDER, GPU_MODEL, REGION or WORKER");
  }
  if (!request->account().empty()) {
    if (absl::Status s = intake::ValidateName("account", request->account()); !s.ok()) return Invalid(s);
  }
  absl::StatusOr<std::string> account = auth::ScopeAccountFilter(*caller, "account", request->account());
  if (!account.ok()) return Invalid(account.status());
  v1::GetUsageReportRequest scoped = *request;
  scoped.set_account(*account);
  return Reply(reports_.UsageReport(scoped), response);
}

grpc::Status BillingServiceImpl::GetRevenue(grpc::ServerContext* context, const v1::GetRevenueRequest* request, v1::Revenue* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/GetRevenue");
  if (absl::Status s = ValidatePeriod(request->period()); !s.ok()) return Invalid(s);
  return Reply(reports_.Revenue(request->period()), response);
}

grpc::Status BillingServiceImpl::ExportUsage(grpc::ServerContext* context, const v1::ExportUsageRequest* request,
                                             grpc::ServerWriter<v1::ExportChunk>* writer) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.BillingService/ExportUsage");
  if (absl::Status s = ValidatePeriod(request->period()); !s.ok()) return Invalid(s);
  if (!v1::ExportFormat_IsValid(request->format())) return InvalidArgumentStatus("format is not an export format");
  absl::Status exported = reports_.ExportUsage(*request, [&](std::string data) {
    v1::ExportChunk chunk;
    chunk.set_data(std::move(data));
    return !context->IsCancelled() && writer->Write(chunk);
  });
  return ToGrpcStatus(exported);
}

grpc::Status AdminServiceImpl::CreateAccount(grpc::ServerContext* context, const v1::CreateAccountRequest* request,
                                             v1::Account* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.AdminService/CreateAccount");
  if (absl::Status s = intake::ValidateName("name", request->name()); !s.ok()) return Invalid(s);
  if (request->name() == "platform" || request->name() == "treasury") {
    return InvalidArgumentStatus(absl::StrCat("name '", request->name(), "' is reserved"));
  }
  if (request->kind() != v1::ACCOUNT_KIND_CUSTOMER && request->kind() != v1::ACCOUNT_KIND_PROVIDER) {
    return InvalidArgumentStatus("kind must be CUSTOMER or PROVIDER");
  }
  return Reply(repo_.CreateAccount(*request), response);
}

grpc::Status AdminServiceImpl::ListAccounts(grpc::ServerContext* context, const v1::ListAccountsRequest* request,
                                            v1::ListAccountsResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.AdminService/ListAccounts");
  return Reply(repo_.ListAccounts(*request), response);
}

grpc::Status AdminServiceImpl::CreateApiKey(grpc::ServerContext* context, const v1::CreateApiKeyRequest* request,
                                            v1::CreateApiKeyResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.AdminService/CreateApiKey");
  if (request->role() == v1::ROLE_ADMIN) {
    if (!request->account().empty()) return InvalidArgumentStatus("account must be empty: an admin key acts for no account");
  } else if (request->role() == v1::ROLE_CUSTOMER || request->role() == v1::ROLE_PROVIDER) {
    if (absl::Status s = intake::ValidateName("account", request->account()); !s.ok()) return Invalid(s);
  } else {
    return InvalidArgumentStatus("role must be CUSTOMER, PROVIDER or ADMIN");
  }
  if (request->label().size() > 128) return InvalidArgumentStatus("label must be at most 128 characters");
  return Reply(keys_.Create(*request, caller->key_id), response);
}

grpc::Status AdminServiceImpl::ListApiKeys(grpc::ServerContext* context, const v1::ListApiKeysRequest* request,
                                           v1::ListApiKeysResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.AdminService/ListApiKeys");
  if (!request->account().empty()) {
    if (absl::Status s = intake::ValidateName("account", request->account()); !s.ok()) return Invalid(s);
  }
  return Reply(keys_.List(*request), response);
}

grpc::Status AdminServiceImpl::RevokeApiKey(grpc::ServerContext* context, const v1::RevokeApiKeyRequest* request,
                                            v1::ApiKey* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.AdminService/RevokeApiKey");
  if (!auth::IsKeyId(request->key_id())) return InvalidArgumentStatus("key_id must be 16 hex characters");
  return Reply(keys_.Revoke(request->key_id(), caller->key_id), response);
}

grpc::Status AdminServiceImpl::ListFraudSignals(grpc::ServerContext* context, const v1::ListFraudSignalsRequest* request,
                                                v1::ListFraudSignalsResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.AdminService/ListFraudSignals");
  if (request->worker_id() < 0) return InvalidArgumentStatus("worker_id must be 0 (every worker) or positive");
  return Reply(trust_.ListSignals(*request), response);
}

grpc::Status AdminServiceImpl::GetWorkerTrust(grpc::ServerContext* context, const v1::GetWorkerTrustRequest* request,
                                              v1::WorkerTrust* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.AdminService/GetWorkerTrust");
  if (request->worker_id() <= 0) return InvalidArgumentStatus("worker_id must be positive");
  return Reply(trust_.GetWorkerTrust(request->worker_id()), response);
}

grpc::Status AdminServiceImpl::QuarantineWorker(grpc::ServerContext* context, const v1::QuarantineWorkerRequest* request,
                                                v1::WorkerTrust* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.AdminService/QuarantineWorker");
  if (request->worker_id() <= 0) return InvalidArgumentStatus("worker_id must be positive");
  if (request->reason().empty() || request->reason().size() > 500) {
    return InvalidArgumentStatus("reason must be 1..500 characters to quarantine a worker");
  }
  return Reply(trust_.Quarantine(request->worker_id(), request->reason(), caller->key_id), response);
}

grpc::Status AdminServiceImpl::ReleaseWorker(grpc::ServerContext* context, const v1::ReleaseWorkerRequest* request,
                                             v1::WorkerTrust* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.AdminService/ReleaseWorker");
  if (request->worker_id() <= 0) return InvalidArgumentStatus("worker_id must be positive");
  if (request->reason().empty() || request->reason().size() > 500) {
    return InvalidArgumentStatus("reason must be 1..500 characters to release a worker");
  }
  return Reply(trust_.Release(request->worker_id(), request->reason(), caller->key_id), response);
}

}  // namespace tessera::billing
