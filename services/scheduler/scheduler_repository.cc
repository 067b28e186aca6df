// SchedulerRepository, the market's side: the leadership epoch, the market's load and
// read-backs, a round's decisions, wait reasons, usage and job events, requeues and queue timeouts.
// The workers' side (registry, hello, drain, rendezvous) is scheduler_repository_workers.cc.
#include "services/scheduler/scheduler_repository.h"

#include "absl/strings/str_cat.h"
#include "scheduler/node_leases.h"
#include "services/common/job_state_machine.h"
#include "services/lifecycle/job_lifecycle.h"
#include "services/scheduler/market_inputs.h"
#include "services/scheduler/scheduler_rows.h"
#include "services/store/statement.h"

namespace tessera::scheduler_host {

using store::ArrayLiteral;
using store::Hex;

absl::Status SchedulerRepository::CheckEpoch(pqxx::work& tx) const {
  // FOR SHARE: a new leader's epoch bump waits for this transaction, and this one sees it after.
  const auto current = store::Exec(tx, {"sched_check_epoch", "SELECT epoch FROM scheduler_leadership WHERE id = 1 FOR SHARE"})[0][0]
                           .as<int64_t>();
  if (current != epoch_.load()) {
    return absl::FailedPreconditionError(absl::StrCat("scheduler epoch ", epoch_.load(),
                                                      " is no longer the leader's (the database is at ", current, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> SchedulerRepository::CancelExpiredQueued(int limit) {
  return db_.Transact("cancel expired queued jobs", [&](pqxx::work& tx) -> absl::StatusOr<std::vector<int64_t>> {
    if (absl::Status s = CheckEpoch(tx); !s.ok()) return s;
    return lifecycle::CancelExpiredQueued(tx, limit);
  });
}

absl::Status SchedulerRepository::RecordFraudSignals(const std::vector<FraudSignal>& signals) {
  if (signals.empty()) return absl::OkStatus();
  return db_.Transact("record fraud signals", [&](pqxx::work& tx) -> absl::Status {
    InsertFraudSignals(tx, signals);
    return absl::OkStatus();
  });
}

absl::StatusOr<MarketSnapshot> SchedulerRepository::LoadMarket() {
  return db_.Transact("load market", [&](pqxx::work& tx) -> absl::StatusOr<MarketSnapshot> {
    // One snapshot for the three reads: a job cannot be seen both queued and leased.
    tx.exec0("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    std::vector<int64_t> ids;
    for (const pqxx::row& r : tx.exec(
             "SELECT worker_id FROM workers WHERE state IN ('ACTIVE', 'DRAINING')"
             " UNION SELECT worker_id FROM assignments WHERE state = 'LIVE' ORDER BY 1")) {
      ids.push_back(r[0].as<int64_t>());
    }
    MarketSnapshot snapshot;
    snapshot.workers = LoadWorkerRecords(tx, ids);
    for (const pqxx::row& r : tx.exec(absl::StrCat(
             "SELECT ", kAssignmentColumns, " FROM assignments a JOIN jobs j USING (job_id)"
             " JOIN accounts c ON c.account_id = j.account_id WHERE a.state = 'LIVE'"))) {
      snapshot.live.push_back(AssignmentFromRow(r));
    }
    for (const pqxx::row& r : tx.exec(
             "SELECT j.job_id, c.name, j.spec, (extract(epoch FROM j.created_at) * 1000)::bigint, j.max_duration_ms"
             " FROM jobs j JOIN accounts c USING (account_id) WHERE j.state = 'QUEUED' ORDER BY j.job_id")) {
      snapshot.queued.push_back(RequirementsFromRow(r));
    }
    return snapshot;
  });
}

absl::StatusOr<std::vector<scheduler::JobRequirements>> SchedulerRepository::LoadQueuedJobs(const std::vector<int64_t>& job_ids) {
  return db_.Transact("load queued jobs", [&](pqxx::work& tx) -> absl::StatusOr<std::vector<scheduler::JobRequirements>> {
    std::vector<scheduler::JobRequirements> jobs;
    for (const pqxx::row& r : store::Exec(tx, {"sched_load_queued",
             "SELECT j.job_id, c.name, j.spec, (extract(epoch FROM j.created_at) * 1000)::bigint, j.max_duration_ms"
             " FROM jobs j JOIN accounts c USING (account_id) WHERE j.job_id = ANY($1::bigint[]) AND j.state = 'QUEUED'"
             " ORDER BY j.job_id"},
             ArrayLiteral(job_ids))) {
      jobs.push_back(RequirementsFromRow(r));
    }
    return jobs;
  });
}

absl::StatusOr<std::vector<int64_t>> SchedulerRepository::QueuedJobIds() {
  return db_.Transact("list queued jobs", [&](pqxx::work& tx) -> absl::StatusOr<std::vector<int64_t>> {
    std::vector<int64_t> ids;
    for (const pqxx::row& r : tx.exec("SELECT job_id FROM jobs WHERE state = 'QUEUED' ORDER BY job_id")) ids.push_back(r[0].as<int64_t>());
    return ids;
  });
}

absl::StatusOr<NotifiedState> SchedulerRepository::ReadNotifiedState(const std::vector<int64_t>& job_ids,
                                                                                           const std::vector<int64_t>& worker_ids) {
  return db_.Transact("read back notified state", [&](pqxx::work& tx) -> absl::StatusOr<NotifiedState> {
    NotifiedState out;
    const std::string jobs = ArrayLiteral(job_ids);
    // Worker 0 where no lease matches: the job was (or is) queued.
    const auto worker_of = [](const pqxx::field& f) { return f.is_null() ? int64_t{0} : f.as<int64_t>(); };
    for (const pqxx::row& r : store::Exec(tx, {"sched_read_back_cancelled",
             "SELECT j.job_id, j.attempt, a.worker_id FROM jobs j"
             " LEFT JOIN assignments a ON a.job_id = j.job_id AND a.attempt = j.attempt AND a.end_reason = 'cancelled'"
             " WHERE j.job_id = ANY($1::bigint[]) AND j.state = 'CANCELLED' ORDER BY 1, 3"},
             jobs)) {
      out.cancelled.push_back({.job_id = r[0].as<int64_t>(), .attempt = r[1].as<uint32_t>(), .worker_id = worker_of(r[2])});
    }
    for (const pqxx::row& r : store::Exec(tx, {"sched_read_back_open",
             "SELECT j.job_id, j.attempt, a.worker_id, j.max_duration_ms FROM jobs j"
             " LEFT JOIN assignments a ON a.job_id = j.job_id AND a.attempt = j.attempt AND a.state = 'LIVE'"
             " WHERE j.job_id = ANY($1::bigint[]) AND j.state IN ('QUEUED', 'ASSIGNED', 'RUNNING') ORDER BY 1, 3"},
             jobs)) {
      out.limits.push_back({.job_id = r[0].as<int64_t>(), .attempt = r[1].as<uint32_t>(), .worker_id = worker_of(r[2]),
                            .max_duration_ms = r[3].as<int64_t>()});
    }
    for (const pqxx::row& r : store::Exec(tx, {"sched_read_back_quarantined",
             "SELECT worker_id FROM workers WHERE worker_id = ANY($1::bigint[]) AND state = 'QUARANTINED' ORDER BY 1"},
             ArrayLiteral(worker_ids))) {
      out.quarantined.push_back(r[0].as<int64_t>());
    }
    return out;
  });
}

absl::StatusOr<PersistedDecisions> SchedulerRepository::PersistDecisions(const std::vector<scheduler::JobPlacement>& placements,
                                                                         const std::vector<int64_t>& preempted_jobs) {
  // One row per (job, worker): a spread job has a lease on each of its workers, ranked in the order
  // the market chose them.
  lifecycle::Placements rows;
  for (const scheduler::JobPlacement& p : placements) {
    const std::vector<scheduler::NodeLease> nodes = scheduler::NodeLeases(p);
    std::vector<int64_t> order;
    for (const scheduler::NodeLease& n : nodes) order.push_back(n.worker_id);
    const std::string node_list = ArrayLiteral(order);
    for (size_t rank = 0; rank < nodes.size(); ++rank) {
      rows.job_ids.push_back(p.job_id);
      rows.worker_ids.push_back(nodes[rank].worker_id);
      rows.prices.push_back(nodes[rank].price_utok_per_gpu_hour);
      rows.node_ranks.push_back(static_cast<int64_t>(rank));
      rows.gpu_lists.push_back(IndexLiteral(nodes[rank].gpu_indexes));
      rows.node_lists.push_back(node_list);
    }
  }
  return db_.Transact("persist decisions", [&](pqxx::work& tx) -> absl::StatusOr<PersistedDecisions> {
    if (absl::Status leader = CheckEpoch(tx); !leader.ok()) return leader;
    PersistedDecisions out;
    if (!preempted_jobs.empty()) out.preempted = lifecycle::EndLeases(tx, {}, {}, preempted_jobs, "preempted by an on-demand job");
    if (rows.job_ids.empty()) return out;
    for (const pqxx::row& r : lifecycle::Assign(tx, rows)) out.assigned.push_back(AssignmentFromRow(r));
    return out;
  });
}

absl::Status SchedulerRepository::UpdateWaitReasons(const std::vector<std::pair<int64_t, std::string>>& reasons) {
  if (reasons.empty()) return absl::OkStatus();
  std::vector<int64_t> ids;
  std::vector<std::string> texts;
  for (const auto& [id, reason] : reasons) {
    ids.push_back(id);
    texts.push_back(reason);
  }
  return db_.Transact("update wait reasons", [&](pqxx::work& tx) {
    lifecycle::SetWaitReasons(tx, ids, texts);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<UsageOutcome>> SchedulerRepository::IngestUsage(const std::vector<UsageIn>& usage) {
  return ingest_.Ingest(usage);
}

absl::StatusOr<AppliedEvents> SchedulerRepository::ApplyStateEvents(const StateEvents& events) {
  std::vector<int64_t> s_job, s_attempt, s_worker, p_job, p_attempt, p_worker, p_ppm;
  std::vector<std::string> p_loss;
  lifecycle::Finishes finishes;
  std::vector<int64_t>& f_job = finishes.job_ids;
  for (const auto& [worker, m] : events.started) {
    s_job.push_back(m.job_id());
    s_attempt.push_back(m.attempt());
    s_worker.push_back(worker);
  }
  for (const auto& [worker, m] : events.progress) {
    p_job.push_back(m.job_id());
    p_attempt.push_back(m.attempt());
    p_worker.push_back(worker);
    p_ppm.push_back(std::min<uint32_t>(m.progress_ppm(), 1'000'000));
    p_loss.push_back(absl::StrCat(m.loss()));
  }
  std::vector<int64_t> all_jobs = s_job;
  for (const auto& [worker, m] : events.finished) {
    f_job.push_back(m.job_id());
    finishes.attempts.push_back(m.attempt());
    finishes.worker_ids.push_back(worker);
    finishes.states.emplace_back(JobStateName(m.succeeded() ? v1::JOB_STATE_SUCCEEDED : v1::JOB_STATE_FAILED));
    finishes.results_hex.push_back(Hex(m.result().SerializeAsString()));
    finishes.messages.push_back(m.succeeded() ? "finished on worker " + std::to_string(worker)
                                      : "failed on worker " + std::to_string(worker) + ": " + m.result().error());
    all_jobs.push_back(m.job_id());
  }
  return db_.Transact("apply job events", [&](pqxx::work& tx) -> absl::StatusOr<AppliedEvents> {
    store::Exec(tx, {"sched_lock_jobs", "SELECT 1 FROM jobs WHERE job_id = ANY($1::bigint[]) ORDER BY job_id FOR NO KEY UPDATE"},
                   ArrayLiteral(all_jobs));
    if (!s_job.empty()) lifecycle::RecordStarted(tx, s_job, s_attempt, s_worker);
    if (!p_job.empty()) lifecycle::RecordProgress(tx, p_job, p_attempt, p_worker, p_ppm, p_loss);
    AppliedEvents applied;
    if (f_job.empty()) return applied;
    for (const pqxx::row& r : lifecycle::RecordFinished(tx, finishes)) {
      if (r[2].as<int64_t>() == 0) {
        applied.ended.push_back(r[0].as<int64_t>());
      } else {
        applied.cancelled.push_back({.job_id = r[0].as<int64_t>(), .attempt = r[1].as<uint32_t>(), .worker_id = r[2].as<int64_t>(),
                                     .failed = true});
      }
    }
    return applied;
  });
}

absl::StatusOr<std::vector<Requeued>> SchedulerRepository::Requeue(
    const std::vector<std::pair<int64_t, uint32_t>>& assignments, const std::vector<int64_t>& offline_workers,
    const std::string& reason) {
  return db_.Transact("requeue", [&](pqxx::work& tx) -> absl::StatusOr<std::vector<Requeued>> {
    if (absl::Status leader = CheckEpoch(tx); !leader.ok()) return leader;
    // Worker rows before job rows: the lock order of a hello (ApplyHello) too.
    if (!offline_workers.empty()) {
      tx.exec_params0("UPDATE workers SET state = 'OFFLINE' WHERE worker_id = ANY($1::bigint[]) AND state IN ('ACTIVE', 'DRAINING')",
                      ArrayLiteral(offline_workers));
    }
    return lifecycle::EndLeases(tx, offline_workers, assignments, {}, reason);
  });
}

}  // namespace tessera::scheduler_host
