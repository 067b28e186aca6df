#include "services/billing/settlement_plan.h"

#include <algorithm>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "services/billing/usage_proof.h"
#include "base/check.h"
#include "services/common/money.h"

namespace tessera::billing {

BatchCharges ChargeBatch(const std::vector<UnsettledReport>& reports, std::map<int64_t, JobMoney>& jobs,
                         std::map<LeaseKey, LeaseMoney>& leases) {
  BatchCharges out;
  std::vector<Hash> leaves;
  leaves.reserve(reports.size());
  out.reports.reserve(reports.size());
  for (const UnsettledReport& r : reports) {
    JobMoney& job = jobs.at(r.job_id);
    LeaseMoney& a = leases.at({r.job_id, r.attempt, r.worker_id});
    absl::StatusOr<ReportCharge> charge =
        ChargeReport(a.gpu_ms_total, r.gpu_ms, a.price, job.fee_bps, a.charged_utok, a.fee_utok, job.hold_utok - job.charged_utok);
    TESSERA_CHECK(charge.ok());  // inputs are bounded by validated specs
    TESSERA_CHECK(charge->fee_utok >= 0 && charge->fee_utok <= charge->charge_utok);  // the fee is a share of the charge
    a.batch_charge_utok += charge->charge_utok;
    a.batch_fee_utok += charge->fee_utok;
    job.gpu_ms_added += charge->gpu_ms_total_after - a.gpu_ms_total;
    a.gpu_ms_total = charge->gpu_ms_total_after;
    a.charged_utok += charge->charge_utok;
    a.fee_utok += charge->fee_utok;
    a.reports += 1;
    job.charged_utok += charge->charge_utok;
    TESSERA_CHECK(job.charged_utok <= job.hold_utok);  // never above the hold, so never above the bid
    leaves.push_back(LeafHash(UsageLeaf({.job_id = r.job_id, .attempt = static_cast<uint32_t>(r.attempt), .worker_id = r.worker_id,
                                         .seq = static_cast<uint64_t>(r.seq), .gpu_ms = r.gpu_ms, .measured_at_ms = r.measured_at_ms,
                                         .charge_utok = charge->charge_utok, .fee_utok = charge->fee_utok})));
    out.reports.push_back({.charge_utok = charge->charge_utok, .fee_utok = charge->fee_utok});
    out.charged_utok += charge->charge_utok;
    out.fee_utok += charge->fee_utok;
  }
  out.merkle_root = MerkleRoot(leaves);
  return out;
}

std::vector<TransferSpec> BatchTransfers(int64_t batch_id, int64_t fees_ledger_id, const std::map<int64_t, JobMoney>& jobs,
                                         const std::map<LeaseKey, LeaseMoney>& leases) {
  std::vector<TransferSpec> transfers;
  int64_t charged_utok = 0;  // what the batch charged the escrows, lease by lease
  for (const auto& [key, a] : leases) {
    charged_utok += a.batch_charge_utok;
    const auto& [job_id, attempt, worker_id] = key;
    const std::string ref = absl::StrCat(batch_id, ":", job_id, ":", attempt, ":", worker_id);
    const JobMoney& job = jobs.at(job_id);
    if (a.batch_charge_utok - a.batch_fee_utok > 0) {
      transfers.push_back({.idempotency_key = "charge:" + ref, .kind = "CHARGE", .debit_ledger_id = job.escrow_ledger_id,
                           .credit_ledger_id = a.earnings_ledger_id, .amount_utok = a.batch_charge_utok - a.batch_fee_utok,
                           .job_id = job_id, .attempt = attempt, .worker_id = worker_id, .batch_id = batch_id});
    }
    if (a.batch_fee_utok > 0) {
      transfers.push_back({.idempotency_key = "fee:" + ref, .kind = "FEE", .debit_ledger_id = job.escrow_ledger_id,
                           .credit_ledger_id = fees_ledger_id, .amount_utok = a.batch_fee_utok, .job_id = job_id,
                           .attempt = attempt, .worker_id = worker_id, .batch_id = batch_id});
    }
  }
  // Money is conserved: the transfers move out of the escrows exactly what the batch charged,
  // split between the providers and the platform's fees, no more and no less.
  int64_t moved_utok = 0;
  for (const TransferSpec& t : transfers) moved_utok += t.amount_utok;
  TESSERA_CHECK(moved_utok == charged_utok);
  return transfers;
}

void ComputeRemaining(std::map<int64_t, JobMoney>& jobs, const std::map<LeaseKey, LeaseMoney>& leases) {
  for (const auto& [key, lease] : leases) {
    JobMoney& job = jobs.at(std::get<0>(key));
    if (std::get<1>(key) != job.attempt) continue;  // an earlier attempt's late usage
    const int64_t ran_ms = lease.gpu_ms_total / lease.gpus;
    const int64_t remaining = std::max<int64_t>(0, job.max_duration_ms - ran_ms);
    if (job.remaining_ms < 0 || remaining < job.remaining_ms) job.remaining_ms = remaining;
  }
}

std::optional<TransferSpec> ReleaseTransfer(int64_t job_id, int64_t unspent_utok, int64_t escrow_ledger_id,
                                            int64_t available_ledger_id) {
  TESSERA_CHECK(unspent_utok >= 0);
  if (unspent_utok == 0) return std::nullopt;
  return TransferSpec{.idempotency_key = absl::StrCat("release:", job_id), .kind = "RELEASE", .debit_ledger_id = escrow_ledger_id,
                      .credit_ledger_id = available_ledger_id, .amount_utok = unspent_utok, .job_id = job_id};
}

}  // namespace tessera::billing
