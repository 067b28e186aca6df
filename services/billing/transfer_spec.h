// One ledger transfer as settlement and the services plan it, before the ledger posts it (ledger.h).
// Plain data, so that pure code (settlement_plan.h, the simulation) builds transfers without a database.
#pragma once

#include <cstdint>
#include <string>

namespace tessera::billing {

struct TransferSpec {
  std::string idempotency_key;
  std::string kind;  // DEPOSIT, HOLD, CHARGE, FEE, RELEASE, PAYOUT, REFUND
  int64_t debit_ledger_id = 0;
  int64_t credit_ledger_id = 0;
  int64_t amount_utok = 0;  // > 0
  int64_t job_id = 0;       // 0: none
  // CHARGE and FEE: the lease whose usage reports in settlement batch `batch_id` they pay for.
  int64_t attempt = 0;    // 0: none
  int64_t worker_id = 0;  // 0: none
  int64_t batch_id = 0;   // 0: none
};

}  // namespace tessera::billing
