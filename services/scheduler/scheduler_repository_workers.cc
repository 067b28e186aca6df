// SchedulerRepository, the workers' side: registration, listing and retirement; a hello in one
// transaction (activate, plan its leases, requeue, resume, rendezvous); identity, drain, rendezvous
// offers, last-seen touches.
#include "services/scheduler/scheduler_repository.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/job_state_machine.h"
#include "services/lifecycle/job_lifecycle.h"
#include "services/scheduler/market_inputs.h"
#include "services/scheduler/scheduler_rows.h"
#include "services/scheduler/trust_repository.h"
#include "services/store/statement.h"

namespace tessera::scheduler_host {

using store::ArrayLiteral;
using store::Hex;

absl::StatusOr<v1::RegisterWorkerResponse> SchedulerRepository::RegisterWorker(const v1::RegisterWorkerRequest& request,
                                                                              const std::string& subnet, const TrustLimits& limits) {
  return db_.Transact("register worker", [&](pqxx::work& tx) -> absl::StatusOr<v1::RegisterWorkerResponse> {
    const pqxx::result account = tx.exec_params("SELECT account_id, kind FROM accounts WHERE name = $1",
                                                request.provider_account());
    if (account.empty()) return absl::NotFoundError(absl::StrCat("account '", request.provider_account(), "' not found"));
    if (account[0][1].as<std::string>() != "provider") {
      return absl::FailedPreconditionError(
          absl::StrCat("account '", request.provider_account(), "' is not a provider account"));
    }
    std::vector<std::string> uuids;
    for (const v1::Gpu& gpu : request.gpus()) uuids.push_back(gpu.uuid());
    const auto worker_id = tx.exec_params1(
        "INSERT INTO workers (provider_account_id, name, region, ask_utok_per_gpu_hour, state, policy, public_key)"
        " VALUES ($1, $2, $3, $4, 'PENDING_VERIFICATION', decode($5, 'hex'), NULLIF(decode($6, 'hex'), '')) RETURNING worker_id",
        account[0][0].as<int64_t>(), request.name(), request.region(), request.ask_utok_per_gpu_hour(),
        Hex(request.policy().SerializeAsString()), Hex(request.public_key()))[0].as<int64_t>();
    std::vector<int64_t> indexes, memory;
    std::vector<std::string> models, capabilities, buses, peers;
    for (const v1::Gpu& gpu : request.gpus()) {
      indexes.push_back(gpu.index());
      memory.push_back(static_cast<int64_t>(gpu.memory_mib()));
      models.push_back(gpu.model());
      capabilities.push_back(gpu.compute_capability());
      buses.push_back(gpu.pci_bus_id());
      peers.push_back(IndexLiteral({gpu.peer_indexes().begin(), gpu.peer_indexes().end()}));
    }
    tx.exec_params0(
        "INSERT INTO gpus (worker_id, gpu_index, model, memory_mib, compute_capability, uuid, pci_bus_id, peer_indexes)"
        " SELECT $1, i, m, mem, cc, u, bus, p::int[]"
        " FROM unnest($2::int[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[])"
        "   AS t(i, m, mem, cc, u, bus, p)",
        worker_id, ArrayLiteral(indexes), ArrayLiteral(models), ArrayLiteral(memory), ArrayLiteral(capabilities),
        ArrayLiteral(uuids), ArrayLiteral(buses), ArrayLiteral(peers));
    const bool quarantined = FlagRegistration(tx, worker_id, account[0][0].as<int64_t>(), uuids, subnet, limits);
    v1::RegisterWorkerResponse response;
    response.set_worker_id(worker_id);
    response.set_state(quarantined ? v1::WORKER_STATE_QUARANTINED : v1::WORKER_STATE_PENDING_VERIFICATION);
    return response;
  });
}

absl::StatusOr<std::vector<v1::Worker>> SchedulerRepository::ListWorkers(const WorkerQuery& query) {
  return db_.Transact("list workers", [&](pqxx::work& tx) -> absl::StatusOr<std::vector<v1::Worker>> {
    const pqxx::result rows = tx.exec_params(
        "SELECT w.worker_id, a.name, w.name, w.region, w.ask_utok_per_gpu_hour, w.state,"
        " coalesce((extract(epoch FROM w.last_seen_at) * 1000)::bigint, 0),"
        " (SELECT coalesce(sum(cardinality(gpu_indexes)), 0) FROM assignments s WHERE s.worker_id = w.worker_id AND s.state = 'LIVE'),"
        " w.reputation, w.policy, coalesce(w.public_key, ''), coalesce(w.job_kinds, '{}')"
        " FROM workers w JOIN accounts a ON a.account_id = w.provider_account_id"
        " WHERE ($1 = '' OR a.name = $1) AND ($2 = 0 OR w.worker_id = $2) AND w.worker_id < $3"
        " ORDER BY w.worker_id DESC LIMIT $4",
        query.provider_account, query.worker_id, query.before_worker_id, static_cast<int64_t>(query.limit));
    std::map<int64_t, v1::Worker> workers;
    std::vector<int64_t> order;
    for (const pqxx::row& r : rows) {
      v1::Worker& w = workers[r[0].as<int64_t>()];
      order.push_back(r[0].as<int64_t>());
      w.set_worker_id(r[0].as<int64_t>());
      w.set_provider_account(r[1].as<std::string>());
      w.set_name(r[2].as<std::string>());
      w.set_region(r[3].as<std::string>());
      w.set_ask_utok_per_gpu_hour(r[4].as<int64_t>());
      w.set_state(ParseWorkerState(r[5].as<std::string>()));
      w.set_last_seen_at_ms(r[6].as<int64_t>());
      w.set_busy_gpus(r[7].as<uint32_t>());
      w.set_reputation(r[8].as<int32_t>());
      w.mutable_policy()->ParseFromString(pqxx::binarystring(r[9]).str());
      w.set_public_key(pqxx::binarystring(r[10]).str());
      for (std::string& kind : store::ParseTextArray(r[11].as<std::string>())) w.add_job_kinds(std::move(kind));
    }
    const pqxx::result gpus = tx.exec_params(
        "SELECT worker_id, " GPU_COLUMNS " FROM gpus WHERE worker_id = ANY($1::bigint[]) ORDER BY worker_id, gpu_index",
        ArrayLiteral(order));
    for (const pqxx::row& r : gpus) *workers[r[0].as<int64_t>()].add_gpus() = GpuFromRow(r, 1);
    std::vector<v1::Worker> out;
    for (int64_t id : order) out.push_back(std::move(workers[id]));
    return out;
  });
}

absl::StatusOr<SchedulerRepository::ActivatedWorker> SchedulerRepository::ActivateInTx(
    pqxx::work& tx, int64_t worker_id, const v1::ProviderPolicy* policy, bool require_verification, bool draining,
    const WorkerProfile& profile) {
  using Result = ActivatedWorker;
  {
    const pqxx::result w = tx.exec_params(
        "SELECT state, verified_at IS NOT NULL, name, region, ask_utok_per_gpu_hour FROM workers WHERE worker_id = $1 FOR NO KEY UPDATE",
        worker_id);
    if (w.empty()) return absl::NotFoundError(absl::StrCat("worker ", worker_id, " is not registered"));
    v1::WorkerState state = ParseWorkerState(w[0][0].as<std::string>());
    if (state == v1::WORKER_STATE_QUARANTINED) return absl::PermissionDeniedError(absl::StrCat("worker ", worker_id, " is quarantined"));
    if (state == v1::WORKER_STATE_RETIRED) {
      return absl::FailedPreconditionError(absl::StrCat("worker ", worker_id, " is retired and cannot connect again; register the "
                                                        "machine as a new worker (remove worker-id and worker.ed25519 from the "
                                                        "agent's state dir)"));
    }
    UpdateProfile(tx, worker_id, w[0], profile);
    if (require_verification && (state == v1::WORKER_STATE_PENDING_VERIFICATION || !w[0][1].as<bool>())) {
      state = v1::WORKER_STATE_PENDING_VERIFICATION;  // no job until it passes a GPU challenge
    } else {
      const v1::WorkerState now = draining ? v1::WORKER_STATE_DRAINING : v1::WORKER_STATE_ACTIVE;
      if ((state == v1::WORKER_STATE_DRAINING) != draining) {
        tx.exec_params0("INSERT INTO audit_log (action, subject, detail) VALUES ($1, $2, 'in its hello')",
                        draining ? "worker.drain" : "worker.undrain", absl::StrCat("worker/", worker_id));
      }
      state = now;
    }
    tx.exec_params0(
        "UPDATE workers SET state = $2, last_seen_at = now(), policy = CASE WHEN $3 THEN decode($4, 'hex') ELSE policy END,"
        " job_kinds = CASE WHEN $5 THEN NULL ELSE $6::text[] END WHERE worker_id = $1",
        worker_id, std::string(WorkerStateName(state)), policy != nullptr, policy == nullptr ? "" : Hex(policy->SerializeAsString()),
        profile.job_kinds.empty(), ArrayLiteral(profile.job_kinds));
    Result result;
    result.first = std::move(LoadWorkerRecords(tx, {worker_id}).at(0));
    static const std::string kLiveOfWorker = absl::StrCat(
        "SELECT ", kAssignmentColumns, " FROM assignments a JOIN jobs j USING (job_id)"
        " JOIN accounts c ON c.account_id = j.account_id WHERE a.worker_id = $1 AND a.state = 'LIVE'");
    for (const pqxx::row& r : store::Exec(tx, {"sched_live_of_worker", kLiveOfWorker.c_str()}, worker_id)) {
      result.second.push_back(AssignmentFromRow(r));
    }
    return result;
  }
}

void SchedulerRepository::UpdateProfile(pqxx::work& tx, int64_t worker_id, const pqxx::row& stored, const WorkerProfile& profile) {
  const std::string name = profile.name.empty() ? stored[2].as<std::string>() : profile.name;
  const std::string region = profile.region.empty() ? stored[3].as<std::string>() : profile.region;
  const int64_t ask = profile.ask_utok_per_gpu_hour == 0 ? stored[4].as<int64_t>() : profile.ask_utok_per_gpu_hour;
  std::vector<std::string> changes;
  if (name != stored[2].as<std::string>()) changes.push_back(absl::StrCat("name '", stored[2].as<std::string>(), "' → '", name, "'"));
  if (region != stored[3].as<std::string>()) changes.push_back(absl::StrCat("region '", stored[3].as<std::string>(), "' → '", region, "'"));
  if (ask != stored[4].as<int64_t>()) changes.push_back(absl::StrCat("ask ", stored[4].as<int64_t>(), " → ", ask, " µT/GPU-h"));
  if (changes.empty()) return;
  tx.exec_params0("UPDATE workers SET name = $2, region = $3, ask_utok_per_gpu_hour = $4 WHERE worker_id = $1", worker_id, name, region,
                  ask);
  tx.exec_params0("INSERT INTO audit_log (action, subject, detail) VALUES ('worker.reconfigure', $1, $2)",
                  absl::StrCat("worker/", worker_id), absl::StrCat("in its hello: ", absl::StrJoin(changes, "; ")));
}

absl::StatusOr<v1::Worker> SchedulerRepository::RetireWorker(int64_t worker_id, int64_t provider_account_id, const std::string& reason,
                                                             const std::string& actor_key_id) {
  absl::Status outcome = db_.Transact("retire worker", [&](pqxx::work& tx) -> absl::Status {
    const pqxx::result w = tx.exec_params(
        "SELECT state, provider_account_id FROM workers WHERE worker_id = $1 FOR NO KEY UPDATE", worker_id);
    // Another provider's worker is not found, exactly like one that never was.
    if (w.empty() || (provider_account_id != 0 && w[0][1].as<int64_t>() != provider_account_id)) {
      return absl::NotFoundError(absl::StrCat("worker ", worker_id, " not found"));
    }
    if (w[0][0].as<std::string>() == "RETIRED") return absl::OkStatus();
    const pqxx::result live = tx.exec_params(
        "SELECT job_id, attempt FROM assignments WHERE worker_id = $1 AND state = 'LIVE' ORDER BY job_id LIMIT 1", worker_id);
    if (!live.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("worker ", worker_id, " still holds the lease of job ", live[0][0].as<int64_t>(),
                                                        " attempt ", live[0][1].as<int64_t>(),
                                                        ": stop its agent, then retire it once the lease has ended"));
    }
    tx.exec_params0("UPDATE workers SET state = 'RETIRED', retired_at = now() WHERE worker_id = $1", worker_id);
    tx.exec_params0("INSERT INTO audit_log (actor_key_id, action, subject, detail) VALUES (NULLIF($1, ''), 'worker.retire', $2, $3)",
                    actor_key_id, absl::StrCat("worker/", worker_id), reason);
    return absl::OkStatus();
  });
  if (!outcome.ok()) return outcome;
  absl::StatusOr<std::vector<v1::Worker>> workers = ListWorkers({.provider_account = "", .worker_id = worker_id, .before_worker_id = INT64_MAX, .limit = 1});
  if (!workers.ok()) return workers.status();
  if (!workers->empty()) return std::move(workers->front());
  return absl::InternalError(absl::StrCat("worker ", worker_id, " vanished after its retirement"));
}

