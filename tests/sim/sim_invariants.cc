// DESIGN.md "Invariants the tests hold", checked against the simulated store (and the server's
// market while it is up) after every step, and once more, completely, when the run has settled.
#include "absl/strings/str_cat.h"
#include "services/common/money.h"
#include "tests/sim/sim_model.h"

namespace tessera::sim {
namespace {
__extension__ typedef __int128 Int128;
}  // namespace

void World::CheckInvariants() {
  if (!result_.ok) return;
  // 1. The ledger sums to zero; no customer or provider bucket is negative; each customer's
  //    deposits are exactly its available + escrow + what it was charged; escrow holds exactly the
  //    unspent part of its pending holds.
  int64_t sum = 0;
  for (const auto& [bucket, balance] : store_.balances) {
    sum += balance;
    if (bucket != kTreasury && balance < 0) return Violation(absl::StrCat("ledger bucket ", bucket, " is negative: ", balance));
  }
  if (sum != 0) return Violation(absl::StrCat("the ledger sums to ", sum, " µT, not zero"));
  std::map<int, int64_t> charged, unspent;
  std::map<int64_t, int64_t> lease_charged, earned;
  int64_t fees = 0;
  for (const auto& [key, lease] : store_.leases) {
    lease_charged[std::get<0>(key)] += lease.money.charged_utok;
    earned[std::get<2>(key)] += lease.money.charged_utok - lease.money.fee_utok;
    fees += lease.money.fee_utok;
  }
  for (const auto& [id, job] : store_.jobs) {
    charged[job.customer] += job.charged_utok;
    if (job.hold_pending) unspent[job.customer] += job.hold_utok - job.charged_utok;
    // 5. Never above the bid, never above the hold; each lease priced at most at the bid.
    if (job.charged_utok > job.hold_utok) return Violation(absl::StrCat("job ", id, " charged ", job.charged_utok, " above its hold ", job.hold_utok));
    if (lease_charged[id] != job.charged_utok) {
      return Violation(absl::StrCat("job ", id, " charged ", job.charged_utok, " but its leases ", lease_charged[id]));
    }
  }
  for (int c = 0; c < options_.customers; ++c) {
    const int64_t have = store_.balances[AvailableOf(c)] + store_.balances[EscrowOf(c)] + charged[c];
    if (have != store_.deposited[c]) {
      return Violation(absl::StrCat("customer ", c, ": deposits ", store_.deposited[c], " ≠ available + escrow + charged ", have));
    }
    if (store_.balances[EscrowOf(c)] != unspent[c]) {
      return Violation(absl::StrCat("customer ", c, ": escrow ", store_.balances[EscrowOf(c)], " ≠ unspent holds ", unspent[c]));
    }
  }
  for (const SimWorker& w : workers_) {
    if (store_.balances[EarningsOf(w.id)] + store_.paid_out[w.id] != earned[w.id]) {
      return Violation(absl::StrCat("provider ", w.id, ": earnings ", store_.balances[EarningsOf(w.id)], " + paid out ", store_.paid_out[w.id],
                                    " ≠ charged to its leases ", earned[w.id]));
    }
  }
  if (store_.balances[kFees] != fees) return Violation(absl::StrCat("fees ", store_.balances[kFees], " ≠ the leases' fees ", fees));

  // 3. No accepted job is lost, and a job's state matches its leases. 4. A GPU holds at most one
  //    live lease, and the server's market agrees with the store on who holds it.
  // The host's market, between steps; none while the server is down or the market is to be rebuilt.
  const scheduler::Market* market = server_.up && server_.host != nullptr ? server_.host->market() : nullptr;
  std::map<std::pair<int64_t, uint32_t>, int64_t> holder;
  for (const auto& [key, lease] : store_.leases) {
    const auto& [job_id, attempt, worker_id] = key;
    const StoreJob& job = store_.jobs.at(job_id);
    if (lease.price > job.req.bid_utok_per_gpu_hour) return Violation(absl::StrCat("job ", job_id, " leased above its bid"));
    if (!lease.live) continue;
    if (attempt != job.attempt || (job.state != JobState::kAssigned && job.state != JobState::kRunning)) {
      return Violation(absl::StrCat("job ", job_id, " is ", StateName(job.state), " at attempt ", job.attempt, " but attempt ", attempt,
                                    " still holds a live lease on worker ", worker_id));
    }
    for (uint32_t g : lease.gpus) {
      if (g >= workers_[static_cast<size_t>(worker_id - 1)].gpu_count) return Violation("a lease names a GPU the worker lacks");
      auto [it, fresh] = holder.emplace(std::pair{worker_id, g}, job_id);
      if (!fresh) return Violation(absl::StrCat("worker ", worker_id, " GPU ", g, " holds jobs ", it->second, " and ", job_id));
      if (market != nullptr && market->HolderOf(worker_id, g) != job_id) {
        return Violation(absl::StrCat("worker ", worker_id, " GPU ", g, ": the store leases it to job ", job_id, ", the market to ",
                                      market->HolderOf(worker_id, g)));
      }
    }
  }
  for (int64_t id : accepted_jobs_) {
    auto it = store_.jobs.find(id);
    if (it == store_.jobs.end()) return Violation(absl::StrCat("accepted job ", id, " is lost"));
    const StoreJob& job = it->second;
    const bool active = job.state == JobState::kAssigned || job.state == JobState::kRunning;
    if (active && store_.LiveLeasesOf(id, job.attempt).empty()) {
      return Violation(absl::StrCat("job ", id, " is ", StateName(job.state), " without a live lease"));
    }
    if (market != nullptr && market->HasJob(id) == Terminal(job.state)) {
      return Violation(absl::StrCat("job ", id, " is ", StateName(job.state), " but the market ", Terminal(job.state) ? "holds" : "lost", " it"));
    }
  }
}

// 2. Each report is charged once: the lease's totals are exactly the sums over its settled reports.
void World::CheckLease(const scheduler_host::LeaseKey& key) {
  if (!result_.ok) return;
  const StoreLease& lease = store_.leases.at(key);
  const auto& [job_id, attempt, worker_id] = key;
  int64_t gpu_ms = 0, charge = 0, fee = 0, reports = 0;
  for (auto it = store_.reports.lower_bound({job_id, attempt, worker_id, 0}); it != store_.reports.end(); ++it) {
    const auto& [j, a, w, seq] = it->first;
    if (j != job_id || a != attempt || w != worker_id) break;
    if (!it->second.settled) continue;
    gpu_ms += it->second.content.second;
    charge += it->second.charge_utok;
    fee += it->second.fee_utok;
    ++reports;
  }
  const billing::LeaseMoney& m = lease.money;
  if (m.gpu_ms_total != gpu_ms || m.charged_utok != charge || m.fee_utok != fee || m.reports != reports) {
    return Violation(absl::StrCat("lease ", job_id, "/", attempt, "/", worker_id, " was charged for ", m.reports, " reports, ", m.gpu_ms_total,
                                  " GPU-ms, ", m.charged_utok, " µT; its settled reports are ", reports, ", ", gpu_ms, " GPU-ms, ", charge, " µT"));
  }
  const int64_t bid = store_.jobs.at(job_id).req.bid_utok_per_gpu_hour;
  if (static_cast<Int128>(m.charged_utok) * kMsPerHour > static_cast<Int128>(bid) * m.gpu_ms_total) {
    return Violation(absl::StrCat("lease ", job_id, "/", attempt, "/", worker_id, " charged above its bid"));
  }
}

void World::CheckFinal() {
  CheckInvariants();
  for (const auto& [key, lease] : store_.leases) {
    CheckLease(key);
    if (lease.live) Violation(absl::StrCat("job ", std::get<0>(key), " still holds a live lease at the end"));
  }
  for (const auto& key : acked_reports_) {
    auto it = store_.reports.find(key);
    if (it == store_.reports.end() || !it->second.settled) {
      Violation(absl::StrCat("report ", std::get<0>(key), "/", std::get<1>(key), "/", std::get<3>(key), " was acknowledged but never settled"));
    }
  }
  for (int c = 0; c < options_.customers; ++c) {
    if (store_.balances[EscrowOf(c)] != 0) Violation(absl::StrCat("customer ", c, " has ", store_.balances[EscrowOf(c)], " µT left in escrow"));
  }
}

}  // namespace tessera::sim
