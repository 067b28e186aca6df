// The simulation loop: time in steps of kStepMs, customers, fault injection and the network.
#include <algorithm>
#include <cstdlib>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "tests/sim/sim_model.h"
#include "tests/sim/sim_store.h"
#include "tests/sim/sim_wire.h"

namespace tessera::sim {
namespace {

constexpr int64_t kStepMs = 100;

constexpr int FaultRates::*kFaultKinds[] = {
    &FaultRates::worker_crash, &FaultRates::worker_partition, &FaultRates::message_delay, &FaultRates::duplicate,
    &FaultRates::reorder,      &FaultRates::usage_lost,       &FaultRates::scheduler_restart, &FaultRates::kernel_failure,
    &FaultRates::clock_jump,   &FaultRates::settlement_crash};

}  // namespace

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int64_t Rng::Uniform(int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  return lo + static_cast<int64_t>(Next() % static_cast<uint64_t>(hi - lo + 1));
}

void Trace::Add(int64_t now_ms, const std::string& line) {
  for (char c : line) Fold(c);
  if (record_) lines_.push_back(absl::StrCat("t=", now_ms, "ms ", line));
}

bool Terminal(JobState s) { return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled; }

const char* StateName(JobState s) {
  switch (s) {
    case JobState::kQueued: return "QUEUED";
    case JobState::kAssigned: return "ASSIGNED";
    case JobState::kRunning: return "RUNNING";
    case JobState::kSucceeded: return "SUCCEEDED";
    case JobState::kFailed: return "FAILED";
    case JobState::kCancelled: return "CANCELLED";
  }
  return "?";
}

std::string Store::Post(const std::vector<billing::TransferSpec>& transfers) {
  std::map<int64_t, int64_t> after;
  std::set<std::string> keys;
  std::vector<const billing::TransferSpec*> fresh;
  for (const billing::TransferSpec& t : transfers) {
    if (t.amount_utok <= 0) return absl::StrCat("transfer ", t.idempotency_key, " has amount ", t.amount_utok);
    if (transfer_keys.contains(t.idempotency_key) || !keys.insert(t.idempotency_key).second) continue;  // a retry
    fresh.push_back(&t);
    after.try_emplace(t.debit_ledger_id, balances[t.debit_ledger_id]);
    after.try_emplace(t.credit_ledger_id, balances[t.credit_ledger_id]);
    after[t.debit_ledger_id] -= t.amount_utok;
    after[t.credit_ledger_id] += t.amount_utok;
  }
  for (const auto& [bucket, balance] : after) {
    if (bucket != kTreasury && balance < 0) return absl::StrCat("ledger bucket ", bucket, " would go to ", balance, " µT");
  }
  for (const auto& [bucket, balance] : after) balances[bucket] = balance;
  for (const billing::TransferSpec* t : fresh) {
    transfer_keys.insert(t->idempotency_key);
    posted[t->kind] += t->amount_utok;
  }
  return "";
}

std::vector<const StoreLease*> Store::LiveLeasesOf(int64_t job_id, uint32_t attempt) const {
  std::vector<const StoreLease*> out;
  for (auto it = leases.lower_bound({job_id, attempt, 0}); it != leases.end(); ++it) {
    if (std::get<0>(it->first) != job_id || std::get<1>(it->first) != attempt) break;
    if (it->second.live) out.push_back(&it->second);
  }
  return out;
}

World::World(const SimOptions& options)
    : options_(options), rng_(options.seed), trace_(options.record_trace), host_random_(options.seed ^ 0x40575eedULL) {
  for (size_t i = 0; i < std::size(kFaultKinds); ++i) fault_rngs_.emplace_back(Rng(options.seed ^ (0xd1b54a32d192ed03ULL * (i + 1))).Next());
  scheduler_store_ = std::make_unique<SimSchedulerStore>(
      store_, clock_, options_.bug, [this](const std::string& line) { Note(line); }, [this](const std::string& what) { Violation(what); });
  notifications_ = std::make_unique<SimNotifications>();
  for (int i = 0; i < options_.workers; ++i) {
    SimWorker w;
    w.id = i + 1;
    w.gpu_count = static_cast<uint32_t>(rng_.Uniform(1, 4));
    // Registered, verified, not connected yet; each its own provider's, with its own signing key.
    StoreWorker registered{.record = {.worker_id = w.id, .state = v1::WORKER_STATE_OFFLINE, .region = "eu",
                                      .reputation = static_cast<int32_t>(rng_.Uniform(0, 100)),
                                      .ask_utok_per_gpu_hour = rng_.Uniform(1, 3) * 1'000'000, .gpus = {}, .policy = {}, .verified = true,
                                      .job_kinds = {}},
                           .provider_account_id = 100 + w.id, .public_key = {}};
    const std::string model = rng_.Chance(500'000) ? "H100" : "A100";
    for (uint32_t g = 0; g < w.gpu_count; ++g) {
      v1::Gpu& gpu = registered.record.gpus.emplace_back();
      gpu.set_index(g);
      gpu.set_model(model);
      gpu.set_memory_mib(81'920);
      gpu.set_compute_capability("9.0");
    }
    std::string key_seed(32, '\0');
    for (size_t b = 0; b < 8; ++b) {
      key_seed[b] = static_cast<char>(options.seed >> (8 * b));
      key_seed[8 + b] = static_cast<char>(static_cast<uint64_t>(w.id) >> (8 * b));
    }
    keys_.push_back(WorkerKeyPair::FromSeed(key_seed));
    registered.public_key = keys_.back().public_key;
    store_.workers[w.id] = std::move(registered);
    workers_.push_back(std::move(w));
  }
  store_.balances[kTreasury] = 0;
  store_.balances[kFees] = 0;
  for (int c = 0; c < options_.customers; ++c) {
    const int64_t amount = rng_.Uniform(1, 4) * 500'000;
    const std::string error = store_.Post({{.idempotency_key = absl::StrCat("deposit:", c, ":0"), .kind = "DEPOSIT",
                                            .debit_ledger_id = kTreasury, .credit_ledger_id = AvailableOf(c), .amount_utok = amount}});
    if (error.empty()) store_.deposited[c] += amount;
  }
  ServerStart();
}

World::~World() {
  server_.host.reset();  // before the store and the notifications it runs on
}

Rng* World::Fire(int FaultRates::*rate) {
  const size_t kind = static_cast<size_t>(std::find(std::begin(kFaultKinds), std::end(kFaultKinds), rate) - std::begin(kFaultKinds));
  Rng& stream = fault_rngs_.at(kind);
  if (!Faulting() || !stream.Chance(options_.faults.*rate)) return nullptr;
  ++result_.faults_fired;
  return &stream;
}

void World::Note(const std::string& line) { trace_.Add(now_ms_, line); }

void World::Violation(const std::string& what) {
  if (!result_.ok) return;
  result_.ok = false;
  result_.violation = what;
  result_.step = step_;
  Note("VIOLATION " + what);
}

bool World::Quiescent() const {
  if (jobs_submitted_ < options_.jobs || !retry_submits_.empty() || !store_.unsettled.empty()) return false;
  return std::all_of(store_.jobs.begin(), store_.jobs.end(),
                     [](const auto& j) { return Terminal(j.second.state) && !j.second.hold_pending; });
}

SimResult World::Run() {
  const int64_t limit_ms = options_.fault_phase_ms + options_.settle_limit_ms;
  while (result_.ok) {
    Step();
    if (!result_.ok) break;
    if (now_ms_ >= options_.fault_phase_ms && Quiescent()) break;
    if (now_ms_ >= limit_ms) {
      std::string stuck;
      for (const auto& [id, job] : store_.jobs) {
        if (!Terminal(job.state) || job.hold_pending) {
          stuck = absl::StrCat("job ", id, " is ", StateName(job.state), job.hold_pending ? " with its hold pending" : "");
          break;
        }
      }
      Violation(absl::StrCat("not settled ", options_.settle_limit_ms, " ms after the faults stopped: ",
                             stuck.empty() ? absl::StrCat(store_.unsettled.size(), " reports unsettled") : stuck));
      break;
    }
  }
  if (result_.ok) CheckFinal();
  result_.step = step_;
  result_.reports_refused = scheduler_store_->reports_refused();
  result_.trace_hash = trace_.hash();
  result_.trace = trace_.TakeLines();
  for (const auto& [id, job] : store_.jobs) {
    result_.jobs_succeeded += job.state == JobState::kSucceeded;
    result_.jobs_failed += job.state == JobState::kFailed;
    result_.jobs_cancelled += job.state == JobState::kCancelled;
    result_.charged_utok += job.charged_utok;
  }
  result_.jobs_accepted = static_cast<int64_t>(accepted_jobs_.size());
  return result_;
}

void World::Step() {
  ++step_;
  now_ms_ += kStepMs;
  trace_.Fold(step_);
  Faults();
  if (!server_.up && now_ms_ >= server_.down_until_ms) ServerStart();
  Deliver();
  ReportClosedStreams();
  for (SimWorker& w : workers_) WorkerTick(w);
  // The customers' requests reach intake, which notifies the host; the host's step then applies
  // them with the workers' messages, so that between steps the market and the store agree.
  Customers();
  if (server_.up) ServerTick();
  CheckInvariants();
}

void World::Customers() {
  // Submits spread over the first 80% of the fault phase; a submit the server could not take is
  // retried with the same key (idempotent intake).
  const int64_t submit_window_steps = std::max<int64_t>(1, options_.fault_phase_ms * 8 / 10 / kStepMs);
  if (jobs_submitted_ < options_.jobs && rng_.Chance(static_cast<int>(std::min<int64_t>(1'000'000, 1'500'000 * options_.jobs / submit_window_steps)))) {
    const int customer = static_cast<int>(rng_.Uniform(0, options_.customers - 1));
    const std::string key = absl::StrCat("submit:", customer, ":", jobs_submitted_++);
    StoreJob job;
    job.customer = customer;
    // Every job fits the fleet (a gang no worker can hold would wait forever, as it should).
    uint32_t largest = 0, total = 0;
    for (const SimWorker& w : workers_) {
      largest = std::max(largest, w.gpu_count);
      total += w.gpu_count;
    }
    const bool same_host = total < 2 || !rng_.Chance(200'000);
    v1::JobSpec& spec = job.spec;
    spec.set_gpu_count(static_cast<uint32_t>(same_host ? rng_.Uniform(1, std::min<uint32_t>(2, largest)) : 2));
    spec.set_placement(same_host ? v1::GPU_PLACEMENT_SAME_HOST : v1::GPU_PLACEMENT_SPREAD);
    spec.set_bid_utok_per_gpu_hour(rng_.Uniform(3, 5) * 1'000'000);  // every ask is at most 3 tokens: each job fits somewhere
    spec.set_max_duration_ms(rng_.Uniform(20, 90) * 1'000);
    spec.set_priority_class(rng_.Chance(250'000) ? v1::PRIORITY_CLASS_SPOT : v1::PRIORITY_CLASS_ON_DEMAND);
    job.work_ms = rng_.Uniform(3'000, spec.max_duration_ms() * 9 / 10);
    spec.mutable_sleep()->set_duration_ms(job.work_ms);
    job.fee_bps = 500;
    job.max_attempts = static_cast<uint32_t>(rng_.Uniform(2, 4));
    spec.set_max_attempts(job.max_attempts);
    // Some customers would rather not wait: cancelled if not started in time (the host's queue timeout).
    if (rng_.Chance(100'000)) spec.set_queue_timeout_ms(rng_.Uniform(5, 60) * 1'000);
    requests_[key] = job;
    retry_submits_.push_back(key);
  }
  std::vector<std::string> retries = std::move(retry_submits_);
  retry_submits_.clear();
  for (const std::string& key : retries) {
    if (!server_.up) {
      retry_submits_.push_back(key);
      continue;
    }
    Submit(key);
    if (Fire(&FaultRates::duplicate)) Submit(key);  // the response was lost; the client retries
  }
  if (rng_.Chance(3'000) && !accepted_jobs_.empty() && server_.up) {
    auto it = accepted_jobs_.begin();
    std::advance(it, rng_.Uniform(0, static_cast<int64_t>(accepted_jobs_.size()) - 1));
    Cancel(*it);
  }
  if (rng_.Chance(5'000)) {  // a deposit, its request sometimes delivered twice
    const int c = static_cast<int>(rng_.Uniform(0, options_.customers - 1));
    const int64_t amount = rng_.Uniform(1, 4) * 250'000;
    const billing::TransferSpec t{.idempotency_key = absl::StrCat("deposit:", c, ":", ++deposits_made_[c]), .kind = "DEPOSIT",
                                  .debit_ledger_id = kTreasury, .credit_ledger_id = AvailableOf(c), .amount_utok = amount};
    if (PostRequest(t)) store_.deposited[c] += amount;
    Note(absl::StrCat("deposit ", t.idempotency_key, " ", amount));
  }
  if (rng_.Chance(5'000)) {  // a provider's payout of part of its earnings
    const SimWorker& w = workers_[static_cast<size_t>(rng_.Uniform(0, static_cast<int64_t>(workers_.size()) - 1))];
    const int64_t earnings = store_.balances[EarningsOf(w.id)];
    if (earnings > 0) {
      const int64_t amount = rng_.Uniform(1, earnings);
      const billing::TransferSpec t{.idempotency_key = absl::StrCat("payout:", w.id, ":", ++payouts_made_[w.id]), .kind = "PAYOUT",
                                    .debit_ledger_id = EarningsOf(w.id), .credit_ledger_id = kTreasury, .amount_utok = amount};
      if (PostRequest(t)) store_.paid_out[w.id] += amount;
      Note(absl::StrCat("payout ", t.idempotency_key, " ", amount));
    }
  }
}

bool World::PostRequest(const billing::TransferSpec& t) {
  bool fresh = false;
  for (int i = 0, n = Fire(&FaultRates::duplicate) ? 2 : 1; i < n; ++i) {
    fresh |= !store_.transfer_keys.contains(t.idempotency_key);
    if (const std::string error = store_.Post({t}); !error.empty()) Violation(t.kind + ": " + error);
  }
  return fresh;
}

void World::Faults() {
  if (!Faulting()) return;
  if (server_.up) {
    if (Rng* r = Fire(&FaultRates::scheduler_restart)) ServerCrash(*r);
  }
  for (SimWorker& w : workers_) {
    if (!w.up) continue;
    if (Rng* r = Fire(&FaultRates::worker_crash)) {
      WorkerCrash(w, *r);
      continue;
    }
    Rng* partition = w.partitioned_until_ms <= now_ms_ ? Fire(&FaultRates::worker_partition) : nullptr;
    if (partition != nullptr) {
      w.partitioned_until_ms = now_ms_ + partition->Uniform(1, 30) * 1'000;
      Note(absl::StrCat("worker ", w.id, " partitioned until ", w.partitioned_until_ms));
      if (w.conn != 0) CloseConn(w, "partitioned");
    }
    if (Rng* jump = Fire(&FaultRates::clock_jump)) {
      w.clock_offset_ms = std::clamp<int64_t>(w.clock_offset_ms + jump->Uniform(-90'000, 90'000), -120'000, 120'000);
      Note(absl::StrCat("worker ", w.id, " clock offset now ", w.clock_offset_ms, " ms"));
    }
  }
}

void World::Send(Message m, bool to_server) {
  int64_t delay_ms = rng_.Uniform(1, 40);
  if (Rng* delay = Fire(&FaultRates::message_delay)) delay_ms = delay->Uniform(100, 3'000);
  int64_t& last = conn_last_delivery_ms_[m.conn];
  last = std::max(last, now_ms_ + delay_ms);  // a stream delivers in order
  const bool twice = Fire(&FaultRates::duplicate) != nullptr;
  net_.push_back({.deliver_at_ms = last, .order = next_order_++, .to_server = to_server, .m = m});
  if (twice) net_.push_back({.deliver_at_ms = last, .order = next_order_++, .to_server = to_server, .m = std::move(m)});
}

void World::Deliver() {
  std::vector<InFlight> due;
  std::erase_if(net_, [&](InFlight& f) {
    if (f.deliver_at_ms > now_ms_) return false;
    due.push_back(std::move(f));
    return true;
  });
  std::sort(due.begin(), due.end(), [](const InFlight& a, const InFlight& b) {
    return std::tie(a.deliver_at_ms, a.order) < std::tie(b.deliver_at_ms, b.order);
  });
  for (const InFlight& f : due) {
    SimWorker& w = workers_[static_cast<size_t>(f.m.worker_id - 1)];
    if (w.partitioned_until_ms > now_ms_) continue;  // cut off: lost
    trace_.Fold(f.m.kind, f.m.worker_id, f.m.conn, f.m.job_id, f.m.seq, f.to_server);
    if (f.to_server) {
      // A broken stream's last messages: lost, or (reordering) still read by the server after
      // the worker's new stream has started; in order, so once one is lost so are those after it.
      if (!server_.up) {
        cut_conns_.insert(f.m.conn);
        continue;
      }
      if (closed_conns_.contains(f.m.conn) && (cut_conns_.contains(f.m.conn) || !Fire(&FaultRates::reorder))) {
        cut_conns_.insert(f.m.conn);
        continue;
      }
      ToHost(f.m);
    } else {
      if (!w.up || f.m.conn != w.conn || closed_conns_.contains(f.m.conn)) continue;
      OnWorkerMessage(w, f.m);
    }
    if (!result_.ok) return;
  }
}

void World::CloseConn(SimWorker& w, const std::string& why) {
  if (w.conn == 0) return;
  Note(absl::StrCat("worker ", w.id, " stream ", w.conn, " closed: ", why));
  closed_conns_.insert(w.conn);
  // The server's end learns it after the fact (ReportClosedStreams), as gRPC's OnDone comes.
  if (auto s = server_.sessions.find(w.conn); s != server_.sessions.end()) server_.closed.push_back(s->second);
  w.conn = 0;
  w.welcomed = false;
  w.next_connect_ms = now_ms_ + rng_.Uniform(100, 1'000);
}

SimResult RunSimulation(const SimOptions& options) {
  // The host logs as the product does; a sweep of thousands of runs keeps quiet unless asked
  // (TESSERA_SIM_LOG=1, with one seed).
  static const bool log = std::getenv("TESSERA_SIM_LOG") != nullptr;
  if (!log) spdlog::set_level(spdlog::level::off);
  return World(options).Run();
}

}  // namespace tessera::sim
