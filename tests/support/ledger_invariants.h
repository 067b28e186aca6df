// The money invariants as SQL, each a query that counts violations (0 when it holds). The ledger
// property test and the settlement crash test both check them, one through its test database, the
// other through psql against a server's cluster.
#pragma once

#include <utility>
#include <vector>

namespace tessera::testing {

inline const std::vector<std::pair<const char*, const char*>>& LedgerInvariants() {
  static const std::vector<std::pair<const char*, const char*>> kInvariants = {
      {"the ledger sums to zero", "SELECT count(*) FROM (SELECT sum(balance_utok) s FROM ledger_accounts) t WHERE s <> 0"},
      {"no customer or provider balance is negative",
       "SELECT count(*) FROM ledger_accounts WHERE bucket <> 'main' AND balance_utok < 0"},
      {"each lease's totals are the sum of its settled reports",
       "SELECT count(*) FROM lease_totals t WHERE t.charged_utok <> (SELECT coalesce(sum(charge_utok), 0) FROM usage_reports u"
       " WHERE u.job_id = t.job_id AND u.attempt = t.attempt AND u.worker_id = t.worker_id AND u.settled)"
       " OR t.usage_reports <> (SELECT count(*) FROM usage_reports u WHERE u.job_id = t.job_id AND u.attempt = t.attempt"
       " AND u.worker_id = t.worker_id AND u.settled)"},
      {"each job's charge is its leases' and its CHARGE and FEE transfers'",
       "SELECT count(*) FROM jobs j WHERE j.charged_utok <> (SELECT coalesce(sum(charged_utok), 0) FROM lease_totals t"
       " WHERE t.job_id = j.job_id) OR j.charged_utok <> (SELECT coalesce(sum(amount_utok), 0) FROM transfers x"
       " WHERE x.job_id = j.job_id AND x.kind IN ('CHARGE', 'FEE'))"},
      // An extension raises a hold that had run out; the usage it could not cover is charged with
      // the lease's next report, so until then such a lease may be short (never over).
      {"a lease pays floor(gpu_ms × price / 3.6e6) unless its job's hold ran out; never above the hold",
       "SELECT count(*) FROM lease_totals t JOIN assignments a USING (job_id, attempt, worker_id) JOIN jobs j ON j.job_id = t.job_id"
       " WHERE j.charged_utok > j.hold_utok OR t.charged_utok > floor(t.gpu_ms_total::numeric * a.price_utok_per_gpu_hour / 3600000)"
       " OR (j.charged_utok < j.hold_utok AND t.charged_utok <> floor(t.gpu_ms_total::numeric * a.price_utok_per_gpu_hour / 3600000)"
       "     AND NOT EXISTS (SELECT 1 FROM job_extensions x WHERE x.job_id = j.job_id))"},
      {"a customer's escrow is what its jobs still hold",
       "SELECT count(*) FROM ledger_accounts l WHERE l.bucket = 'escrow' AND l.balance_utok <> (SELECT"
       " coalesce(sum(hold_utok - charged_utok - released_utok), 0) FROM jobs j WHERE j.account_id = l.account_id)"},
      {"a job's hold is the sum of its HOLD transfers (submit and every extension)",
       "SELECT count(*) FROM jobs j WHERE j.hold_utok <> (SELECT coalesce(sum(amount_utok), 0) FROM transfers x"
       " WHERE x.job_id = j.job_id AND x.kind = 'HOLD')"},
      {"a closed hold returned all it did not charge; a voided one charged nothing; RELEASE only closes",
       "SELECT count(*) FROM jobs j WHERE (j.hold_state <> 'PENDING' AND j.charged_utok + j.released_utok <> j.hold_utok)"
       " OR (j.hold_state = 'VOIDED' AND j.charged_utok <> 0)"
       " OR j.released_utok <> (SELECT coalesce(sum(amount_utok), 0) FROM transfers x WHERE x.job_id = j.job_id AND x.kind = 'RELEASE')"},
      {"every settled report is in a batch whose root covers it",
       "SELECT count(*) FROM usage_reports u LEFT JOIN settlement_batches b USING (batch_id) WHERE u.settled AND b.batch_id IS NULL"},
  };
  return kInvariants;
}

}  // namespace tessera::testing
