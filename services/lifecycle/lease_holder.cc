#include "services/lifecycle/lease_holder.h"

#include "absl/strings/str_cat.h"

namespace tessera::lifecycle {

absl::StatusOr<HeldLease> LeaseHeldBy(pqxx::work& tx, int64_t provider_account_id, const v1::JobLease& lease,
                                      std::chrono::seconds ended_within) {
  const pqxx::result r = tx.exec_params(
      "SELECT c.name, j.spec, a.node_rank FROM assignments a JOIN workers w ON w.worker_id = a.worker_id"
      " JOIN jobs j ON j.job_id = a.job_id JOIN accounts c ON c.account_id = j.account_id"
      " WHERE a.job_id = $1 AND a.attempt = $2 AND a.worker_id = $3 AND w.provider_account_id = $4"
      "   AND (a.state = 'LIVE' OR ($5 > 0 AND a.ended_at > now() - make_interval(secs => $5)))",
      lease.job_id(), static_cast<int64_t>(lease.attempt()), lease.worker_id(), provider_account_id,
      static_cast<double>(ended_within.count()));
  if (r.empty()) {
    return absl::PermissionDeniedError(absl::StrCat("worker ", lease.worker_id(), " of this provider holds no live lease on job ",
                                                    lease.job_id(), " attempt ", lease.attempt()));
  }
  HeldLease held;
  held.account = r[0][0].as<std::string>();
  held.spec.ParseFromString(pqxx::binarystring(r[0][1]).str());
  held.node_rank = r[0][2].as<uint32_t>();
  return held;
}

}  // namespace tessera::lifecycle
