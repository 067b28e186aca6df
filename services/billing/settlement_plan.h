// The arithmetic of one settlement batch, without a database: which report is charged what, which
// CHARGE/FEE transfers the batch posts per lease, and what an ended job's escrow releases. The
// settlement pass (settlement.cc) reads the rows, calls these and writes the results; the
// deterministic simulation (tests/sim) calls the same functions against its simulated store, so both
// run one implementation of the money rules.
//
//   std::map<int64_t, JobMoney> jobs = …;   std::map<LeaseKey, LeaseMoney> leases = …;
//   BatchCharges charges = ChargeBatch(reports, jobs, leases);      // updates jobs and leases
//   std::vector<TransferSpec> t = BatchTransfers(batch_id, fees_ledger_id, jobs, leases);
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "services/billing/transfer_spec.h"
#include "services/common/merkle.h"

namespace tessera::billing {

// An unsettled usage report, in the batch's order (job, attempt, worker, seq).
struct UnsettledReport {
  int64_t job_id = 0;
  int64_t attempt = 0;
  int64_t worker_id = 0;
  int64_t seq = 0;
  int64_t gpu_ms = 0;
  int64_t measured_at_ms = 0;
};

// A job's money as the batch reads it and leaves it.
struct JobMoney {
  int64_t hold_utok = 0;
  int64_t charged_utok = 0;
  int64_t gpu_ms_added = 0;  // by this batch
  int64_t fee_bps = 0;
  int64_t escrow_ledger_id = 0;
  int64_t attempt = 0;
  int64_t max_duration_ms = 0;
  int64_t warned_at_max_ms = 0;  // the limit of the last ESCROW_LOW warning, 0: none
  int64_t remaining_ms = -1;     // least run time left on any of its leases after this batch; -1: unknown
};

// A lease's (assignment's) running totals and what this batch charges it.
struct LeaseMoney {
  int64_t price = 0;
  int64_t gpus = 1;
  int64_t gpu_ms_total = 0;
  int64_t charged_utok = 0;
  int64_t fee_utok = 0;
  int64_t reports = 0;
  int64_t earnings_ledger_id = 0;
  // One CHARGE and one FEE transfer per lease and batch.
  int64_t batch_charge_utok = 0;
  int64_t batch_fee_utok = 0;
};

using LeaseKey = std::tuple<int64_t, int64_t, int64_t>;  // job, attempt, worker

struct ReportCharged {
  int64_t charge_utok = 0;
  int64_t fee_utok = 0;
};

struct BatchCharges {
  std::vector<ReportCharged> reports;  // one per input report, in order
  Hash merkle_root{};                  // over the reports' UsageLeaf hashes, in order
  int64_t charged_utok = 0;
  int64_t fee_utok = 0;
};

// Charges every report on its lease (DESIGN.md "Money rules": cumulative, capped by what is left of
// the job's hold) and moves `jobs` and `leases` to their totals after the batch. Every report's job
// and lease must be present. Checks (always on) that no job is charged above its hold.
BatchCharges ChargeBatch(const std::vector<UnsettledReport>& reports, std::map<int64_t, JobMoney>& jobs,
                         std::map<LeaseKey, LeaseMoney>& leases);

// The batch's CHARGE (escrow → earnings, net of the fee) and FEE (escrow → fees) transfers, one each
// per lease with something to move, keyed by batch and lease so that a retried batch posts nothing new.
std::vector<TransferSpec> BatchTransfers(int64_t batch_id, int64_t fees_ledger_id, const std::map<int64_t, JobMoney>& jobs,
                                         const std::map<LeaseKey, LeaseMoney>& leases);

// Sets each job's remaining_ms: the least run time left on any of its current attempt's leases.
void ComputeRemaining(std::map<int64_t, JobMoney>& jobs, const std::map<LeaseKey, LeaseMoney>& leases);

// The RELEASE of an ended job's unspent hold (escrow → available); none when nothing is left.
std::optional<TransferSpec> ReleaseTransfer(int64_t job_id, int64_t unspent_utok, int64_t escrow_ledger_id,
                                            int64_t available_ledger_id);

}  // namespace tessera::billing
