// What workers' reports write: an attempt started, its progress, its finish.
#include "base/check.h"
#include "services/common/job_state_machine.h"
#include "services/lifecycle/job_lifecycle.h"
#include "services/lifecycle/state_write.h"
#include "services/store/database.h"
#include "services/store/notifications.h"

namespace tessera::lifecycle {

using store::ArrayLiteral;

void RecordStarted(pqxx::work& tx, const std::vector<int64_t>& job_ids, const std::vector<int64_t>& attempts,
                   const std::vector<int64_t>& worker_ids) {
  // A job runs once its first worker starts it (each worker of a spread job reports its own).
  static const store::Statement kStarted = Checked(
      {.statement = {"sched_started",
                     "WITH s AS (SELECT DISTINCT ON (t.job_id) t.* FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS t(job_id, attempt, worker_id)"
                     "   JOIN assignments a ON a.job_id = t.job_id AND a.attempt = t.attempt AND a.worker_id = t.worker_id AND a.state = 'LIVE'"
                     "   ORDER BY t.job_id, t.worker_id),"
                     " started AS (UPDATE jobs j SET state = 'RUNNING', updated_at = now() FROM s"
                     "  WHERE j.job_id = s.job_id AND j.attempt = s.attempt AND j.state = 'ASSIGNED'"
                     "  RETURNING j.job_id, j.attempt, s.worker_id)"
                     "INSERT INTO job_events (job_id, state, attempt, worker_id, message)"
                     " SELECT job_id, 'RUNNING', attempt, worker_id, 'started on worker ' || worker_id FROM started"},
       .from = {v1::JOB_STATE_ASSIGNED},
       .to = {v1::JOB_STATE_RUNNING}});
  store::Exec(tx, kStarted, ArrayLiteral(job_ids), ArrayLiteral(attempts), ArrayLiteral(worker_ids));
}

void RecordProgress(pqxx::work& tx, const std::vector<int64_t>& job_ids, const std::vector<int64_t>& attempts,
                    const std::vector<int64_t>& worker_ids, const std::vector<int64_t>& ppm, const std::vector<std::string>& losses) {
  store::Exec(tx, {"sched_progress",
      "UPDATE jobs j SET progress_ppm = p.ppm, last_loss = p.loss, updated_at = now()"
      " FROM (SELECT DISTINCT ON (t.job_id) t.* FROM"
      "   unnest($1::bigint[], $2::int[], $3::bigint[], $4::int[], $5::float8[]) WITH ORDINALITY AS t(job_id, attempt, worker_id, ppm, loss, ord)"
      "   JOIN assignments a ON a.job_id = t.job_id AND a.attempt = t.attempt AND a.worker_id = t.worker_id AND a.state = 'LIVE'"
      "   ORDER BY t.job_id, t.ord DESC) AS p"
      " WHERE j.job_id = p.job_id AND j.attempt = p.attempt AND j.state IN ('ASSIGNED', 'RUNNING')"},
      ArrayLiteral(job_ids), ArrayLiteral(attempts), ArrayLiteral(worker_ids), ArrayLiteral(ppm), ArrayLiteral(losses));
}

pqxx::result RecordFinished(pqxx::work& tx, const Finishes& f) {
  // A worker's finish ends its lease. The job ends when one of its workers fails (the others'
  // leases end too, and they get a cancel) or when its last live lease has finished.
  static const store::Statement kFinished = Checked(
      {.statement = {"sched_finished",
                     "WITH f AS (SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::text[], $5::text[], $6::text[])"
                     "   AS t(job_id, attempt, worker_id, state, result, message)),"
                     " ended AS (UPDATE assignments a SET state = 'ENDED', end_reason = lower(f.state), ended_at = now() FROM f"
                     "   WHERE a.job_id = f.job_id AND a.attempt = f.attempt AND a.worker_id = f.worker_id AND a.state = 'LIVE'"
                     "   RETURNING a.job_id, a.attempt, a.worker_id),"
                     " closing AS (SELECT DISTINCT ON (f.job_id) f.* FROM f JOIN ended e USING (job_id, attempt, worker_id)"
                     "   WHERE f.state = 'FAILED' OR NOT EXISTS (SELECT 1 FROM assignments o WHERE o.job_id = f.job_id"
                     "     AND o.attempt = f.attempt AND o.state = 'LIVE' AND NOT EXISTS (SELECT 1 FROM ended x"
                     "     WHERE x.job_id = o.job_id AND x.attempt = o.attempt AND x.worker_id = o.worker_id))"
                     "   ORDER BY f.job_id, f.state = 'FAILED' DESC, f.worker_id),"
                     " done AS (UPDATE jobs j SET state = c.state, result = decode(c.result, 'hex'), wait_reason = '',"
                     "   progress_ppm = CASE WHEN c.state = 'SUCCEEDED' THEN 1000000 ELSE j.progress_ppm END, updated_at = now()"
                     "   FROM closing c WHERE j.job_id = c.job_id AND j.attempt = c.attempt AND j.state IN ('ASSIGNED', 'RUNNING')"
                     "   RETURNING j.job_id, j.attempt, j.state, c.worker_id, c.message),"
                     " siblings AS (UPDATE assignments a SET state = 'ENDED', end_reason = 'failed on another worker of the job', ended_at = now()"
                     "   FROM done d WHERE d.state = 'FAILED' AND a.job_id = d.job_id AND a.attempt = d.attempt AND a.state = 'LIVE'"
                     "   AND NOT EXISTS (SELECT 1 FROM ended x WHERE x.job_id = a.job_id AND x.attempt = a.attempt AND x.worker_id = a.worker_id)"
                     "   RETURNING a.job_id, a.attempt, a.worker_id),"
                     " audited AS (INSERT INTO job_events (job_id, state, attempt, worker_id, message)"
                     "   SELECT job_id, state, attempt, worker_id, message FROM done)"
                     "SELECT job_id, 0, 0 FROM done UNION ALL SELECT job_id, attempt, worker_id FROM siblings"},
       .from = {v1::JOB_STATE_ASSIGNED, v1::JOB_STATE_RUNNING},
       .to = {v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED}});
  for (const std::string& state : f.states) TESSERA_CHECK(state == "SUCCEEDED" || state == "FAILED");
  const pqxx::result rows = store::Exec(tx, kFinished, ArrayLiteral(f.job_ids), ArrayLiteral(f.attempts), ArrayLiteral(f.worker_ids),
                                        ArrayLiteral(f.states), ArrayLiteral(f.results_hex), ArrayLiteral(f.messages));
  if (!f.job_ids.empty()) store::NotifySettle(tx);
  return rows;
}

}  // namespace tessera::lifecycle
