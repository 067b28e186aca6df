// What the scheduler writes of leases: assigning queued jobs, ending leases (a lost worker, a
// preemption, a lost attempt), resuming a lease a reconnected worker still runs.
#include "services/common/job_state_machine.h"
#include "services/lifecycle/job_lifecycle.h"
#include "services/lifecycle/state_write.h"
#include "services/store/database.h"
#include "services/store/notifications.h"

namespace tessera::lifecycle {

using store::ArrayLiteral;

pqxx::result Assign(pqxx::work& tx, const Placements& p) {
  static const store::Statement kAssign = Checked(
      {.statement = {"sched_persist_placements",
                     "WITH p AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::int[], $6::text[])"
                     "   AS t(job_id, worker_id, price, gpus, node_rank, nodes)),"
                     " assigned AS ("
                     "  UPDATE jobs j SET state = 'ASSIGNED', attempt = j.attempt + 1, worker_id = p.worker_id,"
                     "   price_utok_per_gpu_hour = p.price, wait_reason = '', progress_ppm = 0, updated_at = now()"
                     "  FROM p WHERE j.job_id = p.job_id AND p.node_rank = 0 AND j.state = 'QUEUED'"
                     "  RETURNING j.job_id, j.attempt, j.spec, j.state, j.account_id, j.created_at, j.max_duration_ms),"
                     " leased AS ("
                     "  INSERT INTO assignments (job_id, attempt, worker_id, gpu_indexes, price_utok_per_gpu_hour, state, node_rank)"
                     "  SELECT p.job_id, a.attempt, p.worker_id, p.gpus::int[], p.price, 'LIVE', p.node_rank FROM p JOIN assigned a USING (job_id)"
                     "  RETURNING job_id, attempt, worker_id, gpu_indexes, price_utok_per_gpu_hour, node_rank),"
                     " totals AS (INSERT INTO lease_totals (job_id, attempt, worker_id) SELECT job_id, attempt, worker_id FROM leased),"
                     " audited AS ("
                     "  INSERT INTO job_events (job_id, state, attempt, worker_id, message)"
                     "  SELECT job_id, 'ASSIGNED', attempt, worker_id,"
                     "   'assigned to worker ' || worker_id || ' at ' || price_utok_per_gpu_hour || ' µT/GPU-h'"
                     "   || CASE WHEN node_rank > 0 OR EXISTS (SELECT 1 FROM p WHERE p.job_id = leased.job_id AND p.node_rank > 0)"
                     "   THEN ' (node ' || node_rank || ')' ELSE '' END FROM leased)"
                     // The lease columns the scheduler reads, the node list from the input (the new
                     // rows are not visible to a subquery of this statement).
                     "SELECT l.job_id, l.attempt, l.worker_id, l.gpu_indexes, l.price_utok_per_gpu_hour, a.spec, a.state, c.name,"
                     " (extract(epoch FROM a.created_at) * 1000)::bigint, l.node_rank, p.nodes, a.max_duration_ms"
                     " FROM leased l JOIN assigned a USING (job_id) JOIN p ON p.job_id = l.job_id AND p.worker_id = l.worker_id"
                     " JOIN accounts c ON c.account_id = a.account_id ORDER BY l.job_id, l.node_rank"},
       .from = {v1::JOB_STATE_QUEUED},
       .to = {v1::JOB_STATE_ASSIGNED}});
  return store::Exec(tx, kAssign, ArrayLiteral(p.job_ids), ArrayLiteral(p.worker_ids), ArrayLiteral(p.prices), ArrayLiteral(p.gpu_lists),
                     ArrayLiteral(p.node_ranks), ArrayLiteral(p.node_lists));
}

std::vector<int64_t> ResumeLeases(pqxx::work& tx, int64_t worker_id, const std::vector<int64_t>& job_ids,
                                  const std::vector<int64_t>& attempts) {
  static const store::Statement kResume = Checked(
      {.statement = {"sched_resume_leases",
                     "WITH r AS (SELECT * FROM unnest($2::bigint[], $3::int[]) AS t(job_id, attempt)),"
                     " candidates AS (SELECT a.job_id, a.attempt FROM assignments a JOIN r USING (job_id, attempt) JOIN jobs j ON j.job_id = a.job_id"
                     "   WHERE a.worker_id = $1 AND a.state = 'ENDED' AND j.state = 'QUEUED' AND j.attempt = a.attempt"
                     "   AND NOT EXISTS (SELECT 1 FROM assignments o WHERE o.job_id = a.job_id AND o.attempt = a.attempt AND o.worker_id <> $1)"
                     "   AND NOT EXISTS (SELECT 1 FROM assignments l WHERE l.worker_id = $1 AND l.state = 'LIVE' AND l.gpu_indexes && a.gpu_indexes)"
                     "   FOR NO KEY UPDATE OF j),"
                     " live AS (UPDATE assignments a SET state = 'LIVE', end_reason = '', ended_at = NULL FROM candidates c"
                     "   WHERE a.job_id = c.job_id AND a.attempt = c.attempt AND a.worker_id = $1 RETURNING a.job_id, a.attempt),"
                     " moved AS (UPDATE jobs j SET state = 'RUNNING', worker_id = $1, wait_reason = '', updated_at = now() FROM live l"
                     "   WHERE j.job_id = l.job_id RETURNING j.job_id, j.attempt),"
                     " audited AS (INSERT INTO job_events (job_id, state, attempt, worker_id, message)"
                     "   SELECT job_id, 'RUNNING', attempt, $1, 'lease resumed: worker ' || $1 || ' reconnected still running it' FROM moved)"
                     "SELECT job_id FROM moved"},
       .from = {v1::JOB_STATE_QUEUED},
       .to = {v1::JOB_STATE_RUNNING}});
  std::vector<int64_t> resumed;
  for (const pqxx::row& r : store::Exec(tx, kResume, worker_id, ArrayLiteral(job_ids), ArrayLiteral(attempts))) {
    resumed.push_back(r[0].as<int64_t>());
  }
  return resumed;
}

std::vector<EndedLease> EndLeases(pqxx::work& tx, const std::vector<int64_t>& offline_workers,
                                  const std::vector<std::pair<int64_t, uint32_t>>& attempts,
                                  const std::vector<int64_t>& preempted_jobs, const std::string& reason) {
  std::vector<int64_t> jobs, attempt_numbers;
  for (const auto& [job, attempt] : attempts) {
    jobs.push_back(job);
    attempt_numbers.push_back(attempt);
  }
  // The leases named, then every other live lease of the same (job, attempt): a spread job loses
  // all its workers together.
#define TESSERA_LEASES_TO_END                                                                                         \
  "SELECT a.job_id, a.attempt, a.worker_id, n.preempted"                                                             \
  " FROM assignments a JOIN (SELECT DISTINCT n.job_id, n.attempt, n.job_id = ANY($4::bigint[]) AS preempted"         \
  "   FROM assignments n WHERE n.state = 'LIVE' AND (n.worker_id = ANY($1::bigint[]) OR n.job_id = ANY($4::bigint[])" \
  "   OR (n.job_id, n.attempt) IN (SELECT * FROM unnest($2::bigint[], $3::int[])))) n USING (job_id, attempt)"         \
  " WHERE a.state = 'LIVE'"
  static constexpr store::Statement kLockJobs{
      "lifecycle_end_leases_lock",
      "WITH t AS (" TESSERA_LEASES_TO_END ") SELECT 1 FROM jobs WHERE job_id IN (SELECT job_id FROM t) ORDER BY job_id FOR NO KEY UPDATE"};
  static const store::Statement kEnd = Checked(
      {.statement = {"lifecycle_end_leases",
                     "WITH target AS (" TESSERA_LEASES_TO_END "),"
                     " ended AS (UPDATE assignments a SET state = 'ENDED', end_reason = $5, ended_at = now() FROM target t"
                     "   WHERE a.job_id = t.job_id AND a.attempt = t.attempt AND a.worker_id = t.worker_id"
                     "   RETURNING a.job_id, a.attempt, a.worker_id, t.preempted),"
                     " lost AS (SELECT DISTINCT ON (job_id) * FROM ended ORDER BY job_id, worker_id),"
                     " moved AS (UPDATE jobs j SET state = CASE WHEN j.attempt >= j.max_attempts AND NOT e.preempted THEN 'FAILED' ELSE 'QUEUED' END,"
                     "   progress_ppm = 0, updated_at = now() FROM lost e"
                     "   WHERE j.job_id = e.job_id AND j.attempt = e.attempt AND j.state IN ('ASSIGNED', 'RUNNING')"
                     "   RETURNING j.job_id, j.attempt, j.state, e.worker_id),"
                     " audited AS (INSERT INTO job_events (job_id, state, attempt, worker_id, message)"
                     "   SELECT job_id, state, attempt, worker_id, $5 || CASE WHEN state = 'FAILED' THEN '; no attempts left'"
                     "   ELSE '; requeued' END FROM moved)"
                     "SELECT e.job_id, e.attempt, e.worker_id, m.state FROM ended e JOIN moved m USING (job_id, attempt) ORDER BY 1, 3"},
       .from = {v1::JOB_STATE_ASSIGNED, v1::JOB_STATE_RUNNING},
       .to = {v1::JOB_STATE_QUEUED, v1::JOB_STATE_FAILED}});
#undef TESSERA_LEASES_TO_END
  store::Exec(tx, kLockJobs, ArrayLiteral(offline_workers), ArrayLiteral(jobs), ArrayLiteral(attempt_numbers), ArrayLiteral(preempted_jobs));
  std::vector<EndedLease> out;
  for (const pqxx::row& r : store::Exec(tx, kEnd, ArrayLiteral(offline_workers), ArrayLiteral(jobs), ArrayLiteral(attempt_numbers),
                                        ArrayLiteral(preempted_jobs), reason)) {
    out.push_back({.job_id = r[0].as<int64_t>(), .attempt = r[1].as<uint32_t>(), .worker_id = r[2].as<int64_t>(),
                   .failed = r[3].as<std::string>() == "FAILED"});
  }
  // The scheduler re-queues these itself; settlement closes out the ended leases.
  if (!out.empty()) store::NotifySettle(tx);
  return out;
}

}  // namespace tessera::lifecycle