absl::StatusOr<bool> SchedulerRepository::DrainWorker(int64_t worker_id, const std::string& reason) {
  return db_.Transact("drain worker", [&](pqxx::work& tx) -> absl::StatusOr<bool> {
    const pqxx::result changed =
        tx.exec_params("UPDATE workers SET state = 'DRAINING' WHERE worker_id = $1 AND state = 'ACTIVE' RETURNING 1", worker_id);
    if (changed.empty()) return false;
    tx.exec_params0("INSERT INTO audit_log (action, subject, detail) VALUES ('worker.drain', $1, $2)", absl::StrCat("worker/", worker_id),
                    reason);
    return true;
  });
}

absl::StatusOr<WorkerIdentity> SchedulerRepository::Identify(int64_t worker_id, int64_t provider_account_id) {
  return db_.Transact("identify worker", [&](pqxx::work& tx) -> absl::StatusOr<WorkerIdentity> {
    static constexpr store::Statement kIdentify{
        "sched_identify_worker", "SELECT provider_account_id, coalesce(public_key, '') FROM workers WHERE worker_id = $1"};
    const pqxx::result w = store::Exec(tx, kIdentify, worker_id);
    if (provider_account_id != 0 && (w.empty() || w[0][0].as<int64_t>() != provider_account_id)) {
      return absl::PermissionDeniedError(absl::StrCat("worker ", worker_id, " is not a worker of this API key's provider account"));
    }
    if (w.empty()) return absl::NotFoundError(absl::StrCat("worker ", worker_id, " is not registered"));
    return WorkerIdentity{.provider_account_id = w[0][0].as<int64_t>(), .public_key = pqxx::binarystring(w[0][1]).str()};
  });
}

