#include "services/billing/settlement.h"

#include <spdlog/spdlog.h>

#include <map>

#include "services/billing/ledger.h"
#include "services/billing/settlement_plan.h"
#include "services/common/merkle.h"
#include "services/lifecycle/job_lifecycle.h"
#include "base/check.h"
#include "services/store/notifications.h"

namespace tessera::billing {
namespace {

using store::ArrayLiteral;

// Arbitrary constant naming the settlement lock among PostgreSQL advisory locks.
constexpr int64_t kSettlementLockKey = 0x7e55e7a5e771e;


// A job is warned that its escrow runs low once an attempt has used this share of max_duration_ms:
// the customer then has the rest of it to ExtendJob before the worker stops the job at the limit.
constexpr int64_t kEscrowLowPercent = 80;


int64_t FeesLedgerId(pqxx::work& tx) {
  return tx.exec("SELECT ledger_account_id FROM ledger_accounts l JOIN accounts a USING (account_id)"
                 " WHERE a.kind = 'platform' AND l.bucket = 'fees'")[0][0].as<int64_t>();
}

using Leases = std::map<LeaseKey, LeaseMoney>;

// Jobs whose attempt has now run kEscrowLowPercent of its limit get one ESCROW_LOW event (WatchJob
// streams it) per limit: an extension raises the limit and so re-arms the warning. Settled usage
// is the measure because it is what draws the escrow down; a lease's run time is its GPU-ms over
// its GPUs.
void WarnLowEscrow(pqxx::work& tx, std::map<int64_t, JobMoney>& jobs, const Leases& leases) {
  std::vector<int64_t> warn_jobs, warn_remaining;
  ComputeRemaining(jobs, leases);
  for (const auto& [job_id, job] : jobs) {
    if (job.warned_at_max_ms >= job.max_duration_ms || job.remaining_ms < 0) continue;
    if ((job.max_duration_ms - job.remaining_ms) * 100 < job.max_duration_ms * kEscrowLowPercent) continue;
    warn_jobs.push_back(job_id);
    warn_remaining.push_back(job.remaining_ms);
  }
  lifecycle::WarnEscrowLow(tx, warn_jobs, warn_remaining);
}

// Charges the batch of unsettled reports; returns how many were settled.
int64_t ChargeReports(pqxx::work& tx, int max_reports, std::vector<TransferSpec>& transfers) {
  const pqxx::result reports = tx.exec_params(
      "SELECT job_id, attempt, seq, gpu_ms, worker_id, measured_at_ms, ctid FROM usage_reports WHERE NOT settled"
      " ORDER BY job_id, attempt, worker_id, seq LIMIT $1",
      max_reports);
  if (reports.empty()) return 0;
  std::vector<int64_t> job_ids;
  for (const pqxx::row& r : reports) job_ids.push_back(r[0].as<int64_t>());

  std::map<int64_t, JobMoney> jobs;
  for (const pqxx::row& r : tx.exec_params(
           "SELECT j.job_id, j.hold_utok, j.charged_utok, j.fee_bps, l.ledger_account_id, j.max_duration_ms, j.escrow_warned_at_max_ms,"
           " j.attempt"
           " FROM jobs j"
           " JOIN ledger_accounts l ON l.account_id = j.account_id AND l.bucket = 'escrow'"
           " WHERE j.job_id = ANY($1::bigint[]) ORDER BY j.job_id FOR NO KEY UPDATE OF j",
           ArrayLiteral(job_ids))) {
    jobs[r[0].as<int64_t>()] = {.hold_utok = r[1].as<int64_t>(), .charged_utok = r[2].as<int64_t>(), .gpu_ms_added = 0,
                                .fee_bps = r[3].as<int64_t>(), .escrow_ledger_id = r[4].as<int64_t>(),
                                .attempt = r[7].as<int64_t>(), .max_duration_ms = r[5].as<int64_t>(), .warned_at_max_ms = r[6].as<int64_t>(), .remaining_ms = -1};
  }
  Leases assignments;
  for (const pqxx::row& r : tx.exec_params(
           "SELECT a.job_id, a.attempt, a.price_utok_per_gpu_hour, t.gpu_ms_total, t.charged_utok, t.fee_utok,"
           " t.usage_reports, l.ledger_account_id, a.worker_id, cardinality(a.gpu_indexes) FROM lease_totals t JOIN assignments a USING (job_id, attempt, worker_id)"
           " JOIN workers w ON w.worker_id = a.worker_id"
           " JOIN ledger_accounts l ON l.account_id = w.provider_account_id AND l.bucket = 'earnings'"
           " WHERE t.job_id = ANY($1::bigint[]) ORDER BY t.job_id, t.attempt, t.worker_id FOR NO KEY UPDATE OF t",
           ArrayLiteral(job_ids))) {
    assignments[{r[0].as<int64_t>(), r[1].as<int64_t>(), r[8].as<int64_t>()}] = {
        .price = r[2].as<int64_t>(), .gpus = std::max<int64_t>(1, r[9].as<int64_t>()), .gpu_ms_total = r[3].as<int64_t>(), .charged_utok = r[4].as<int64_t>(),
        .fee_utok = r[5].as<int64_t>(), .reports = r[6].as<int64_t>(), .earnings_ledger_id = r[7].as<int64_t>()};
  }

  std::vector<UnsettledReport> batch;
  std::vector<int64_t> r_job, r_seq, r_charge, r_fee;
  std::vector<std::string> r_tid;
  for (const pqxx::row& r : reports) {
    batch.push_back({.job_id = r[0].as<int64_t>(), .attempt = r[1].as<int64_t>(), .worker_id = r[4].as<int64_t>(),
                     .seq = r[2].as<int64_t>(), .gpu_ms = r[3].as<int64_t>(), .measured_at_ms = r[5].as<int64_t>()});
    r_tid.push_back(r[6].as<std::string>());
  }
  const BatchCharges charges = ChargeBatch(batch, jobs, assignments);
  for (size_t i = 0; i < batch.size(); ++i) {
    r_job.push_back(batch[i].job_id);
    r_seq.push_back(batch[i].seq);
    r_charge.push_back(charges.reports[i].charge_utok);
    r_fee.push_back(charges.reports[i].fee_utok);
  }
  const auto batch_id = tx.exec_params1(
      "INSERT INTO settlement_batches (merkle_root, reports, charged_utok, fee_utok) VALUES (decode($1, 'hex'), $2, $3, $4)"
      " RETURNING batch_id",
      ToHex(charges.merkle_root), static_cast<int64_t>(batch.size()), charges.charged_utok, charges.fee_utok)[0].as<int64_t>();
  // The money moves per lease and batch (the batch's reports are its references): one batch of
  // 10,000 reports over 1,000 leases posts 2,000 transfers, not 20,000. The batch commits as a
  // whole, so a retry finds its reports settled and posts nothing.
  for (TransferSpec& t : BatchTransfers(batch_id, FeesLedgerId(tx), jobs, assignments)) transfers.push_back(std::move(t));
  // Each report is updated where the SELECT above found it (its ctid: stable here, as only this
  // pass, under the settlement lock, updates reports). Left to itself the planner hash-joins the
  // batch against a sequential scan of every report ever stored, a pass that grows with history.
  tx.exec0("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off");
  const pqxx::result marked = tx.exec_params(
      "UPDATE usage_reports u SET settled = true, charge_utok = s.charge, fee_utok = s.fee, batch_id = $6, leaf_index = s.ord - 1"
      " FROM unnest($1::tid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) WITH ORDINALITY AS s(tid, job_id, seq, charge, fee, ord)"
      " WHERE u.ctid = s.tid AND u.job_id = s.job_id AND u.seq = s.seq AND NOT u.settled",
      ArrayLiteral(r_tid), ArrayLiteral(r_job), ArrayLiteral(r_seq), ArrayLiteral(r_charge), ArrayLiteral(r_fee), batch_id);
  tx.exec0("RESET enable_hashjoin; RESET enable_mergejoin");
  TESSERA_CHECK(marked.affected_rows() == reports.size());

  std::vector<int64_t> a_job, a_attempt, a_worker, a_ms, a_charged, a_fee, a_reports;
  for (const auto& [key, a] : assignments) {
    const auto& [job_id, attempt, worker_id] = key;
    for (auto [v, x] : {std::pair{&a_job, job_id}, {&a_attempt, attempt}, {&a_worker, worker_id}, {&a_ms, a.gpu_ms_total},
                        {&a_charged, a.charged_utok}, {&a_fee, a.fee_utok}, {&a_reports, a.reports}}) {
      v->push_back(x);
    }
  }
  tx.exec_params0(
      "UPDATE lease_totals a SET gpu_ms_total = s.ms, charged_utok = s.charged, fee_utok = s.fee, usage_reports = s.reports"
      " FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])"
      "   AS s(job_id, attempt, worker_id, ms, charged, fee, reports)"
      " WHERE a.job_id = s.job_id AND a.attempt = s.attempt AND a.worker_id = s.worker_id",
      ArrayLiteral(a_job), ArrayLiteral(a_attempt), ArrayLiteral(a_worker), ArrayLiteral(a_ms), ArrayLiteral(a_charged), ArrayLiteral(a_fee),
      ArrayLiteral(a_reports));
  std::vector<int64_t> j_id, j_charged, j_ms;
  for (const auto& [id, job] : jobs) {
    j_id.push_back(id);
    j_charged.push_back(job.charged_utok);
    j_ms.push_back(job.gpu_ms_added);
  }
  tx.exec_params0(
      "UPDATE jobs j SET charged_utok = s.charged, gpu_ms_total = j.gpu_ms_total + s.ms"
      " FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS s(job_id, charged, ms) WHERE j.job_id = s.job_id",
      ArrayLiteral(j_id), ArrayLiteral(j_charged), ArrayLiteral(j_ms));
  WarnLowEscrow(tx, jobs, assignments);
  return static_cast<int64_t>(reports.size());
}

// Closes the escrow holds of ended jobs whose usage is all settled: RELEASED with the unspent rest,
// or VOIDED when nothing was charged. Marked after the transfers post (the database refuses any
// transfer against a closed hold).
struct Releases {
  std::vector<int64_t> jobs, amounts;
};

void MarkReleased(pqxx::work& tx, const Releases& releases) {
  if (releases.jobs.empty()) return;
  tx.exec_params0(
      "UPDATE jobs j SET released_utok = s.released, hold_state = CASE WHEN j.charged_utok = 0 THEN 'VOIDED' ELSE 'RELEASED' END"
      " FROM unnest($1::bigint[], $2::bigint[]) AS s(job_id, released) WHERE j.job_id = s.job_id",
      ArrayLiteral(releases.jobs), ArrayLiteral(releases.amounts));
}

int64_t ReleaseEndedJobs(pqxx::work& tx, int max_jobs, std::vector<TransferSpec>& transfers, Releases& releases) {
  const pqxx::result rows = tx.exec_params(
      "SELECT j.job_id, j.hold_utok - j.charged_utok, es.ledger_account_id, av.ledger_account_id FROM jobs j"
      " JOIN ledger_accounts es ON es.account_id = j.account_id AND es.bucket = 'escrow'"
      " JOIN ledger_accounts av ON av.account_id = j.account_id AND av.bucket = 'available'"
      " WHERE j.hold_state = 'PENDING' AND j.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')"
      " AND NOT EXISTS (SELECT 1 FROM usage_reports u WHERE u.job_id = j.job_id AND NOT u.settled)"
      " ORDER BY j.job_id LIMIT $1 FOR NO KEY UPDATE OF j SKIP LOCKED",
      max_jobs);
  for (const pqxx::row& r : rows) {
    const auto job_id = r[0].as<int64_t>();
    const auto unspent = r[1].as<int64_t>();
    if (auto release = ReleaseTransfer(job_id, unspent, r[2].as<int64_t>(), r[3].as<int64_t>())) transfers.push_back(*release);
    releases.jobs.push_back(job_id);
    releases.amounts.push_back(unspent);
  }
  return static_cast<int64_t>(rows.size());
}

}  // namespace

absl::StatusOr<SettleStats> Settlement::SettleOnce(int max_reports) {
  return db_.Transact("settle", [&](pqxx::work& tx) -> absl::StatusOr<SettleStats> {
    SettleStats stats;
    // One settlement pass at a time across every billing replica: the pass then reads unsettled
    // reports without locking each row (ingest only inserts new ones), which halves its writes.
    if (!tx.exec_params1("SELECT pg_try_advisory_xact_lock($1)", kSettlementLockKey)[0].as<bool>()) return stats;
    std::vector<TransferSpec> transfers;
    stats.reports_settled = ChargeReports(tx, max_reports, transfers);
    Releases releases;
    stats.jobs_released = ReleaseEndedJobs(tx, max_reports, transfers, releases);
    stats.transfers_posted = PostTransfers(tx, transfers);
    MarkReleased(tx, releases);
    return stats;
  });
}

namespace {
constexpr auto kMinPassGap = std::chrono::milliseconds(100);
}  // namespace

SettlementLoop::SettlementLoop(store::Database& db, int64_t interval_ms, int max_reports_per_batch)
    : settlement_(db), interval_ms_(interval_ms), max_reports_(max_reports_per_batch) {
  listener_ = std::make_unique<store::NotificationListener>(
      db.url(), std::vector<std::string>{store::kSettleChannel}, [this](const std::string&, const std::string&) { Wake(); });
  thread_ = std::thread([this] { Run(); });
}

SettlementLoop::~SettlementLoop() {
  stop_ = true;
  cv_.notify_all();
  thread_.join();
  listener_.reset();
}

void SettlementLoop::Wake() {
  {
    std::lock_guard lock(mu_);
    wake_ = true;
  }
  cv_.notify_one();
}

void SettlementLoop::Run() {
  while (!stop_) {
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [&] { return wake_ || stop_.load(); });
      wake_ = false;
    }
    // Drain: keep settling full batches until a pass comes back short. The last pass runs even
    // when stopping, so a graceful shutdown flushes what was ingested.
    while (true) {
      absl::StatusOr<SettleStats> stats = settlement_.SettleOnce(max_reports_);
      if (!stats.ok()) {
        spdlog::warn("settlement: {}", stats.status().ToString());
        break;
      }
      if (stats->reports_settled < max_reports_ && stats->jobs_released < max_reports_) break;
    }
    // Under load every ingest wakes the loop; a short pause lets the next pass take a bigger batch
    // (fewer transactions and fewer turns on the customers' balance locks, which submits also take).
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, kMinPassGap, [&] { return stop_.load(); });
  }
}

}  // namespace tessera::billing
