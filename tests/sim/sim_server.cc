// The simulated server: intake, the scheduler host's control flow around the real Market (hello
// reconciliation, lease expiry, preemption) and billing around the real usage checks and
// settlement arithmetic. Each store change below stands for one transaction of the real server.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/common/money.h"
#include "services/scheduler/hello_plan.h"
#include "tests/sim/sim_model.h"

namespace tessera::sim {
namespace {

constexpr int64_t kLeaseTimeoutMs = 10'000;
constexpr int64_t kSettleEveryMs = 1'000;
constexpr int64_t kMarketTickEveryMs = 500;

std::string Sig(const Message& m) { return absl::StrCat(m.worker_id, "/", m.job_id, "/", m.attempt, "/", m.seq, "/", m.gpu_ms); }

}  // namespace

void World::ServerStart() {
  server_ = ServerState{};
  RebuildMarket();
}

void World::RebuildMarket() {
  server_.market = std::make_unique<scheduler::Market>();
  scheduler::Market& market = *server_.market;
  for (const auto& [id, spec] : store_.workers) {
    market.UpsertWorker(spec);
    market.SetSchedulable(id, false, now_ms_);  // until its hello
  }
  // Rebuilt from the store of record: running jobs with their GPUs, then the queue in submit order.
  std::map<int64_t, std::vector<scheduler::PlacedGpu>> running;
  for (const auto& [key, lease] : store_.leases) {
    if (!lease.live) continue;
    const auto& [job_id, attempt, worker_id] = key;
    for (uint32_t g : lease.gpus) running[job_id].push_back({.worker_id = worker_id, .index = g, .price_utok_per_gpu_hour = lease.price});
    server_.lease_clock.try_emplace(worker_id, now_ms_);  // every worker that may hold a lease gets a lease clock from now
  }
  for (const auto& [job_id, gpus] : running) {
    if (!market.RestoreRunning(store_.jobs.at(job_id).req, gpus, now_ms_)) Violation(absl::StrCat("job ", job_id, ": restore refused its GPUs"));
  }
  for (const auto& [job_id, job] : store_.jobs) {
    if (job.state == JobState::kQueued) Commit(market.AddJob(job.req, now_ms_));
  }
  for (const auto& [worker_id, conn] : server_.sessions) Commit(market.SetSchedulable(worker_id, true, now_ms_));
  Note(absl::StrCat("market rebuilt from the store: ", running.size(), " running, ", market.queued_jobs(), " queued"));
}

void World::ServerCrash(Rng& fault) {
  server_.up = false;
  server_.down_until_ms = now_ms_ + fault.Uniform(1, 5) * 1'000;
  server_.market.reset();
  server_.sessions.clear();
  // The process that held the streams is gone: nothing in flight on them reaches the next one.
  for (SimWorker& w : workers_) {
    cut_conns_.insert(w.conn);
    CloseConn(w, "server crashed");
  }
  Note(absl::StrCat("server crashed; back at ", server_.down_until_ms));
}

void World::SendToWorker(int64_t worker_id, Message m) {
  auto s = server_.sessions.find(worker_id);
  if (s == server_.sessions.end()) return;  // no stream: the worker learns at its next hello
  m.worker_id = worker_id;
  m.conn = s->second;
  Send(std::move(m), /*to_server=*/false);
}

void World::Submit(const std::string& key) {
  if (store_.submit_keys.contains(key)) return;  // a retry of an accepted submit: the same job
  StoreJob job = requests_.at(key);
  absl::StatusOr<int64_t> hold = HoldAmount(job.req.bid_utok_per_gpu_hour, job.req.gpu_count, job.req.max_duration_ms);
  if (!hold.ok()) return Violation("hold amount: " + hold.status().ToString());
  if (store_.balances[AvailableOf(job.customer)] < *hold) {
    Note(absl::StrCat(key, " refused: ", *hold, " µT to hold, ", store_.balances[AvailableOf(job.customer)], " available"));
    return;  // FAILED_PRECONDITION: the customer does not retry
  }
  const int64_t id = store_.next_job_id++;
  job.req.job_id = id;
  job.req.submitted_at_ms = now_ms_;
  job.hold_utok = *hold;
  if (const std::string error = store_.Post({{.idempotency_key = absl::StrCat("hold:", id), .kind = "HOLD",
                                               .debit_ledger_id = AvailableOf(job.customer), .credit_ledger_id = EscrowOf(job.customer),
                                               .amount_utok = *hold, .job_id = id}});
      !error.empty()) {
    return Violation("hold: " + error);
  }
  store_.jobs[id] = job;
  store_.submit_keys[key] = id;
  accepted_jobs_.insert(id);
  Note(absl::StrCat(key, " accepted as job ", id, ": ", job.req.gpu_count, " GPUs, hold ", *hold));
  Commit(server_.market->AddJob(job.req, now_ms_));
}

void World::Cancel(int64_t job_id) {
  StoreJob& job = store_.jobs.at(job_id);
  if (Terminal(job.state)) return;
  EndLiveLeases(job_id, job.attempt);
  job.state = JobState::kCancelled;
  Note(absl::StrCat("job ", job_id, " cancelled"));
  Commit(server_.market->RemoveJob(job_id, now_ms_));
}

// Ends the live leases of the job's attempt (only the current attempt holds any) and sends their
// workers a cancel.
void World::EndLiveLeases(int64_t job_id, uint32_t attempt) {
  for (auto it = store_.leases.lower_bound({job_id, attempt, 0});
       it != store_.leases.end() && std::get<0>(it->first) == job_id && std::get<1>(it->first) == attempt; ++it) {
    if (!it->second.live) continue;
    it->second.live = false;
    SendToWorker(std::get<2>(it->first), {.kind = Message::kCancel, .job_id = job_id, .attempt = attempt});
  }
}

// A lost lease requeues the job until its attempts run out; a preemption always requeues it.
void World::EndLeases(int64_t job_id, bool fail_if_exhausted, const std::string& why) {
  StoreJob& job = store_.jobs.at(job_id);
  EndLiveLeases(job_id, job.attempt);
  const bool failed = fail_if_exhausted && job.attempt >= job.max_attempts;
  job.state = failed ? JobState::kFailed : JobState::kQueued;
  Note(absl::StrCat("job ", job_id, " attempt ", job.attempt, " lost (", why, "): ", StateName(job.state)));
}

void World::LoseLeases(int64_t job_id, const std::string& why) {
  EndLeases(job_id, true, why);
  const bool failed = store_.jobs.at(job_id).state == JobState::kFailed;
  Commit(failed ? server_.market->RemoveJob(job_id, now_ms_) : server_.market->Requeue(job_id, now_ms_));
}

void World::Commit(const scheduler::Decisions& d) {
  for (int64_t job_id : d.preempted) EndLeases(job_id, false, "preempted");  // the core requeued it already
  for (const scheduler::JobPlacement& p : d.placements) {
    StoreJob& job = store_.jobs.at(p.job_id);
    if (job.state != JobState::kQueued) Violation(absl::StrCat("job ", p.job_id, " placed while ", StateName(job.state)));
    job.attempt += 1;
    job.state = JobState::kAssigned;
    std::map<int64_t, std::vector<uint32_t>> by_worker;
    std::map<int64_t, int64_t> price;
    for (const scheduler::PlacedGpu& g : p.gpus) {
      by_worker[g.worker_id].push_back(g.index);
      price[g.worker_id] = g.price_utok_per_gpu_hour;
    }
    for (const auto& [worker_id, gpus] : by_worker) {
      StoreLease lease{.gpus = gpus, .price = price[worker_id], .created_at_ms = now_ms_};
      lease.money = {.price = lease.price, .gpus = static_cast<int64_t>(gpus.size()), .earnings_ledger_id = EarningsOf(worker_id)};
      store_.leases[{p.job_id, job.attempt, worker_id}] = lease;
      server_.lease_clock.try_emplace(worker_id, now_ms_);
      SendToWorker(worker_id, {.kind = Message::kAssign, .job_id = p.job_id, .attempt = job.attempt, .gpus = gpus, .work_ms = job.work_ms});
      Note(absl::StrCat("job ", p.job_id, " attempt ", job.attempt, " → worker ", worker_id, " GPUs ", gpus.size(), " at ", lease.price));
    }
  }
}

void World::OnServerMessage(const Message& m) {
  auto s = server_.sessions.find(m.worker_id);
  const bool current = s != server_.sessions.end() && s->second == m.conn;
  if (m.kind == Message::kHello) {
    if (!closed_conns_.contains(m.conn)) OnHello(m);
    return;
  }
  if (current) server_.lease_clock[m.worker_id] = now_ms_;
  switch (m.kind) {
    case Message::kStarted: return OnStarted(m);
    case Message::kUsage: return OnUsage(m);
    case Message::kFinished: return OnFinished(m);
    default: return;
  }
}

void World::OnHello(const Message& m) {
  server_.sessions[m.worker_id] = m.conn;
  server_.lease_clock[m.worker_id] = now_ms_;
  // The product's rule for a hello (hello_plan.h): keep, resend, requeue the lost, resume or cancel the rest.
  std::vector<scheduler_host::LiveLease> live;
  for (const auto& [key, lease] : store_.leases) {
    const auto& [job_id, attempt, worker_id] = key;
    if (worker_id == m.worker_id && lease.live) live.push_back({.run = {job_id, attempt}, .started = lease.started});
  }
  const scheduler_host::HelloPlan plan = scheduler_host::PlanHello(live, m.running, m.lost);
  std::vector<scheduler_host::LeaseKey> resend;
  for (const auto& [job_id, attempt] : plan.resend) resend.emplace_back(job_id, attempt, m.worker_id);
  std::vector<int64_t> lost;
  if (options_.bug != InjectedBug::kNoRequeueOnHello) {
    for (const auto& [job_id, attempt] : plan.requeue) lost.push_back(job_id);
  }
  for (int64_t job_id : lost) LoseLeases(job_id, "worker restarted without the job");
  // Runs it kept through a blip longer than its lease: resumed where nothing took their place (the
  // job still queued on that attempt, this the attempt's only lease, its GPUs free), as the
  // scheduler repository's ResumeLeases does; the market is rebuilt to hold them.
  bool resumed = false;
  for (const auto& [job_id, attempt] : plan.not_live) {
    auto it = store_.leases.find({job_id, attempt, m.worker_id});
    StoreJob& job = store_.jobs.at(job_id);
    if (it == store_.leases.end() || it->second.live || job.state != JobState::kQueued || job.attempt != attempt) continue;
    bool alone = true, gpus_free = true;
    for (const auto& [key, other] : store_.leases) {
      const auto& [other_job, other_attempt, other_worker] = key;
      if (other_job == job_id && other_attempt == attempt && other_worker != m.worker_id) alone = false;
      if (other_worker == m.worker_id && other.live) {
        for (uint32_t g : other.gpus) gpus_free = gpus_free && std::find(it->second.gpus.begin(), it->second.gpus.end(), g) == it->second.gpus.end();
      }
    }
    if (!alone || !gpus_free) continue;
    it->second.live = true;
    it->second.started = true;  // it runs the job, whether or not its JobStarted arrived
    job.state = JobState::kRunning;
    resumed = true;
    Note(absl::StrCat("job ", job_id, " attempt ", attempt, " resumed on worker ", m.worker_id));
  }

  // As the host does: the welcome, then the cancels (freeing the worker's GPUs), then the resends.
  SendToWorker(m.worker_id, {.kind = Message::kWelcome});
  for (const auto& [job_id, attempt] : plan.not_live) {
    auto it = store_.leases.find({job_id, attempt, m.worker_id});
    if (it == store_.leases.end() || !it->second.live) {
      SendToWorker(m.worker_id, {.kind = Message::kCancel, .job_id = job_id, .attempt = attempt});
    }
  }
  for (const auto& key : resend) {
    const StoreLease& lease = store_.leases.at(key);
    SendToWorker(m.worker_id, {.kind = Message::kAssign, .job_id = std::get<0>(key), .attempt = std::get<1>(key), .gpus = lease.gpus,
                               .work_ms = store_.jobs.at(std::get<0>(key)).work_ms});
  }
  Note(absl::StrCat("hello from worker ", m.worker_id, " on stream ", m.conn, " running ", m.running.size(), ", lost ", m.lost.size()));
  // Last, as the host's decisions are committed after the hello's messages are sent: no new
  // assignment can overtake a cancel that frees its GPUs.
  if (resumed) return RebuildMarket();
  Commit(server_.market->SetSchedulable(m.worker_id, true, now_ms_));
}

void World::OnStarted(const Message& m) {
  auto it = store_.leases.find({m.job_id, m.attempt, m.worker_id});
  if (it == store_.leases.end() || !it->second.live) return;
  it->second.started = true;
  StoreJob& job = store_.jobs.at(m.job_id);
  if (job.state == JobState::kAssigned && job.attempt == m.attempt) job.state = JobState::kRunning;
}

void World::OnUsage(const Message& m) {
  scheduler_host::UsageIn in{.worker_id = m.worker_id, .report = {}};
  in.report.set_job_id(m.job_id);
  in.report.set_attempt(m.attempt);
  in.report.set_seq(m.seq);
  in.report.set_gpu_ms(m.gpu_ms);
  in.report.set_measured_at_ms(m.measured_at_ms);
  in.report.set_signature(Sig(m));
  const scheduler_host::LeaseKey key = scheduler_host::LeaseKeyOf(in);
  const scheduler_host::ReportKey report_key = scheduler_host::ReportKeyOf(in);
  auto lease_it = store_.leases.find(key);
  scheduler_host::IngestLease lease;
  if (lease_it != store_.leases.end()) {
    lease = {.exists = true, .created_at_ms = lease_it->second.created_at_ms, .gpus = static_cast<int64_t>(lease_it->second.gpus.size()),
             .totals = lease_it->second.ingest};
  }
  std::map<scheduler_host::ReportKey, scheduler_host::ReportContent> stored;
  if (auto r = store_.reports.find(report_key); r != store_.reports.end()) stored.emplace(report_key, r->second.content);
  std::string reason;
  scheduler_host::FraudSignal signal;
  const scheduler_host::Verdict verdict = ScreenReport(in, lease, lease.totals, now_ms_, stored, {}, reason, signal);
  bool accepted = verdict == scheduler_host::Verdict::kDuplicate;
  if (verdict == scheduler_host::Verdict::kNew) {
    if (lease_it->second.live) {
      lease_it->second.ingest.Add(in.report);
      store_.reports[report_key] = {.content = {in.report.signature(), m.gpu_ms}, .measured_at_ms = m.measured_at_ms};
      store_.unsettled.insert(report_key);
      accepted = true;
    } else {
      reason = "the lease has ended";
    }
  }
  // Every simulated worker is honest, and the faults it meets (crashes, partitions, duplicates,
  // delays, reordering) must not make it look like fraud. Only a clock jump may: a report dated over
  // 60 s ahead is FUTURE_DATED by design, as a worker whose clock runs ahead is not trusted (and
  // that report, resent once a later one was stored, comes after it).
  if (signal.kind == "FUTURE_DATED") future_dated_.insert(report_key);
  const bool clock = signal.kind == "FUTURE_DATED" || (signal.kind == "REPLAYED_REPORT" && future_dated_.contains(report_key));
  if (!signal.kind.empty() && !clock) {
    return Violation(absl::StrCat("honest worker ", m.worker_id, " flagged ", signal.kind, " for job ", m.job_id, "/", m.attempt,
                                  " seq ", m.seq, ": ", reason));
  }
  if (!accepted) {
    ++result_.reports_refused;
    Note(absl::StrCat("usage job ", m.job_id, "/", m.attempt, " seq ", m.seq, " from worker ", m.worker_id, " refused: ", reason,
                      signal.kind.empty() ? "" : " [" + signal.kind + "]"));
  }
  SendToWorker(m.worker_id, {.kind = Message::kUsageAck, .job_id = m.job_id, .attempt = m.attempt, .seq = m.seq, .ok = accepted});
}

void World::OnFinished(const Message& m) {
  SendToWorker(m.worker_id, {.kind = Message::kFinishedAck, .job_id = m.job_id, .attempt = m.attempt});
  auto it = store_.leases.find({m.job_id, m.attempt, m.worker_id});
  if (it == store_.leases.end() || !it->second.live) return;  // ended already (cancel, expiry): acknowledged, nothing changes
  it->second.live = false;
  StoreJob& job = store_.jobs.at(m.job_id);
  if (job.attempt != m.attempt || Terminal(job.state) || job.state == JobState::kQueued) return;
  if (!m.ok) {
    EndLiveLeases(m.job_id, m.attempt);  // the job's other workers stop too
    job.state = JobState::kFailed;
  } else if (store_.LiveLeasesOf(m.job_id, m.attempt).empty()) {
    job.state = JobState::kSucceeded;
  } else {
    return;  // a spread job ends with its last worker
  }
  Note(absl::StrCat("job ", m.job_id, " ", StateName(job.state), " on worker ", m.worker_id));
  Commit(server_.market->FinishJob(m.job_id, now_ms_));
}

void World::ExpireLeases() {
  std::set<int64_t> silent;
  for (const auto& [key, lease] : store_.leases) {
    const int64_t worker_id = std::get<2>(key);
    if (!lease.live) continue;
    auto clock = server_.lease_clock.find(worker_id);
    if (clock != server_.lease_clock.end() && now_ms_ - clock->second > kLeaseTimeoutMs) silent.insert(worker_id);
  }
  for (int64_t worker_id : silent) {
    std::set<int64_t> jobs;
    for (const auto& [key, lease] : store_.leases) {
      if (lease.live && std::get<2>(key) == worker_id) jobs.insert(std::get<0>(key));
    }
    for (int64_t job_id : jobs) {
      if (options_.bug == InjectedBug::kStaleLease) {  // the defect: requeued, but the lease left live
        StoreJob& job = store_.jobs.at(job_id);
        job.state = JobState::kQueued;
        Commit(server_.market->Requeue(job_id, now_ms_));
        continue;
      }
      LoseLeases(job_id, absl::StrCat("lease expired: worker ", worker_id, " silent"));
    }
    server_.lease_clock.erase(worker_id);
    CloseConn(workers_[static_cast<size_t>(worker_id - 1)], "lease expired");
  }
}

void World::ServerTick() {
  ExpireLeases();
  if (now_ms_ % kMarketTickEveryMs == 0) Commit(server_.market->Tick(now_ms_));
  if (now_ms_ % kSettleEveryMs == 0) {
    SettleOnce();
    ReleaseEnded();
  }
}

void World::SettleOnce() {
  if (Fire(&FaultRates::settlement_crash)) return Note("settlement pass crashed before commit");
  const size_t max_reports = static_cast<size_t>(rng_.Uniform(1, 64));
  std::vector<billing::UnsettledReport> batch;
  std::vector<scheduler_host::ReportKey> keys;
  for (const scheduler_host::ReportKey& k : store_.unsettled) {
    if (batch.size() == max_reports) break;
    const StoreReport& r = store_.reports.at(k);
    const auto& [job_id, attempt, worker_id, seq] = k;
    batch.push_back({.job_id = job_id, .attempt = attempt, .worker_id = worker_id, .seq = static_cast<int64_t>(seq),
                     .gpu_ms = r.content.second, .measured_at_ms = r.measured_at_ms});
    keys.push_back(k);
  }
  if (batch.empty()) return;
  std::map<int64_t, billing::JobMoney> jobs;
  std::map<billing::LeaseKey, billing::LeaseMoney> leases;
  for (const billing::UnsettledReport& r : batch) {
    const StoreJob& job = store_.jobs.at(r.job_id);
    jobs[r.job_id] = {.hold_utok = job.hold_utok, .charged_utok = job.charged_utok, .fee_bps = job.fee_bps,
                      .escrow_ledger_id = EscrowOf(job.customer), .attempt = job.attempt, .max_duration_ms = job.req.max_duration_ms};
    leases[{r.job_id, r.attempt, r.worker_id}] = store_.leases.at({r.job_id, static_cast<uint32_t>(r.attempt), r.worker_id}).money;
  }
  const billing::BatchCharges charges = billing::ChargeBatch(batch, jobs, leases);
  const int64_t batch_id = store_.next_batch_id++;
  if (const std::string error = store_.Post(billing::BatchTransfers(batch_id, kFees, jobs, leases)); !error.empty()) {
    return Violation("settlement batch " + std::to_string(batch_id) + ": " + error);
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    StoreReport& r = store_.reports.at(keys[i]);
    if (r.settled) Violation("a report was settled twice");
    r.charge_utok = charges.reports[i].charge_utok;
    r.fee_utok = charges.reports[i].fee_utok;
    if (options_.bug == InjectedBug::kResettle && i == 0 && rng_.Chance(100'000)) continue;  // the defect: left unsettled
    r.settled = true;
    store_.unsettled.erase(keys[i]);
    ++result_.reports_settled;
  }
  for (auto& [key, money] : leases) {
    money.batch_charge_utok = money.batch_fee_utok = 0;
    store_.leases.at({std::get<0>(key), static_cast<uint32_t>(std::get<1>(key)), std::get<2>(key)}).money = money;
  }
  for (const auto& [job_id, money] : jobs) store_.jobs.at(job_id).charged_utok = money.charged_utok;
  Note(absl::StrCat("settled batch ", batch_id, ": ", batch.size(), " reports, ", charges.charged_utok, " µT"));
  for (const auto& [key, money] : leases) CheckLease({std::get<0>(key), static_cast<uint32_t>(std::get<1>(key)), std::get<2>(key)});
}

void World::ReleaseEnded() {
  for (auto& [job_id, job] : store_.jobs) {
    if (!Terminal(job.state) || !job.hold_pending) continue;
    auto pending = store_.unsettled.lower_bound({job_id, 0, 0, 0});
    if (pending != store_.unsettled.end() && std::get<0>(*pending) == job_id) continue;  // its usage settles first
    std::vector<billing::TransferSpec> release;
    if (auto t = billing::ReleaseTransfer(job_id, job.hold_utok - job.charged_utok, EscrowOf(job.customer), AvailableOf(job.customer))) {
      release.push_back(*t);
    }
    if (const std::string error = store_.Post(release); !error.empty()) return Violation("release: " + error);
    job.hold_pending = false;
  }
}

}  // namespace tessera::sim
