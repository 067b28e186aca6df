// Fraud signals and reputation in PostgreSQL: the checks made when a machine registers (a GPU UUID
// another worker already has, crowds of workers behind one network or one provider), the periodic
// reputation refresh, and the operator's view and hand (quarantine, release), each change with its
// audit row in the same transaction.
//
// Reputation, in [0, 1] and stored as 0..1000 (Worker.reputation), is recomputed from the store of
// record every refresh, over the last 30 days:
//
//   r = (S + 1) / (S + F + L + 2)  ×  exp(−Σ w(signal))  ×  min(1, 3.5 / a)
//
//   S, F, L  leases that ended succeeded, failed, or lost (expired, or the worker restarted without
//            the job); the +1/+2 is a uniform prior, so a new worker starts at 0.5 (500).
//   w        per signal kind: DUPLICATE_GPU_UUID 2, ADMIN_QUARANTINE 2, CHALLENGE_FAILED 2, BAD_SIGNATURE 1,
//            BAD_RESULT_SIGNATURE 1, REPLAYED_REPORT 1, OVER_CLAIM 1, SUBNET_CROWD 0.75,
//            FUTURE_DATED 0.5, UNLEASED_REPORT 0.5, PROVIDER_FLEET 0.25, TELEMETRY_ANOMALY 0 (the
//            anomaly factor already counts it).
//   a        the worker's anomaly score: the larger robust z-score of its GPU-ms-weighted mean
//            utilization and of its energy per GPU-ms, each against the workers of its GPU model,
//            z = 0.6745 · |x − median| / MAD. It needs no training data: with fewer than 5 metered
//            workers of a model, or no spread (MAD 0), it is 0. A worker crossing a = 3.5 gets one
//            TELEMETRY_ANOMALY signal with the figures.
// A quarantined worker's reputation is 0. The matcher uses reputation for jobs' min_reputation and
// as the tie-break after the ask.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "services/store/database.h"
#include "tessera/v1/admin.pb.h"

namespace tessera::scheduler_host {

struct TrustLimits {
  // More live (not quarantined) workers than this behind one /24 (IPv6: /64) flags all of them.
  int max_workers_per_subnet = 32;
  // More workers than this under one provider account flags all of them.
  int max_workers_per_provider = 1'024;
};

// The /24 (IPv4) or /64 (IPv6) of a gRPC peer ("ipv4:10.1.2.3:5555", "ipv6:[::1]:5555"); empty
// when the peer is not an IP address.
std::string SubnetOfPeer(const std::string& peer);

// In the registration transaction of `worker_id`: a GPU UUID another worker already holds
// quarantines the new worker and signals both; crowds are flagged. Returns whether the worker was
// quarantined.
bool FlagRegistration(pqxx::work& tx, int64_t worker_id, int64_t provider_account_id, const std::vector<std::string>& uuids,
                      const std::string& subnet, const TrustLimits& limits);

class TrustRepository {
 public:
  explicit TrustRepository(store::Database& db) : db_(db) {}

  // Recomputes every worker's anomaly score and reputation (formula above); returns the workers
  // whose reputation changed, with the new value.
  absl::StatusOr<std::vector<std::pair<int64_t, int32_t>>> RefreshReputations();

  absl::StatusOr<v1::ListFraudSignalsResponse> ListSignals(const v1::ListFraudSignalsRequest& request);
  absl::StatusOr<v1::WorkerTrust> GetWorkerTrust(int64_t worker_id);
  // QUARANTINED with the reason (and an ADMIN_QUARANTINE signal); NOTIFY tessera_quarantine makes
  // the scheduler close its stream. Its leases then expire and its jobs run elsewhere.
  absl::StatusOr<v1::WorkerTrust> Quarantine(int64_t worker_id, const std::string& reason, const std::string& actor_key_id);
  // Lifts a quarantine: the worker is OFFLINE until it connects again, and counts as verified (the
  // operator vouches for its hardware). FAILED_PRECONDITION when it is not quarantined.
  absl::StatusOr<v1::WorkerTrust> Release(int64_t worker_id, const std::string& reason, const std::string& actor_key_id);

 private:
  store::Database& db_;
};

}  // namespace tessera::scheduler_host
