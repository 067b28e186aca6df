#include "services/auth/access_policy.h"

#include <array>

#include "absl/strings/str_cat.h"

namespace tessera::auth {
namespace {

struct MethodAccess {
  absl::string_view method;
  bool customer;
  bool provider;
};

// Admins may call every method; this says what else may. Keep it in the order of the .proto files.
constexpr std::array kPolicy = {
    MethodAccess{"tessera.v1.JobService/SubmitJob", true, false},
    MethodAccess{"tessera.v1.JobService/GetJob", true, false},
    MethodAccess{"tessera.v1.JobService/ListJobs", true, false},
    MethodAccess{"tessera.v1.JobService/CancelJob", true, false},
    MethodAccess{"tessera.v1.JobService/WatchJob", true, false},
    MethodAccess{"tessera.v1.JobService/ExtendJob", true, false},
    MethodAccess{"tessera.v1.WorkerService/RegisterWorker", false, true},
    MethodAccess{"tessera.v1.WorkerService/Connect", false, true},
    MethodAccess{"tessera.v1.WorkerService/ListWorkers", false, true},
    MethodAccess{"tessera.v1.WorkerService/RetireWorker", false, true},
    MethodAccess{"tessera.v1.BillingService/Deposit", false, false},
    MethodAccess{"tessera.v1.BillingService/GetBalance", true, true},
    MethodAccess{"tessera.v1.BillingService/ListTransfers", true, true},
    MethodAccess{"tessera.v1.BillingService/GetStatement", true, true},
    MethodAccess{"tessera.v1.BillingService/GetJobInvoice", true, false},
    MethodAccess{"tessera.v1.BillingService/GetUsageProof", true, true},
    MethodAccess{"tessera.v1.BillingService/RequestPayout", false, true},
    MethodAccess{"tessera.v1.BillingService/ListPayouts", false, true},
    MethodAccess{"tessera.v1.BillingService/ApprovePayout", false, false},
    MethodAccess{"tessera.v1.BillingService/RejectPayout", false, false},
    MethodAccess{"tessera.v1.BillingService/GetUsageReport", true, true},
    MethodAccess{"tessera.v1.BillingService/ExportUsage", false, false},
    MethodAccess{"tessera.v1.BillingService/GetRevenue", false, false},
    // Merkle roots are public commitments: anyone holding a report checks it against them.
    MethodAccess{"tessera.v1.BillingService/ListSettlementBatches", true, true},
    MethodAccess{"tessera.v1.AdminService/CreateAccount", false, false},
    MethodAccess{"tessera.v1.AdminService/ListAccounts", false, false},
    MethodAccess{"tessera.v1.AdminService/CreateApiKey", false, false},
    MethodAccess{"tessera.v1.AdminService/ListApiKeys", false, false},
    MethodAccess{"tessera.v1.AdminService/RevokeApiKey", false, false},
    MethodAccess{"tessera.v1.AdminService/ListFraudSignals", false, false},
    MethodAccess{"tessera.v1.AdminService/GetWorkerTrust", false, false},
    MethodAccess{"tessera.v1.AdminService/QuarantineWorker", false, false},
    MethodAccess{"tessera.v1.AdminService/ReleaseWorker", false, false},
    // A provider's workers, under a live lease on the job (the handler checks it).
    MethodAccess{"tessera.v1.ArtifactService/UploadArtifact", true, true},
    MethodAccess{"tessera.v1.ArtifactService/DownloadArtifact", true, true},
    MethodAccess{"tessera.v1.ArtifactService/GetArtifact", true, false},
    MethodAccess{"tessera.v1.ArtifactService/ListArtifacts", true, false},
    MethodAccess{"tessera.v1.ArtifactService/DeleteArtifact", true, false},
    MethodAccess{"tessera.v1.ArtifactService/GetJobCheckpoint", true, true},
    // A worker's lines, under its lease (the handler checks it); a customer reads its own jobs'.
    MethodAccess{"tessera.v1.LogService/AppendJobLog", false, true},
    MethodAccess{"tessera.v1.LogService/ReadJobLog", true, false},
};

}  // namespace

bool RoleMayCall(v1::Role role, absl::string_view method) {
  if (role == v1::ROLE_ADMIN) return true;
  for (const MethodAccess& m : kPolicy) {
    if (m.method == method) return (role == v1::ROLE_CUSTOMER && m.customer) || (role == v1::ROLE_PROVIDER && m.provider);
  }
  return false;
}

std::vector<std::string> PolicyMethods() {
  std::vector<std::string> out;
  for (const MethodAccess& m : kPolicy) out.emplace_back(m.method);
  return out;
}

absl::Status RequireAccount(const Caller& caller, absl::string_view field, absl::string_view account) {
  if (caller.admin() || account == caller.account) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("this API key acts for account '", caller.account, "', not for ", field, " '", account, "'"));
}

absl::StatusOr<std::string> ScopeAccountFilter(const Caller& caller, absl::string_view field, absl::string_view requested) {
  if (caller.admin()) return std::string(requested);
  if (requested.empty()) return caller.account;
  if (absl::Status s = RequireAccount(caller, field, requested); !s.ok()) return s;
  return caller.account;
}

bool MaySee(const Caller& caller, absl::string_view owner_account) { return caller.admin() || owner_account == caller.account; }

}  // namespace tessera::auth
