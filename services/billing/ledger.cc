#include "services/billing/ledger.h"

#include "base/check.h"
#include "services/store/database.h"
#include "services/store/statement.h"

namespace tessera::billing {
namespace {

constexpr store::Statement kLockBuckets{
    "ledger_lock_buckets",
    "SELECT 1 FROM ledger_accounts WHERE ledger_account_id = ANY($1::bigint[])"
    " ORDER BY ledger_account_id FOR NO KEY UPDATE"};

// Inserts the new transfers, then adds each bucket's net movement to its balance and to its
// month's totals by kind (ledger_months, for statements).
constexpr store::Statement kPostTransfers{
    "ledger_post_transfers",
    "WITH input AS ("
    "  SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::int[],"
    "    $8::bigint[], $9::bigint[]) AS t(key, kind, debit, credit, amount, job_id, attempt, worker_id, batch_id)),"
    " inserted AS ("
    "  INSERT INTO transfers (idempotency_key, kind, debit_ledger_id, credit_ledger_id, amount_utok, job_id, attempt, worker_id,"
    "   batch_id)"
    "  SELECT key, kind, debit, credit, amount, NULLIF(job_id, 0), NULLIF(attempt, 0), NULLIF(worker_id, 0), NULLIF(batch_id, 0)"
    "  FROM input"
    "  ON CONFLICT (idempotency_key) DO NOTHING"
    "  RETURNING debit_ledger_id, credit_ledger_id, amount_utok, kind, created_at),"
    " movements AS ("
    "  SELECT debit_ledger_id AS id, -amount_utok AS delta FROM inserted"
    "  UNION ALL SELECT credit_ledger_id, amount_utok FROM inserted),"
    " net AS (SELECT id, sum(delta)::bigint AS delta FROM movements GROUP BY id),"
    " updated AS ("
    "  UPDATE ledger_accounts l SET balance_utok = l.balance_utok + net.delta FROM net"
    "  WHERE l.ledger_account_id = net.id RETURNING 1),"
    " monthly AS ("
    "  INSERT INTO ledger_months (ledger_account_id, month, kind, debit_utok, credit_utok, transfers)"
    "  SELECT id, month, kind, sum(debit)::bigint, sum(credit)::bigint, count(*) FROM ("
    "    SELECT debit_ledger_id AS id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, kind,"
    "     amount_utok AS debit, 0 AS credit FROM inserted"
    "    UNION ALL SELECT credit_ledger_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, kind, 0, amount_utok"
    "    FROM inserted) m GROUP BY id, month, kind"
    "  ON CONFLICT (ledger_account_id, month, kind) DO UPDATE SET debit_utok = ledger_months.debit_utok + excluded.debit_utok,"
    "   credit_utok = ledger_months.credit_utok + excluded.credit_utok, transfers = ledger_months.transfers + excluded.transfers"
    "  RETURNING 1)"
    "SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM updated), (SELECT count(*) FROM monthly)"};

}  // namespace

int64_t PostTransfers(pqxx::work& tx, const std::vector<TransferSpec>& transfers, BucketLocks locks) {
  if (transfers.empty()) return 0;
  std::vector<std::string> keys, kinds;
  std::vector<int64_t> debits, credits, amounts, jobs, attempts, workers, batches;
  for (const TransferSpec& t : transfers) {
    TESSERA_CHECK(t.amount_utok > 0);
    TESSERA_CHECK(t.debit_ledger_id != t.credit_ledger_id);
    keys.push_back(t.idempotency_key);
    kinds.push_back(t.kind);
    debits.push_back(t.debit_ledger_id);
    credits.push_back(t.credit_ledger_id);
    amounts.push_back(t.amount_utok);
    jobs.push_back(t.job_id);
    attempts.push_back(t.attempt);
    workers.push_back(t.worker_id);
    batches.push_back(t.batch_id);
  }
  // Lock the touched buckets in id order first, so that concurrent money transactions always lock
  // in the same order and cannot deadlock each other.
  std::vector<int64_t> touched = debits;
  touched.insert(touched.end(), credits.begin(), credits.end());
  if (locks == BucketLocks::kTake) {
    store::Exec(tx, kLockBuckets, store::ArrayLiteral(touched));
  }
  const pqxx::result r = store::Exec(tx, kPostTransfers,
      store::ArrayLiteral(keys), store::ArrayLiteral(kinds), store::ArrayLiteral(debits), store::ArrayLiteral(credits),
      store::ArrayLiteral(amounts), store::ArrayLiteral(jobs), store::ArrayLiteral(attempts), store::ArrayLiteral(workers),
      store::ArrayLiteral(batches));
  return r[0][0].as<int64_t>();
}

absl::StatusOr<int64_t> LedgerId(pqxx::work& tx, const std::string& account, const std::string& bucket) {
  const pqxx::result r = tx.exec_params(
      "SELECT l.ledger_account_id FROM ledger_accounts l JOIN accounts a USING (account_id)"
      " WHERE a.name = $1 AND l.bucket = $2",
      account, bucket);
  if (r.empty()) return absl::NotFoundError("account '" + account + "' has no " + bucket + " balance");
  return r[0][0].as<int64_t>();
}

}  // namespace tessera::billing