namespace {

std::vector<uint32_t> NodeGpuCounts(pqxx::work& tx, int64_t job_id, uint32_t attempt) {
  std::vector<uint32_t> counts;
  for (const pqxx::row& r : tx.exec_params("SELECT cardinality(gpu_indexes) FROM assignments WHERE job_id = $1 AND attempt = $2"
                                           " ORDER BY node_rank", job_id, attempt)) {
    counts.push_back(r[0].as<uint32_t>());
  }
  return counts;
}

}  // namespace

absl::StatusOr<RendezvousOut> SchedulerRepository::RecordRendezvous(int64_t worker_id, const v1::RendezvousOffer& offer) {
  return db_.Transact("record rendezvous", [&](pqxx::work& tx) -> absl::StatusOr<RendezvousOut> {
    const pqxx::result leases = tx.exec_params(
        "SELECT worker_id, node_rank FROM assignments WHERE job_id = $1 AND attempt = $2 AND state = 'LIVE' FOR SHARE",
        offer.job_id(), offer.attempt());
    RendezvousOut out{.job_id = offer.job_id(), .attempt = offer.attempt(), .unique_id = {}, .node_gpu_counts = {}, .recipients = {}};
    bool is_rank_zero = false;
    for (const pqxx::row& r : leases) {
      if (r[0].as<int64_t>() == worker_id) {
        is_rank_zero = r[1].as<int>() == 0;
      } else {
        out.recipients.push_back(r[0].as<int64_t>());
      }
    }
    if (!is_rank_zero) {
      return absl::PermissionDeniedError(absl::StrCat("worker ", worker_id, " holds no live node-rank-0 lease of job ",
                                                      offer.job_id(), " attempt ", offer.attempt()));
    }
    tx.exec_params0(
        "INSERT INTO job_rendezvous (job_id, attempt, unique_id) VALUES ($1, $2, decode($3, 'hex')) ON CONFLICT DO NOTHING",
        offer.job_id(), offer.attempt(), Hex(offer.unique_id()));
    out.unique_id = pqxx::binarystring(tx.exec_params1("SELECT unique_id FROM job_rendezvous WHERE job_id = $1 AND attempt = $2",
                                                       offer.job_id(), offer.attempt())[0]).str();
    out.node_gpu_counts = NodeGpuCounts(tx, offer.job_id(), offer.attempt());
    return out;
  });
}


