#include "services/scheduler/usage_ingest.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "services/store/statement.h"
#include "services/store/notifications.h"

namespace tessera::scheduler_host {
namespace {

using store::ArrayLiteral;
using store::Hex;

using Content = ReportContent;

// The leases of `usage` that `leases` does not hold yet, read from the store; returns the
// database's clock (the one leases' start times are on).
int64_t ReadLeases(pqxx::work& tx, const std::vector<UsageIn>& usage, std::map<LeaseKey, IngestLease>& leases) {
  std::vector<int64_t> jobs, attempts, workers;
  for (const UsageIn& u : usage) {
    auto [it, added] = leases.try_emplace(LeaseKeyOf(u));
    if (!added) continue;
    jobs.push_back(u.report.job_id());
    attempts.push_back(u.report.attempt());
    workers.push_back(u.worker_id);
  }
  const int64_t now_ms = tx.exec1("SELECT (extract(epoch FROM now()) * 1000)::bigint")[0].as<int64_t>();
  if (jobs.empty()) return now_ms;
  for (const pqxx::row& r : store::Exec(tx, {"ingest_read_leases",
           "SELECT m.job_id, m.attempt, m.worker_id, (extract(epoch FROM a.created_at) * 1000)::bigint, cardinality(a.gpu_indexes),"
           " coalesce(t.last_seq, 0), coalesce(t.gpu_ms_reported, 0), coalesce(t.utilization_gpu_ms, 0), coalesce(t.energy_mj, 0),"
           " coalesce(t.metered_gpu_ms, 0)"
           " FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS m(job_id, attempt, worker_id)"
           " JOIN assignments a ON a.job_id = m.job_id AND a.attempt = m.attempt AND a.worker_id = m.worker_id"
           " LEFT JOIN lease_ingest t ON t.job_id = m.job_id AND t.attempt = m.attempt AND t.worker_id = m.worker_id"},
           ArrayLiteral(jobs), ArrayLiteral(attempts), ArrayLiteral(workers))) {
    IngestLease& lease = leases[{r[0].as<int64_t>(), r[1].as<uint32_t>(), r[2].as<int64_t>()}];
    lease = {.exists = true, .created_at_ms = r[3].as<int64_t>(), .gpus = r[4].as<int64_t>(),
             .totals = {.last_seq = r[5].as<int64_t>(), .gpu_ms_reported = r[6].as<int64_t>(), .utilization_gpu_ms = r[7].as<int64_t>(),
                        .energy_mj = r[8].as<int64_t>(), .metered_gpu_ms = r[9].as<int64_t>()}};
  }
  return now_ms;
}

// What is stored for the reports whose seq is not after their lease's last: a resend, or a replay.
std::map<ReportKey, Content> ReadStored(pqxx::work& tx, const std::vector<UsageIn>& usage,
                                        const std::map<LeaseKey, IngestLease>& leases) {
  std::vector<int64_t> jobs, attempts, workers, seqs;
  for (const UsageIn& u : usage) {
    const IngestLease& lease = leases.at(LeaseKeyOf(u));
    if (!lease.exists || SeqOf(u.report) > lease.totals.last_seq) continue;
    jobs.push_back(u.report.job_id());
    attempts.push_back(u.report.attempt());
    workers.push_back(u.worker_id);
    seqs.push_back(SeqOf(u.report));
  }
  std::map<ReportKey, Content> stored;
  if (jobs.empty()) return stored;
  for (const pqxx::row& r : store::Exec(tx, {"ingest_read_stored",
           "SELECT u.job_id, u.attempt, u.worker_id, u.seq, coalesce(u.signature, ''), u.gpu_ms"
           " FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[]) AS k(job_id, attempt, worker_id, seq)"
           " JOIN usage_reports u ON u.job_id = k.job_id AND u.attempt = k.attempt AND u.worker_id = k.worker_id AND u.seq = k.seq"},
           ArrayLiteral(jobs), ArrayLiteral(attempts), ArrayLiteral(workers), ArrayLiteral(seqs))) {
    stored[{r[0].as<int64_t>(), r[1].as<uint32_t>(), r[2].as<int64_t>(), r[3].as<uint64_t>()}] = {pqxx::binarystring(r[4]).str(),
                                                                                                 r[5].as<int64_t>()};
  }
  return stored;
}

// One statement: the new reports of live leases inserted, those leases' records written, under a
// share lock on each live lease. Returns the leases that were live.
std::set<LeaseKey> InsertOnLiveLeases(pqxx::work& tx, const std::vector<const UsageIn*>& reports,
                                                   const std::map<LeaseKey, IngestTotals>& moved) {
  std::vector<int64_t> jobs, attempts, seqs, workers, gpu_ms, measured, utilization, memory, energy, cpu_ms, host_memory;
  std::vector<std::string> signatures;
  for (const UsageIn* u : reports) {
    const v1::UsageReport& r = u->report;
    jobs.push_back(r.job_id());
    attempts.push_back(r.attempt());
    seqs.push_back(SeqOf(r));
    workers.push_back(u->worker_id);
    gpu_ms.push_back(r.gpu_ms());
    measured.push_back(r.measured_at_ms());
    // Clamped into the columns' ranges: informational figures never make a report unstorable.
    utilization.push_back(std::min<int64_t>(r.avg_gpu_utilization_ppm(), 1'000'000));
    memory.push_back(static_cast<int64_t>(std::min<uint64_t>(r.peak_gpu_memory_mib(), INT64_MAX)));
    energy.push_back(static_cast<int64_t>(std::min<uint64_t>(r.energy_mj(), INT64_MAX)));
    cpu_ms.push_back(std::max<int64_t>(r.cpu_ms(), 0));
    host_memory.push_back(static_cast<int64_t>(std::min<uint64_t>(r.peak_memory_mib(), INT64_MAX)));
    signatures.push_back(Hex(r.signature()));
  }
  std::vector<int64_t> l_jobs, l_attempts, l_workers, last_seqs, reported, utilization_ms, energies, metered;
  for (const auto& [key, t] : moved) {
    l_jobs.push_back(std::get<0>(key));
    l_attempts.push_back(std::get<1>(key));
    l_workers.push_back(std::get<2>(key));
    last_seqs.push_back(t.last_seq);
    reported.push_back(t.gpu_ms_reported);
    utilization_ms.push_back(t.utilization_gpu_ms);
    energies.push_back(t.energy_mj);
    metered.push_back(t.metered_gpu_ms);
  }
  std::set<LeaseKey> live;
  for (const pqxx::row& r : store::Exec(tx, {"ingest_insert",
           "WITH input AS (SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],"
           "   $7::int[], $8::bigint[], $9::bigint[], $10::text[], $19::bigint[], $20::bigint[])"
           "   AS t(job_id, attempt, seq, worker_id, gpu_ms, measured_at_ms, utilization, memory, energy, sig, cpu_ms, host_memory)),"
           " leases AS (SELECT * FROM unnest($11::bigint[], $12::int[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[],"
           "   $17::bigint[], $18::bigint[])"
           "   AS l(job_id, attempt, worker_id, last_seq, gpu_ms_reported, utilization_gpu_ms, energy_mj, metered_gpu_ms)),"
           " live AS (SELECT l.* FROM leases l JOIN assignments a ON a.job_id = l.job_id AND a.attempt = l.attempt"
           "   AND a.worker_id = l.worker_id AND a.state = 'LIVE' FOR SHARE OF a),"
           " inserted AS (INSERT INTO usage_reports (job_id, attempt, seq, worker_id, gpu_ms, measured_at_ms, avg_gpu_utilization_ppm,"
           "   peak_gpu_memory_mib, energy_mj, signature, cpu_ms, peak_memory_mib)"
           "   SELECT i.job_id, i.attempt, i.seq, i.worker_id, i.gpu_ms, i.measured_at_ms, i.utilization, i.memory, i.energy,"
           "   NULLIF(decode(i.sig, 'hex'), ''), i.cpu_ms, i.host_memory FROM input i JOIN live v USING (job_id, attempt, worker_id) ON CONFLICT DO NOTHING),"
           " recorded AS (INSERT INTO lease_ingest SELECT * FROM live ON CONFLICT (job_id, attempt, worker_id) DO UPDATE"
           "   SET last_seq = EXCLUDED.last_seq, gpu_ms_reported = EXCLUDED.gpu_ms_reported,"
           "   utilization_gpu_ms = EXCLUDED.utilization_gpu_ms, energy_mj = EXCLUDED.energy_mj, metered_gpu_ms = EXCLUDED.metered_gpu_ms)"
           " SELECT job_id, attempt, worker_id FROM live"},
           ArrayLiteral(jobs), ArrayLiteral(attempts), ArrayLiteral(seqs), ArrayLiteral(workers), ArrayLiteral(gpu_ms),
           ArrayLiteral(measured), ArrayLiteral(utilization), ArrayLiteral(memory), ArrayLiteral(energy), ArrayLiteral(signatures),
           ArrayLiteral(l_jobs), ArrayLiteral(l_attempts), ArrayLiteral(l_workers), ArrayLiteral(last_seqs), ArrayLiteral(reported),
           ArrayLiteral(utilization_ms), ArrayLiteral(energies), ArrayLiteral(metered), ArrayLiteral(cpu_ms),
           ArrayLiteral(host_memory))) {
    live.insert({r[0].as<int64_t>(), r[1].as<uint32_t>(), r[2].as<int64_t>()});
  }
  return live;
}

}  // namespace

void UsageIngest::Forget() {
  std::lock_guard lock(mu_);
  leases_.clear();
}

absl::StatusOr<std::vector<UsageOutcome>> UsageIngest::Ingest(const std::vector<UsageIn>& usage) {
  std::map<LeaseKey, IngestLease> known;
  {
    std::lock_guard lock(mu_);
    for (const UsageIn& u : usage) {
      if (auto it = leases_.find(LeaseKeyOf(u)); it != leases_.end()) known.emplace(it->first, it->second);
    }
  }
  std::map<LeaseKey, IngestLease> remember;  // what the committed batch leaves each existing lease at
  std::set<LeaseKey> ended;             // leases found no longer live
  absl::StatusOr<std::vector<UsageOutcome>> result =
      db_.Transact("ingest usage", [&](pqxx::work& tx) -> absl::StatusOr<std::vector<UsageOutcome>> {
        std::map<LeaseKey, IngestLease> leases = known;
        const int64_t now_ms = ReadLeases(tx, usage, leases);
        const std::map<ReportKey, Content> stored = ReadStored(tx, usage, leases);
        std::map<LeaseKey, IngestTotals> moved;
        std::map<ReportKey, Content> accepted;
        std::vector<const UsageIn*> candidates;
        std::vector<size_t> candidate_index;
        std::vector<FraudSignal> signals;
        std::vector<UsageOutcome> out;
        for (const UsageIn& u : usage) {
          const v1::UsageReport& r = u.report;
          const IngestLease& lease = leases.at(LeaseKeyOf(u));
          IngestTotals& totals = moved.try_emplace(LeaseKeyOf(u), lease.totals).first->second;
          std::string reason;
          FraudSignal signal;
          const Verdict verdict = ScreenReport(u, lease, totals, now_ms, stored, accepted, reason, signal);
          out.push_back({.job_id = r.job_id(), .attempt = r.attempt(), .seq = r.seq(), .stored = verdict != Verdict::kRefused,
                         .reason = reason});
          if (!signal.kind.empty()) signals.push_back(std::move(signal));
          if (verdict != Verdict::kNew) continue;
          accepted[ReportKeyOf(u)] = {r.signature(), r.gpu_ms()};
          totals.Add(r);
          candidates.push_back(&u);
          candidate_index.push_back(out.size() - 1);
        }
        std::set<LeaseKey> touched;
        for (const UsageIn* u : candidates) touched.insert(LeaseKeyOf(*u));
        std::erase_if(moved, [&](const auto& entry) { return !touched.contains(entry.first); });
        const std::set<LeaseKey> live = candidates.empty() ? std::set<LeaseKey>{} : InsertOnLiveLeases(tx, candidates, moved);
        for (size_t i = 0; i < candidates.size(); ++i) {
          if (live.contains(LeaseKeyOf(*candidates[i]))) continue;
          const v1::UsageReport& r = candidates[i]->report;
          out[candidate_index[i]].stored = false;  // the lease has ended (a late report): refused, no suspicion
          out[candidate_index[i]].reason = absl::StrCat("no live lease of job ", r.job_id(), " attempt ", r.attempt(), " on this worker");
        }
        if (!live.empty()) store::NotifySettle(tx);
        InsertFraudSignals(tx, signals);
        remember.clear();
        ended.clear();
        for (const auto& [key, lease] : leases) {
          if (moved.contains(key) && !live.contains(key)) ended.insert(key);
          if (!lease.exists || ended.contains(key)) continue;
          IngestLease kept = lease;
          if (auto m = moved.find(key); m != moved.end()) kept.totals = m->second;
          remember.emplace(key, kept);
        }
        return out;
      });
  if (!result.ok()) return result;
  std::lock_guard lock(mu_);
  if (leases_.size() + remember.size() > kMaxCachedLeases) leases_.clear();  // bounded; read again as needed
  for (auto& [key, lease] : remember) leases_[key] = std::move(lease);
  for (const LeaseKey& key : ended) leases_.erase(key);
  return result;
}

void InsertFraudSignals(pqxx::work& tx, const std::vector<FraudSignal>& signals) {
  if (signals.empty()) return;
  std::vector<int64_t> workers, jobs, attempts, seqs;
  std::vector<std::string> kinds, evidence;
  for (const FraudSignal& f : signals) {
    workers.push_back(f.worker_id);
    kinds.push_back(f.kind);
    jobs.push_back(f.job_id);
    attempts.push_back(f.attempt);
    seqs.push_back(static_cast<int64_t>(std::min<uint64_t>(f.seq, INT64_MAX)));
    evidence.push_back(f.evidence);
  }
  tx.exec_params0(
      "INSERT INTO fraud_signals (worker_id, kind, job_id, attempt, seq, evidence)"
      " SELECT w, k, NULLIF(j, 0), NULLIF(a, 0), NULLIF(s, 0), e"
      " FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::int[], $5::bigint[], $6::text[]) AS t(w, k, j, a, s, e)",
      ArrayLiteral(workers), ArrayLiteral(kinds), ArrayLiteral(jobs), ArrayLiteral(attempts), ArrayLiteral(seqs), ArrayLiteral(evidence));
}

}  // namespace tessera::scheduler_host
