#include "services/scheduler/trust_repository.h"

#include <arpa/inet.h>

#include "absl/strings/str_cat.h"
#include "services/common/enum_names.h"
#include "services/common/job_state_machine.h"
#include "services/common/pagination.h"
#include "services/scheduler/challenge_repository.h"
#include "services/store/notifications.h"

namespace tessera::scheduler_host {
namespace {

// Per-signal weights of the reputation formula (see the header), as SQL.
constexpr char kSignalWeight[] =
    "CASE kind WHEN 'DUPLICATE_GPU_UUID' THEN 2.0 WHEN 'ADMIN_QUARANTINE' THEN 2.0 WHEN 'BAD_SIGNATURE' THEN 1.0"
    " WHEN 'BAD_RESULT_SIGNATURE' THEN 1.0 WHEN 'REPLAYED_REPORT' THEN 1.0 WHEN 'OVER_CLAIM' THEN 1.0"
    " WHEN 'CHALLENGE_FAILED' THEN 2.0 WHEN 'SUBNET_CROWD' THEN 0.75 WHEN 'FUTURE_DATED' THEN 0.5 WHEN 'UNLEASED_REPORT' THEN 0.5 WHEN 'PROVIDER_FLEET' THEN 0.25"
    " ELSE 0 END";
constexpr double kAnomalyThreshold = 3.5;
constexpr int kMinWorkersPerModel = 5;
// A worker's telemetry counts once it has this much metered GPU time (a minute).
constexpr int64_t kMinMeteredGpuMs = 60'000;

// Flags every worker of a crowd that has no such signal in the last 30 days.
void FlagCrowd(pqxx::work& tx, const char* kind, const std::string& where, const std::string& value, int count, int limit,
               const std::string& what) {
  tx.exec_params0(absl::StrCat("INSERT INTO fraud_signals (worker_id, kind, evidence)"
                               " SELECT w.worker_id, $2, $3 FROM workers w WHERE ",
                               where,
                               " AND w.state NOT IN ('QUARANTINED', 'RETIRED') AND NOT EXISTS (SELECT 1 FROM fraud_signals f"
                               "   WHERE f.worker_id = w.worker_id AND f.kind = $2 AND f.created_at > now() - interval '30 days')"),
                  value, kind, absl::StrCat(count, " workers ", what, " (more than ", limit, ")"));
}

v1::FraudSignal SignalFromRow(const pqxx::row& r) {
  v1::FraudSignal s;
  s.set_signal_id(r[0].as<int64_t>());
  s.set_worker_id(r[1].as<int64_t>());
  s.set_kind(ParseStoredName<v1::FraudSignalKind>(r[2].as<std::string>()).value_or(v1::FRAUD_SIGNAL_KIND_UNSPECIFIED));
  s.set_job_id(r[3].as<int64_t>());
  s.set_attempt(r[4].as<uint32_t>());
  s.set_seq(r[5].as<uint64_t>());
  s.set_evidence(r[6].as<std::string>());
  s.set_created_at_ms(r[7].as<int64_t>());
  return s;
}

constexpr char kSignalColumns[] =
    "signal_id, worker_id, kind, coalesce(job_id, 0), coalesce(attempt, 0), coalesce(seq, 0), evidence,"
    " (extract(epoch FROM created_at) * 1000)::bigint";

absl::StatusOr<v1::WorkerTrust> TrustOf(pqxx::work& tx, int64_t worker_id) {
  const pqxx::result w = tx.exec_params(
      "SELECT a.name, w.state, w.reputation, w.anomaly_score, w.quarantine_reason, coalesce(w.registered_subnet::text, ''),"
      " count(*) FILTER (WHERE s.end_reason = 'succeeded'), count(*) FILTER (WHERE s.end_reason = 'failed'),"
      " count(*) FILTER (WHERE s.end_reason LIKE 'lease expired%' OR s.end_reason LIKE 'worker restarted%'),"
      " coalesce((extract(epoch FROM w.verified_at) * 1000)::bigint, 0)"
      " FROM workers w JOIN accounts a ON a.account_id = w.provider_account_id"
      " LEFT JOIN assignments s ON s.worker_id = w.worker_id AND s.state = 'ENDED' AND s.ended_at > now() - interval '30 days'"
      " WHERE w.worker_id = $1 GROUP BY a.name, w.worker_id",
      worker_id);
  if (w.empty()) return absl::NotFoundError(absl::StrCat("worker ", worker_id, " is not registered"));
  v1::WorkerTrust trust;
  trust.set_worker_id(worker_id);
  trust.set_provider_account(w[0][0].as<std::string>());
  trust.set_state(ParseWorkerState(w[0][1].as<std::string>()));
  trust.set_reputation(w[0][2].as<int32_t>());
  trust.set_anomaly_score(w[0][3].as<float>());
  trust.set_quarantine_reason(w[0][4].as<std::string>());
  trust.set_registered_subnet(w[0][5].as<std::string>());
  trust.set_leases_succeeded(w[0][6].as<uint32_t>());
  trust.set_leases_failed(w[0][7].as<uint32_t>());
  trust.set_leases_lost(w[0][8].as<uint32_t>());
  trust.set_verified_at_ms(w[0][9].as<int64_t>());
  for (const pqxx::row& r : tx.exec_params(absl::StrCat("SELECT ", kSignalColumns,
                                                        " FROM fraud_signals WHERE worker_id = $1 ORDER BY signal_id DESC LIMIT 50"),
                                           worker_id)) {
    *trust.add_signals() = SignalFromRow(r);
  }
  for (v1::GpuChallengeRecord& c : LatestChallenges(tx, worker_id, 10)) *trust.add_challenges() = std::move(c);
  return trust;
}

}  // namespace

std::string SubnetOfPeer(const std::string& peer) {
  std::string host;
  int bits = 0;
  if (peer.rfind("ipv4:", 0) == 0) {
    host = peer.substr(5, peer.rfind(':') - 5);
    bits = 24;
  } else if (peer.rfind("ipv6:[", 0) == 0) {
    host = peer.substr(6, peer.find(']') - 6);
    bits = 64;
  } else {
    return "";
  }
  unsigned char address[16] = {};
  if (inet_pton(bits == 24 ? AF_INET : AF_INET6, host.c_str(), address) != 1) return "";
  return absl::StrCat(host, "/", bits);  // the database masks it: network(cidr)
}

bool FlagRegistration(pqxx::work& tx, int64_t worker_id, int64_t provider_account_id, const std::vector<std::string>& uuids,
                      const std::string& subnet, const TrustLimits& limits) {
  bool quarantined = false;
  const pqxx::result clones = tx.exec_params(
      // A retired worker's GPUs are released: the same machine registered again is no clone.
      "SELECT DISTINCT ON (g.worker_id) g.worker_id, g.uuid FROM gpus g JOIN workers w USING (worker_id)"
      " WHERE g.uuid = ANY($1::text[]) AND g.worker_id <> $2 AND w.state <> 'RETIRED' ORDER BY g.worker_id",
      store::ArrayLiteral(uuids), worker_id);
  for (const pqxx::row& c : clones) {
    const int64_t other = c[0].as<int64_t>();
    const std::string uuid = c[1].as<std::string>();
    const std::string reason = absl::StrCat("GPU ", uuid, " is also registered to worker ", other);
    tx.exec_params0(
        "INSERT INTO fraud_signals (worker_id, kind, evidence) VALUES ($1, 'DUPLICATE_GPU_UUID', $2), ($3, 'DUPLICATE_GPU_UUID', $4)",
        worker_id, reason, other, absl::StrCat("GPU ", uuid, " is also claimed by worker ", worker_id, ", registered later"));
    if (!quarantined) {
      tx.exec_params0("UPDATE workers SET state = 'QUARANTINED', quarantine_reason = $2 WHERE worker_id = $1", worker_id, reason);
      tx.exec_params0("INSERT INTO audit_log (action, subject, detail) VALUES ('worker.quarantine', $1, $2)",
                      absl::StrCat("worker/", worker_id), reason);
      quarantined = true;
    }
  }
  if (!subnet.empty()) {
    tx.exec_params0("UPDATE workers SET registered_subnet = network($2::inet) WHERE worker_id = $1", worker_id, subnet);
    const int crowd = tx.exec_params1(
        "SELECT count(*) FROM workers WHERE registered_subnet = network($1::inet) AND state NOT IN ('QUARANTINED', 'RETIRED')",
        subnet)[0].as<int>();
    if (crowd > limits.max_workers_per_subnet) {
      FlagCrowd(tx, "SUBNET_CROWD", "w.registered_subnet = network($1::inet)", subnet, crowd, limits.max_workers_per_subnet,
                absl::StrCat("registered from ", subnet));
    }
  }
  const int fleet = tx.exec_params1("SELECT count(*) FROM workers WHERE provider_account_id = $1 AND state NOT IN ('QUARANTINED', 'RETIRED')",
                                    provider_account_id)[0].as<int>();
  if (fleet > limits.max_workers_per_provider) {
    FlagCrowd(tx, "PROVIDER_FLEET", "w.provider_account_id = $1::bigint", std::to_string(provider_account_id), fleet,
              limits.max_workers_per_provider, "under one provider account");
  }
  return quarantined;
}

absl::StatusOr<std::vector<std::pair<int64_t, int32_t>>> TrustRepository::RefreshReputations() {
  return db_.Transact("refresh reputations", [&](pqxx::work& tx) -> absl::StatusOr<std::vector<std::pair<int64_t, int32_t>>> {
    const pqxx::result rows = tx.exec_params(absl::StrCat(
        "WITH outcomes AS (SELECT worker_id, count(*) FILTER (WHERE end_reason = 'succeeded') AS s,"
        "   count(*) FILTER (WHERE end_reason = 'failed') AS f,"
        "   count(*) FILTER (WHERE end_reason LIKE 'lease expired%' OR end_reason LIKE 'worker restarted%') AS l"
        "   FROM assignments WHERE state = 'ENDED' AND ended_at > now() - interval '30 days' GROUP BY worker_id),"
        " penalty AS (SELECT worker_id, sum(", kSignalWeight, ") AS p FROM fraud_signals"
        "   WHERE created_at > now() - interval '30 days' GROUP BY worker_id),"
        " telemetry AS (SELECT t.worker_id, (SELECT g.model FROM gpus g WHERE g.worker_id = t.worker_id ORDER BY g.gpu_index LIMIT 1)"
        "   AS model, sum(t.utilization_gpu_ms)::float8 / sum(t.metered_gpu_ms) AS util,"
        "   sum(t.energy_mj)::float8 / sum(t.metered_gpu_ms) AS energy"
        "   FROM lease_ingest t JOIN assignments a USING (job_id, attempt, worker_id)"
        "   WHERE a.created_at > now() - interval '30 days' GROUP BY t.worker_id HAVING sum(t.metered_gpu_ms) >= $1),"
        " medians AS (SELECT model, percentile_cont(0.5) WITHIN GROUP (ORDER BY util) AS util_median,"
        "   percentile_cont(0.5) WITHIN GROUP (ORDER BY energy) AS energy_median FROM telemetry GROUP BY model"
        "   HAVING count(*) >= $2),"
        " deviations AS (SELECT t.worker_id, t.model, t.util, t.energy, abs(t.util - m.util_median) AS du,"
        "   abs(t.energy - m.energy_median) AS de FROM telemetry t JOIN medians m USING (model)),"
        " mads AS (SELECT model, percentile_cont(0.5) WITHIN GROUP (ORDER BY du) AS util_mad,"
        "   percentile_cont(0.5) WITHIN GROUP (ORDER BY de) AS energy_mad FROM deviations GROUP BY model),"
        " anomaly AS (SELECT d.worker_id, d.model, d.util, d.energy,"
        "   greatest(CASE WHEN m.util_mad > 0 THEN 0.6745 * d.du / m.util_mad ELSE 0 END,"
        "            CASE WHEN m.energy_mad > 0 THEN 0.6745 * d.de / m.energy_mad ELSE 0 END) AS a"
        "   FROM deviations d JOIN mads m USING (model)),"
        " scored AS (SELECT w.worker_id, w.anomaly_score AS old_a, coalesce(an.a, 0) AS a, an.model, an.util, an.energy,"
        "   CASE WHEN w.state = 'QUARANTINED' THEN 0 ELSE round(1000.0 * (coalesce(o.s, 0) + 1.0)"
        "     / (coalesce(o.s, 0) + coalesce(o.f, 0) + coalesce(o.l, 0) + 2.0) * exp(-coalesce(p.p, 0))"
        "     * least(1.0, $3 / greatest(coalesce(an.a, 0), 1e-9)))::int END AS rep"
        "   FROM workers w LEFT JOIN outcomes o USING (worker_id) LEFT JOIN penalty p USING (worker_id)"
        "   LEFT JOIN anomaly an USING (worker_id)),"
        " changed AS (UPDATE workers w SET reputation = s.rep, anomaly_score = s.a FROM scored s WHERE w.worker_id = s.worker_id"
        "   AND (w.reputation <> s.rep OR abs(w.anomaly_score - s.a) > 0.01)"
        "   RETURNING w.worker_id, w.reputation, s.old_a, s.a, s.model, s.util, s.energy),"
        " flagged AS (INSERT INTO fraud_signals (worker_id, kind, evidence) SELECT worker_id, 'TELEMETRY_ANOMALY',"
        "   format('telemetry unlike other %s workers: mean utilization %s%%, %s mJ per GPU-ms (robust z %s)', model,"
        "     round((util * 100)::numeric, 1), round(energy::numeric, 3), round(a::numeric, 1))"
        "   FROM changed WHERE a > $3 AND old_a <= $3)"
        " SELECT worker_id, reputation FROM changed"),
        kMinMeteredGpuMs, kMinWorkersPerModel, kAnomalyThreshold);
    std::vector<std::pair<int64_t, int32_t>> out;
    for (const pqxx::row& r : rows) out.emplace_back(r[0].as<int64_t>(), r[1].as<int32_t>());
    return out;
  });
}

absl::StatusOr<v1::ListFraudSignalsResponse> TrustRepository::ListSignals(const v1::ListFraudSignalsRequest& request) {
  if (!v1::FraudSignalKind_IsValid(request.kind())) {
    return absl::InvalidArgumentError(absl::StrCat("kind: unknown fraud signal kind ", request.kind()));
  }
  const std::string kind = request.kind() == v1::FRAUD_SIGNAL_KIND_UNSPECIFIED ? "" : StoredName(request.kind());
  const std::string filters = absl::StrCat(request.worker_id(), "|", kind);
  const PageQuery query{.list = "fraud_signals", .filters = filters};
  absl::StatusOr<Page> page = ParsePage(query, request.page_token(), request.page_size());
  if (!page.ok()) return page.status();
  return db_.Transact("list fraud signals", [&](pqxx::work& tx) -> absl::StatusOr<v1::ListFraudSignalsResponse> {
    v1::ListFraudSignalsResponse response;
    const pqxx::result rows = tx.exec_params(
        absl::StrCat("SELECT ", kSignalColumns,
                     " FROM fraud_signals WHERE ($1 = 0 OR worker_id = $1) AND ($2 = '' OR kind = $2) AND signal_id < $3"
                     " ORDER BY signal_id DESC LIMIT $4"),
        request.worker_id(), kind, page->before_id(), page->size + 1);
    for (pqxx::result::size_type i = 0; i < rows.size() && i < page->size; ++i) *response.add_signals() = SignalFromRow(rows[i]);
    if (rows.size() > page->size) response.set_next_page_token(NextPageToken(query, response.signals().rbegin()->signal_id()));
    return response;
  });
}

absl::StatusOr<v1::WorkerTrust> TrustRepository::GetWorkerTrust(int64_t worker_id) {
  return db_.Transact("worker trust", [&](pqxx::work& tx) { return TrustOf(tx, worker_id); });
}

absl::StatusOr<v1::WorkerTrust> TrustRepository::Quarantine(int64_t worker_id, const std::string& reason, const std::string& actor_key_id) {
  return db_.Transact("quarantine worker", [&](pqxx::work& tx) -> absl::StatusOr<v1::WorkerTrust> {
    const pqxx::result w = tx.exec_params(
        "UPDATE workers SET state = 'QUARANTINED', quarantine_reason = $2, reputation = 0 WHERE worker_id = $1 RETURNING worker_id",
        worker_id, reason);
    if (w.empty()) return absl::NotFoundError(absl::StrCat("worker ", worker_id, " is not registered"));
    tx.exec_params0("INSERT INTO fraud_signals (worker_id, kind, evidence) VALUES ($1, 'ADMIN_QUARANTINE', $2)", worker_id,
                    absl::StrCat("quarantined by an operator: ", reason));
    tx.exec_params0("INSERT INTO audit_log (actor_key_id, action, subject, detail) VALUES (NULLIF($1, ''), 'worker.quarantine', $2, $3)",
                    actor_key_id, absl::StrCat("worker/", worker_id), reason);
    store::Notify(tx, store::WorkerQuarantined{.worker_id = worker_id});
    return TrustOf(tx, worker_id);
  });
}

absl::StatusOr<v1::WorkerTrust> TrustRepository::Release(int64_t worker_id, const std::string& reason, const std::string& actor_key_id) {
  return db_.Transact("release worker", [&](pqxx::work& tx) -> absl::StatusOr<v1::WorkerTrust> {
    const pqxx::result w = tx.exec_params("SELECT state FROM workers WHERE worker_id = $1 FOR UPDATE", worker_id);
    if (w.empty()) return absl::NotFoundError(absl::StrCat("worker ", worker_id, " is not registered"));
    if (w[0][0].as<std::string>() != "QUARANTINED") {
      return absl::FailedPreconditionError(absl::StrCat("worker ", worker_id, " is not quarantined (it is ", w[0][0].as<std::string>(), ")"));
    }
    // The operator vouches for the hardware: a worker quarantined by a failed challenge is not held
    // at PENDING_VERIFICATION again (its random re-checks go on).
    tx.exec_params0("UPDATE workers SET state = 'OFFLINE', quarantine_reason = '', verified_at = coalesce(verified_at, now())"
                    " WHERE worker_id = $1",
                    worker_id);
    tx.exec_params0("INSERT INTO audit_log (actor_key_id, action, subject, detail) VALUES (NULLIF($1, ''), 'worker.release', $2, $3)",
                    actor_key_id, absl::StrCat("worker/", worker_id), reason);
    return TrustOf(tx, worker_id);
  });
}

}  // namespace tessera::scheduler_host