namespace {

// The rendezvous of every live lease of `worker_id` at node rank > 0 that has one.
std::vector<RendezvousOut> RendezvousOf(pqxx::work& tx, int64_t worker_id) {
  std::vector<RendezvousOut> out;
  for (const pqxx::row& r : tx.exec_params(
           "SELECT r.job_id, r.attempt, r.unique_id FROM job_rendezvous r JOIN assignments a USING (job_id, attempt)"
           " WHERE a.worker_id = $1 AND a.state = 'LIVE' AND a.node_rank > 0",
           worker_id)) {
    RendezvousOut& o = out.emplace_back();
    o.job_id = r[0].as<int64_t>();
    o.attempt = r[1].as<uint32_t>();
    o.unique_id = pqxx::binarystring(r[2]).str();
    o.node_gpu_counts = NodeGpuCounts(tx, o.job_id, o.attempt);
  }
  return out;
}

// The leases of `runs` made live again on `worker_id` (lifecycle::ResumeLeases), as the host reads them.
std::vector<LiveAssignment> ResumeOf(pqxx::work& tx, int64_t worker_id, const std::vector<RunKey>& runs) {
  std::vector<int64_t> jobs, attempts;
  for (const auto& [job, attempt] : runs) {
    jobs.push_back(job);
    attempts.push_back(attempt);
  }
  const std::vector<int64_t> ids = lifecycle::ResumeLeases(tx, worker_id, jobs, attempts);
  std::vector<LiveAssignment> out;
  if (ids.empty()) return out;
  static const std::string kResumed = absl::StrCat(
      "SELECT ", kAssignmentColumns, " FROM assignments a JOIN jobs j USING (job_id)"
      " JOIN accounts c ON c.account_id = j.account_id WHERE a.worker_id = $1 AND a.state = 'LIVE' AND a.job_id = ANY($2::bigint[])");
  for (const pqxx::row& r : store::Exec(tx, {"sched_resumed_leases", kResumed.c_str()}, worker_id, ArrayLiteral(ids))) {
    out.push_back(AssignmentFromRow(r));
  }
  return out;
}

}  // namespace

