#include "services/admin/admin_service.h"

#include "absl/strings/str_cat.h"
#include "services/auth/access_policy.h"
#include "services/auth/api_key.h"
#include "services/common/grpc_status.h"
#include "services/common/names.h"

namespace tessera::admin {

grpc::Status AdminServiceImpl::CreateAccount(grpc::ServerContext* context, const v1::CreateAccountRequest* request,
                                             v1::Account* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.AdminService/CreateAccount");
  if (absl::Status s = ValidateName("name", request->name()); !s.ok()) return ToGrpcStatus(s);
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
    if (absl::Status s = ValidateName("account", request->account()); !s.ok()) return ToGrpcStatus(s);
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
    if (absl::Status s = ValidateName("account", request->account()); !s.ok()) return ToGrpcStatus(s);
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

}  // namespace tessera::admin
