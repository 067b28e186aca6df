// The one job event settlement writes: the escrow is running low.
#include "services/lifecycle/job_lifecycle.h"
#include "services/store/database.h"

namespace tessera::lifecycle {

void WarnEscrowLow(pqxx::work& tx, const std::vector<int64_t>& job_ids, const std::vector<int64_t>& remaining_ms) {
  if (job_ids.empty()) return;
  tx.exec_params0(
      "WITH warned AS (UPDATE jobs j SET escrow_warned_at_max_ms = j.max_duration_ms"
      "   FROM unnest($1::bigint[], $2::bigint[]) AS s(job_id, remaining_ms)"
      "   WHERE j.job_id = s.job_id AND j.state IN ('ASSIGNED', 'RUNNING')"
      "   RETURNING j.job_id, j.state, j.attempt, j.worker_id, j.max_duration_ms, j.hold_utok, j.charged_utok, s.remaining_ms)"
      " INSERT INTO job_events (job_id, state, attempt, worker_id, kind, remaining_ms, message)"
      " SELECT job_id, state, attempt, worker_id, 'ESCROW_LOW', remaining_ms,"
      "   'escrow low: ' || remaining_ms || ' ms left of max_duration_ms ' || max_duration_ms || ' (' || charged_utok || ' of '"
      "   || hold_utok || ' µT held is charged); ExtendJob now, or the job is stopped at the limit' FROM warned",
      store::ArrayLiteral(job_ids), store::ArrayLiteral(remaining_ms));
}

}  // namespace tessera::lifecycle