absl::StatusOr<AppliedHello> SchedulerRepository::ApplyHello(const v1::Hello& hello, bool require_verification) {
  const WorkerProfile profile{.name = hello.name(), .region = hello.region(), .ask_utok_per_gpu_hour = hello.ask_utok_per_gpu_hour(),
                              .job_kinds = {hello.job_kinds().begin(), hello.job_kinds().end()}};
  return db_.Transact("hello", [&](pqxx::work& tx) -> absl::StatusOr<AppliedHello> {
    // A deposed leader's hello: the agent is to reconnect (to the new leader), not give up, as it
    // would on FAILED_PRECONDITION before its welcome.
    if (absl::Status leader = CheckEpoch(tx); !leader.ok()) {
      return absl::UnavailableError(absl::StrCat(leader.message(), "; reconnect to the leader"));
    }
    absl::StatusOr<ActivatedWorker> activated = ActivateInTx(tx, hello.worker_id(), hello.has_policy() ? &hello.policy() : nullptr,
                                                             require_verification, hello.draining(), profile);
    if (!activated.ok()) return activated.status();
    auto& [record, live] = *activated;
    AppliedHello out;
    out.worker = std::move(record);
    std::vector<LiveLease> leases;
    std::map<RunKey, LiveAssignment*> by_run;
    for (LiveAssignment& a : live) {
      leases.push_back({.run = {a.job_id, a.attempt}, .started = a.running});
      by_run[{a.job_id, a.attempt}] = &a;
    }
    const HelloPlan plan = PlanHello(leases, RunsOf(hello.running()), RunsOf(hello.lost()));
    for (const RunKey& run : plan.keep) out.keep.push_back(std::move(*by_run.at(run)));
    // The agent says it runs these: a run whose JobStarted was lost (its stream broke, or the
    // write of the job events failed) is RUNNING from now. Left ASSIGNED, an agent restart would get
    // it assigned again and run it a second time with the same usage seqs, flagged as replays (the
    // simulation found this, issue 17).
    std::vector<int64_t> s_job, s_attempt, s_worker;
    for (LiveAssignment& a : out.keep) {
      if (a.running) continue;
      s_job.push_back(a.job_id);
      s_attempt.push_back(a.attempt);
      s_worker.push_back(a.worker_id);
      a.running = true;
    }
    if (!s_job.empty()) lifecycle::RecordStarted(tx, s_job, s_attempt, s_worker);
    for (const RunKey& run : plan.resend) out.resend.push_back(std::move(*by_run.at(run)));
    if (!plan.requeue.empty()) out.requeued = lifecycle::EndLeases(tx, {}, plan.requeue, {}, "worker restarted without the job");
    // Runs it kept through a blip longer than its lease: resumed where nothing took their place,
    // otherwise left to cancel on the worker.
    std::set<RunKey> resumed;
    if (!plan.not_live.empty()) {
      for (LiveAssignment& a : ResumeOf(tx, out.worker.worker_id, plan.not_live)) {
        resumed.insert({a.job_id, a.attempt});
        out.resumed.push_back({a.job_id, a.attempt});
        out.keep.push_back(std::move(a));
      }
    }
    for (const RunKey& run : plan.not_live) {
      if (!resumed.contains(run)) out.not_live.push_back(run);
    }
    out.rendezvous = RendezvousOf(tx, out.worker.worker_id);
    return out;
  });
}

absl::Status SchedulerRepository::TouchWorkers(const std::vector<int64_t>& worker_ids) {
  if (worker_ids.empty()) return absl::OkStatus();
  return db_.Transact("touch workers", [&](pqxx::work& tx) {
    tx.exec_params0("UPDATE workers SET last_seen_at = now() WHERE worker_id = ANY($1::bigint[])", ArrayLiteral(worker_ids));
    return absl::OkStatus();
  });
}

}  // namespace tessera::scheduler_host
