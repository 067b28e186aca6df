// What the scheduler writes of jobs still in the queue: queue timeouts and wait reasons.
#include "services/common/job_state_machine.h"
#include "services/lifecycle/job_lifecycle.h"
#include "services/lifecycle/state_write.h"
#include "services/store/database.h"
#include "services/store/notifications.h"

namespace tessera::lifecycle {

using store::ArrayLiteral;

std::vector<int64_t> CancelExpiredQueued(pqxx::work& tx, int limit) {
  // SKIP LOCKED: a job a customer is cancelling or extending right now is left for the next pass.
  static const store::Statement kExpire = Checked(
      {.statement = {"lifecycle_queue_timeouts",
                     "WITH due AS (SELECT job_id, wait_reason, (extract(epoch FROM queue_deadline - created_at) * 1000)::bigint AS timeout_ms"
                     "   FROM jobs WHERE state = 'QUEUED' AND attempt = 0 AND queue_deadline < now()"
                     "   ORDER BY queue_deadline LIMIT $1 FOR NO KEY UPDATE SKIP LOCKED),"
                     " cancelled AS (UPDATE jobs j SET state = 'CANCELLED', wait_reason = '', updated_at = now() FROM due"
                     "   WHERE j.job_id = due.job_id RETURNING j.job_id)"
                     " INSERT INTO job_events (job_id, state, attempt, message)"
                     " SELECT job_id, 'CANCELLED', 0, 'queue timeout: not started within ' || timeout_ms || ' ms'"
                     "   || CASE WHEN wait_reason = '' THEN '' ELSE ' (' || wait_reason || ')' END || '; the escrow is released'"
                     " FROM due WHERE job_id IN (SELECT job_id FROM cancelled) RETURNING job_id"},
       .from = {v1::JOB_STATE_QUEUED},
       .to = {v1::JOB_STATE_CANCELLED}});
  std::vector<int64_t> ids;
  for (const pqxx::row& r : store::Exec(tx, kExpire, limit)) ids.push_back(r[0].as<int64_t>());
  if (!ids.empty()) store::NotifySettle(tx);
  return ids;
}

void SetWaitReasons(pqxx::work& tx, const std::vector<int64_t>& job_ids, const std::vector<std::string>& reasons) {
  store::Exec(tx, {"sched_wait_reasons",
      "UPDATE jobs j SET wait_reason = u.reason FROM unnest($1::bigint[], $2::text[]) AS u(job_id, reason)"
      " WHERE j.job_id = u.job_id AND j.state = 'QUEUED' AND j.wait_reason <> u.reason"},
      ArrayLiteral(job_ids), ArrayLiteral(reasons));
}

}  // namespace tessera::lifecycle
