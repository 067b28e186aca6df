// tessera.v1.AdminService: accounts, API keys and the trust an operator keeps on workers (fraud
// signals, quarantine and release). Validation at the edge, then the repositories that own each
// (billing's accounts, auth's keys, the scheduler's trust). Every call is authenticated; the
// access policy (services/auth/access_policy.h) admits only admin keys.
#pragma once

#include "services/auth/api_key_repository.h"
#include "services/auth/authenticator.h"
#include "services/billing/billing_repository.h"
#include "services/scheduler/trust_repository.h"
#include "tessera/v1/admin.grpc.pb.h"

namespace tessera::admin {

class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  AdminServiceImpl(billing::BillingRepository& accounts, auth::ApiKeyRepository& keys, scheduler_host::TrustRepository& trust,
                   auth::Authenticator& auth)
      : repo_(accounts), keys_(keys), trust_(trust), auth_(auth) {}
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
  billing::BillingRepository& repo_;
  auth::ApiKeyRepository& keys_;
  scheduler_host::TrustRepository& trust_;
  auth::Authenticator& auth_;
};

}  // namespace tessera::admin
