// The simulated server process: the product's scheduler host (services/scheduler) on the simulated
// store of record, driven step by step (HostThreads::kCaller), with intake and billing around it.
// Intake's and billing's store changes below each stand for one transaction of the real server;
// intake tells the host what changed by notification, as PostgreSQL's NOTIFY does.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/common/money.h"
#include "services/scheduler/market_inputs.h"
#include "tests/sim/sim_store.h"
#include "tests/sim/sim_wire.h"

namespace tessera::sim {
namespace {

constexpr int64_t kSettleEveryMs = 1'000;

scheduler_host::SchedulerOptions HostOptions() {
  scheduler_host::SchedulerOptions o;
  o.lease_timeout_ms = 10'000;
  o.tick_interval_ms = 500;
  o.reconcile_interval_ms = 10'000;
  o.verifier.enabled = false;  // the simulated fleet is trusted: no proof-of-GPU challenges
  return o;
}

}  // namespace

void World::ServerStart() {
  server_.up = true;
  server_.sessions.clear();
  server_.closed.clear();
  // Elected again: a new leadership term. The host rebuilds its market from the store of record.
  server_.host = std::make_unique<scheduler_host::SchedulerHost>(
      scheduler_host::HostParts{.store = *scheduler_store_, .challenges = nullptr, .notifications = *notifications_, .clock = clock_,
                                .random = host_random_, .observer = observer_},
      HostOptions());
  if (absl::Status s = server_.host->Start(++store_.epoch, scheduler_host::HostThreads::kCaller); !s.ok()) {
    return Violation("the scheduler host did not start: " + s.ToString());
  }
  Note(absl::StrCat("scheduler host started, epoch ", store_.epoch));
}

void World::ServerCrash(Rng& fault) {
  server_.up = false;
  server_.down_until_ms = now_ms_ + fault.Uniform(1, 5) * 1'000;
  // The process that held the streams is gone: nothing in flight on them reaches the next one.
  for (SimWorker& w : workers_) {
    cut_conns_.insert(w.conn);
    CloseConn(w, "server crashed");
  }
  server_.host.reset();
  server_.sessions.clear();
  server_.closed.clear();
  Note(absl::StrCat("server crashed; back at ", server_.down_until_ms));
}

void World::ToHost(const Message& m) {
  std::shared_ptr<SimSession>& session = server_.sessions[m.conn];
  if (session == nullptr) {
    // The stream as the server accepted it: opened with the provider's key of its worker.
    session = std::make_shared<SimSession>(static_cast<SimStreams&>(*this), m.conn, store_.workers.at(m.worker_id).provider_account_id);
  }
  server_.host->OnMessage(session, ToWire(m, keys_[static_cast<size_t>(m.worker_id - 1)]));
}

void World::ReportClosedStreams() {
  std::vector<std::shared_ptr<SimSession>> closed = std::move(server_.closed);
  server_.closed.clear();
  if (server_.host == nullptr) return;
  for (const std::shared_ptr<SimSession>& session : closed) server_.host->OnClosed(session);
}

bool World::ToWorker(int64_t conn, const v1::ServerMessage& message) {
  if (closed_conns_.contains(conn)) return false;
  const std::optional<Message> m = FromWire(conn_worker_.at(conn), conn, message);
  if (m) Send(*m, /*to_server=*/false);
  return true;
}

void World::CloseFromServer(int64_t conn, const grpc::Status& status) {
  if (closed_conns_.contains(conn)) return;
  SimWorker& w = workers_[static_cast<size_t>(conn_worker_.at(conn) - 1)];
  if (w.conn == conn) CloseConn(w, absl::StrCat("closed by the server: ", status.error_message()));
}

void World::Submit(const std::string& key) {
  if (store_.submit_keys.contains(key)) return;  // a retry of an accepted submit: the same job
  StoreJob job = requests_.at(key);
  absl::StatusOr<int64_t> hold = HoldAmount(job.spec.bid_utok_per_gpu_hour(), job.spec.gpu_count(), job.spec.max_duration_ms());
  if (!hold.ok()) return Violation("hold amount: " + hold.status().ToString());
  if (store_.balances[AvailableOf(job.customer)] < *hold) {
    Note(absl::StrCat(key, " refused: ", *hold, " µT to hold, ", store_.balances[AvailableOf(job.customer)], " available"));
    return;  // FAILED_PRECONDITION: the customer does not retry
  }
  const int64_t id = store_.next_job_id++;
  job.req = scheduler_host::JobRequirementsFrom(id, absl::StrCat("customer-", job.customer), job.spec, now_ms_);
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
  notifications_->Notify(store::JobSubmitted{.job_id = id});
}

void World::Cancel(int64_t job_id) {
  StoreJob& job = store_.jobs.at(job_id);
  if (Terminal(job.state)) return;
  // As the intake's cancel: the attempt's live leases end, and the host hears of each (worker 0: it
  // was still queued), to stop the runs.
  std::vector<store::JobCancelled> cancelled;
  for (auto it = store_.leases.lower_bound({job_id, job.attempt, 0});
       it != store_.leases.end() && std::get<0>(it->first) == job_id && std::get<1>(it->first) == job.attempt; ++it) {
    if (!it->second.live) continue;
    it->second.live = false;
    it->second.cancelled = true;
    cancelled.push_back({.job_id = job_id, .attempt = job.attempt, .worker_id = std::get<2>(it->first)});
  }
  if (cancelled.empty()) cancelled.push_back({.job_id = job_id, .attempt = job.attempt, .worker_id = 0});
  job.state = JobState::kCancelled;
  Note(absl::StrCat("job ", job_id, " cancelled"));
  for (const store::JobCancelled& c : cancelled) notifications_->Notify(c);
}

void World::ServerTick() {
  server_.host->Step();
  ReportClosedStreams();
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
