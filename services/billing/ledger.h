// The double-entry ledger: the one way money moves in Tessera. Every transfer debits one ledger
// bucket and credits another by the same positive amount, carries an idempotency key (a repeated
// key is ignored, never applied twice), and updates both balances in the same statement. A batch
// of transfers is a single SQL statement, so settlement costs the same round trips for 1 or 10,000.
//
//   std::vector<TransferSpec> batch = {{.idempotency_key = "hold:42", .kind = "HOLD", …}};
//   PostTransfers(tx, batch);   // inside a Database::Transact body
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "absl/status/statusor.h"
#include "services/billing/transfer_spec.h"

namespace tessera::billing {

// Whether PostTransfers must lock the touched buckets (in id order) or the caller already holds
// those locks, taken in id order.
enum class BucketLocks { kTake, kAlreadyHeld };

// Inserts the transfers whose keys are new and applies them to the balances. Returns how many were
// new. Throws (libpqxx) on a balance constraint violation; callers run it inside Database::Transact.
int64_t PostTransfers(pqxx::work& tx, const std::vector<TransferSpec>& transfers,
                      BucketLocks locks = BucketLocks::kTake);

// The ledger bucket ("available", "escrow", "earnings", "fees", "main") of a named account.
absl::StatusOr<int64_t> LedgerId(pqxx::work& tx, const std::string& account, const std::string& bucket);

}  // namespace tessera::billing
