#include <catch2/catch.hpp>

#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "scheduler/market.h"

using namespace tessera::scheduler;

namespace {

// Random markets per run: 2,000, or TESSERA_PROPERTY_SEEDS (the sanitized build runs fewer).
uint32_t PropertySeeds() {
  const char* n = std::getenv("TESSERA_PROPERTY_SEEDS");
  return n != nullptr ? static_cast<uint32_t>(std::strtoul(n, nullptr, 10)) : 2'000;
}

WorkerSpec Worker(int64_t id, int64_t ask, int gpus, const std::string& model = "H100", const std::string& region = "eu",
                  int32_t reputation = 50) {
  WorkerSpec w{.worker_id = id, .region = region, .reputation = reputation, .ask_utok_per_gpu_hour = ask, .gpus = {}, .policy = {}, .job_kinds = {}};
  for (int i = 0; i < gpus; ++i) w.gpus.push_back({.model = model, .memory_mib = 80'000, .compute_capability = 90});
  return w;
}

JobRequirements Job(int64_t id, uint32_t gpus, int64_t bid, int64_t at = 0, Priority priority = Priority::kOnDemand) {
  return {.job_id = id, .account = "acme", .kind = "sleep", .gpu_count = gpus, .gpu_models = {}, .min_memory_mib = 0,
          .min_compute_capability = 0, .regions = {}, .min_reputation = 0, .same_host = true,
          .bid_utok_per_gpu_hour = bid, .max_duration_ms = 3'600'000, .priority = priority, .submitted_at_ms = at};
}

int64_t PlacedOn(const Decisions& d, int64_t job_id) {
  for (const auto& p : d.placements) {
    if (p.job_id == job_id) return p.gpus.at(0).worker_id;
  }
  return 0;
}

}  // namespace

TEST_CASE("market: cheapest ask first, pay-as-ask, never above the bid", "[market]") {
  Market m;
  m.UpsertWorker(Worker(1, 90, 1));
  m.UpsertWorker(Worker(2, 50, 1));
  m.UpsertWorker(Worker(3, 200, 1));
  Decisions d = m.AddJob(Job(10, 1, 100), 0);
  REQUIRE(d.placements.size() == 1);
  CHECK(d.placements[0].gpus[0].worker_id == 2);
  CHECK(d.placements[0].gpus[0].price_utok_per_gpu_hour == 50);
  CHECK(PlacedOn(m.AddJob(Job(11, 1, 100), 0), 11) == 1);
  CHECK(m.AddJob(Job(12, 1, 100), 0).placements.empty());  // only the 200 ask is left
  CHECK(m.WhyWaiting(12) == "needs 1 free GPUs on one worker; the largest free fit is 0");
  Market dear;
  dear.UpsertWorker(Worker(1, 200, 2));
  dear.AddJob(Job(1, 1, 100), 0);
  CHECK(dear.WhyWaiting(1) == "bid 100 below the lowest ask 200 of 2 matching GPUs");
}

TEST_CASE("market: price priority, then time priority, then ON_DEMAND before SPOT", "[market]") {
  Market m;
  m.UpsertWorker(Worker(1, 10, 1));
  REQUIRE(m.AddJob(Job(1, 1, 100), 0).placements.size() == 1);  // occupies the only GPU
  m.AddJob(Job(2, 1, 500, 5, Priority::kSpot), 5);                // highest bid but SPOT
  m.AddJob(Job(3, 1, 200, 3), 3);
  m.AddJob(Job(4, 1, 300, 4), 4);
  m.AddJob(Job(5, 1, 300, 2), 2);  // same bid as 4, earlier
  std::vector<int64_t> order;
  int64_t running = 1;
  for (int i = 0; i < 4; ++i) {
    Decisions d = m.FinishJob(running, 10 + i);
    REQUIRE(d.placements.size() == 1);
    running = d.placements[0].job_id;
    order.push_back(running);
  }
  CHECK(order == std::vector<int64_t>{5, 4, 3, 2});
}

TEST_CASE("market: ties by reputation, then packing onto the fuller worker", "[market]") {
  Market m;
  m.UpsertWorker(Worker(1, 10, 8, "H100", "eu", 50));
  m.UpsertWorker(Worker(2, 10, 2, "H100", "eu", 50));
  m.UpsertWorker(Worker(3, 10, 8, "H100", "eu", 90));
  CHECK(PlacedOn(m.AddJob(Job(1, 1, 100), 0), 1) == 3);  // best reputation
  Market packing;
  packing.UpsertWorker(Worker(1, 10, 8));
  packing.UpsertWorker(Worker(2, 10, 2));
  CHECK(PlacedOn(packing.AddJob(Job(1, 1, 100), 0), 1) == 2);  // keeps the 8-GPU machine whole
}

TEST_CASE("market: gang jobs get all their GPUs at once or none", "[market]") {
  Market m;
  m.UpsertWorker(Worker(1, 10, 2));
  m.UpsertWorker(Worker(2, 10, 3));
  Decisions d = m.AddJob(Job(1, 4, 100), 0);
  CHECK(d.placements.empty());
  for (int w = 1; w <= 2; ++w) {
    for (uint32_t i = 0; i < 3; ++i) CHECK(m.HolderOf(w, i) == 0);  // no partial holds
  }
  CHECK(m.WhyWaiting(1) == "needs 4 matching GPUs on one worker; the most any worker has is 3");  // waiting will not help
  JobRequirements spread = Job(2, 4, 100);
  spread.same_host = false;
  d = m.AddJob(spread, 0);
  REQUIRE(d.placements.size() == 1);
  CHECK(d.placements[0].gpus.size() == 4);
}

TEST_CASE("market: spread jobs stay within one region", "[market]") {
  Market m;
  m.UpsertWorker(Worker(1, 10, 2, "H100", "eu"));
  m.UpsertWorker(Worker(2, 10, 2, "H100", "us"));
  JobRequirements spread = Job(1, 3, 100);
  spread.same_host = false;
  CHECK(m.AddJob(spread, 0).placements.empty());
  m.UpsertWorker(Worker(3, 20, 1, "H100", "us"));
  Decisions d = m.Tick(1);
  REQUIRE(d.placements.size() == 1);
  for (const PlacedGpu& g : d.placements[0].gpus) CHECK((g.worker_id == 2 || g.worker_id == 3));
}

TEST_CASE("market: job requirements filter GPUs and workers", "[market]") {
  Market m;
  WorkerSpec small = Worker(1, 10, 1);
  small.gpus[0].memory_mib = 24'000;
  small.gpus[0].compute_capability = 86;
  m.UpsertWorker(small);
  m.UpsertWorker(Worker(2, 50, 1, "A100", "us", 10));
  m.UpsertWorker(Worker(3, 90, 1, "H100", "eu", 80));
  JobRequirements j = Job(1, 1, 100);
  j.min_memory_mib = 40'000;
  CHECK(PlacedOn(m.AddJob(j, 0), 1) == 2);
  j = Job(2, 1, 100);
  j.min_compute_capability = 90;
  j.regions = {"eu"};
  CHECK(PlacedOn(m.AddJob(j, 0), 2) == 3);
  j = Job(3, 1, 100);
  j.gpu_models = {"A100"};
  CHECK(m.AddJob(j, 0).placements.empty());  // the A100 is busy
  j = Job(4, 1, 100);
  j.min_reputation = 90;
  CHECK(m.AddJob(j, 0).placements.empty());
  CHECK(m.WhyWaiting(4) == "no worker has reputation 90 or more (the best is 80)");
}

TEST_CASE("market: a job kind a worker's agent does not run is never offered to it", "[market]") {
  Market m;
  WorkerSpec cpu = Worker(1, 10, 8, "CPU");
  cpu.job_kinds = {"sleep", "train_mlp", "gemm_bench"};
  m.UpsertWorker(cpu);
  JobRequirements allreduce = Job(1, 2, 100);
  allreduce.kind = "allreduce_bench";
  CHECK(m.AddJob(allreduce, 0).placements.empty());
  CHECK(m.WhyWaiting(1) == "no worker runs job kind 'allreduce_bench' (workers run: gemm_bench, sleep, train_mlp)");
  JobRequirements sleep = Job(2, 2, 100);
  sleep.kind = "sleep";
  CHECK(PlacedOn(m.AddJob(sleep, 0), 2) == 1);
  // An agent that says nothing of its kinds (older than the field) runs every kind.
  m.UpsertWorker(Worker(2, 10, 2, "H100"));
  Decisions d = m.Tick(1);
  REQUIRE(d.placements.size() == 1);
  CHECK(d.placements[0].job_id == 1);
  CHECK(d.placements[0].gpus[0].worker_id == 2);
}

TEST_CASE("market: the wait reason names the first requirement no worker meets", "[market]") {
  Market m;
  CHECK(m.AddJob(Job(1, 2, 100), 0).placements.empty());
  CHECK(m.WhyWaiting(1) == "no worker is registered with the scheduler yet");
  WorkerSpec small = Worker(1, 10, 2, "RTX 4090", "us", 300);
  small.gpus[0].memory_mib = small.gpus[1].memory_mib = 24'576;
  small.gpus[0].compute_capability = small.gpus[1].compute_capability = 89;
  m.UpsertWorker(small);
  REQUIRE(m.Tick(1).placements.size() == 1);  // job 1 takes both GPUs
  const auto waits = [&m](int64_t id, const std::function<void(JobRequirements&)>& change) {
    JobRequirements j = Job(id, 1, 100);
    change(j);
    CHECK(m.AddJob(j, 0).placements.empty());
    return m.WhyWaiting(id);
  };
  CHECK(waits(2, [](JobRequirements& j) { j.min_reputation = 400; }) == "no worker has reputation 400 or more (the best is 300)");
  CHECK(waits(3, [](JobRequirements& j) { j.regions = {"eu-west", "eu-central"}; }) ==
        "no worker in region eu-central, eu-west (workers are in: us)");
  CHECK(waits(4, [](JobRequirements& j) { j.gpu_models = {"H100", "A100"}; }) == "no GPU of model A100, H100 (GPUs here: RTX 4090)");
  CHECK(waits(5, [](JobRequirements& j) { j.min_memory_mib = 40'960; }) == "no GPU has 40960 MiB of memory (the most is 24576)");
  CHECK(waits(6, [](JobRequirements& j) { j.min_compute_capability = 90; }) == "no GPU has compute capability 9.0 (the best is 8.9)");
  CHECK(waits(7, [](JobRequirements& j) { j.gpu_count = 8; }) == "needs 8 matching GPUs on one worker; the most any worker has is 2");
  CHECK(waits(8, [](JobRequirements& j) {
          j.gpu_count = 6;
          j.same_host = false;
        }) == "needs 6 matching GPUs in one region; the most any region has is 2");
  // Every requirement met: what is left is waiting for a GPU to free.
  CHECK(waits(9, [](JobRequirements&) {}) == "needs 1 free GPUs on one worker; the largest free fit is 0");
}

TEST_CASE("market: provider policy must accept the job too", "[market]") {
  Market m;
  WorkerSpec picky = Worker(1, 10, 4);
  picky.policy.min_bid_by_model = {{"H100", 150}};
  picky.policy.max_duration_ms = 60'000;
  picky.policy.denied_accounts = {"mallory"};
  picky.policy.accepts_spot = false;
  m.UpsertWorker(picky);
  CHECK(m.AddJob(Job(1, 1, 100), 0).placements.empty());  // bid below the provider's minimum
  JobRequirements long_job = Job(2, 1, 200);
  CHECK(m.AddJob(long_job, 0).placements.empty());  // 1 h > 1 min
  JobRequirements spot = Job(3, 1, 200, 0, Priority::kSpot);
  spot.max_duration_ms = 60'000;
  CHECK(m.AddJob(spot, 0).placements.empty());
  JobRequirements denied = Job(4, 1, 200);
  denied.max_duration_ms = 60'000;
  denied.account = "mallory";
  CHECK(m.AddJob(denied, 0).placements.empty());
  CHECK(m.WhyWaiting(4) == "no provider's policy accepts the job (bid per model, duration, account or spot)");
  JobRequirements fine = Job(5, 1, 200);
  fine.max_duration_ms = 60'000;
  CHECK(m.AddJob(fine, 0).placements.size() == 1);
  WorkerSpec allow_list = Worker(2, 10, 1);
  allow_list.policy.allowed_accounts = {"friend"};
  Market only_friends;
  only_friends.UpsertWorker(allow_list);
  CHECK(only_friends.AddJob(Job(1, 1, 100), 0).placements.empty());
}

TEST_CASE("market: bounded backfill holds a worker for a long-waiting gang job", "[market]") {
  Market m(MarketOptions{.reserve_after_ms = 1'000, .reserve_min_gpus = 2, .max_reservations = 4});
  m.UpsertWorker(Worker(1, 10, 4));
  for (int64_t j = 1; j <= 4; ++j) REQUIRE(m.AddJob(Job(j, 1, 100), 0).placements.size() == 1);
  CHECK(m.AddJob(Job(10, 4, 100, 0), 0).placements.empty());
  CHECK(m.AddJob(Job(11, 1, 100, 100), 100).placements.empty());
  // Before the gang job has waited long, a freed GPU backfills a small job.
  CHECK(PlacedOn(m.FinishJob(1, 600), 11) == 1);
  // After, it reserves the worker: freed GPUs are held for it, even from a richer small job.
  CHECK(m.Tick(2'000).placements.empty());
  CHECK(m.WhyWaiting(10) == "holds a reservation on worker 1; waiting for its GPUs to free");
  CHECK(m.FinishJob(2, 2'100).placements.empty());
  CHECK(m.AddJob(Job(20, 1, 1'000, 2'100), 2'100).placements.empty());
  CHECK(m.WhyWaiting(20) == "waiting behind reserved gang job 10");
  CHECK(m.FinishJob(3, 2'200).placements.empty());
  CHECK(m.FinishJob(4, 2'300).placements.empty());
  const Decisions last = m.FinishJob(11, 2'400);  // the gang job starts once its worker is free
  REQUIRE(last.placements.size() == 1);
  CHECK(last.placements[0].job_id == 10);
  CHECK(last.placements[0].gpus.size() == 4);
  CHECK(m.WhyWaiting(20) == "needs 1 free GPUs on one worker; the largest free fit is 0");
}

TEST_CASE("market: ON_DEMAND preempts the fewest, most recently started SPOT jobs", "[market]") {
  Market m;
  m.UpsertWorker(Worker(1, 10, 2));
  REQUIRE(m.AddJob(Job(1, 1, 100, 0, Priority::kSpot), 0).placements.size() == 1);
  REQUIRE(m.AddJob(Job(2, 1, 100, 0, Priority::kSpot), 50).placements.size() == 1);
  Decisions d = m.AddJob(Job(3, 1, 20), 100);
  REQUIRE(d.preempted == std::vector<int64_t>{2});  // started later: less work lost
  REQUIRE(d.placements.size() == 1);
  CHECK(d.placements[0].job_id == 3);
  CHECK(m.queued_jobs() == 1);  // job 2 is back in the queue
  Decisions spot_only = m.AddJob(Job(4, 1, 1'000, 0, Priority::kSpot), 200);
  CHECK(spot_only.preempted.empty());  // SPOT never preempts
}

TEST_CASE("market: freed GPUs go to the best queued job that fits", "[market]") {
  Market m;
  m.UpsertWorker(Worker(1, 10, 2));
  REQUIRE(m.AddJob(Job(1, 2, 100), 0).placements.size() == 1);
  m.AddJob(Job(2, 4, 500), 1);  // does not fit anywhere, ever
  m.AddJob(Job(3, 2, 200), 2);
  m.AddJob(Job(4, 1, 300), 3);
  Decisions d = m.FinishJob(1, 10);
  std::set<int64_t> placed;
  for (const auto& p : d.placements) placed.insert(p.job_id);
  CHECK(placed == std::set<int64_t>{4});  // 4 outbids 3 and takes one GPU; 3 needs two
  d = m.RemoveJob(4, 11);  // with both GPUs free again, job 3 fits
  REQUIRE(d.placements.size() == 1);
  CHECK(d.placements[0].job_id == 3);
}

TEST_CASE("market: random markets keep every invariant, deterministically", "[market][property]") {
  const uint64_t seed = GENERATE(range(1u, PropertySeeds() + 1));
  auto run = [](uint64_t seed) {
    std::mt19937_64 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
    const std::vector<std::string> models = {"H100", "A100", "L40S"}, regions = {"eu", "us"};
    Market m(MarketOptions{.reserve_after_ms = 50, .reserve_min_gpus = 2, .max_reservations = 3});
    std::map<int64_t, WorkerSpec> workers;
    for (int64_t w = 1; w <= 12; ++w) {
      WorkerSpec spec = Worker(w, 50 + pick(100), 1 + pick(8), models[pick(3)], regions[pick(2)], pick(100));
      if (pick(4) == 0) spec.policy.accepts_spot = false;
      if (pick(4) == 0) spec.policy.min_bid_by_model[spec.gpus[0].model] = 100;
      workers[w] = spec;
      m.UpsertWorker(spec);
    }
    std::map<int64_t, JobRequirements> specs;
    std::map<int64_t, JobPlacement> running;
    std::vector<std::string> log;
    std::set<int64_t> closed;  // unschedulable workers
    auto apply = [&](const Decisions& d) {
      for (int64_t p : d.preempted) {
        REQUIRE(running.erase(p) == 1);
        log.push_back("preempt " + std::to_string(p));
      }
      for (const JobPlacement& p : d.placements) {
        for (const PlacedGpu& g : p.gpus) REQUIRE_FALSE(closed.contains(g.worker_id));  // no new job on a closed worker
        REQUIRE(running.emplace(p.job_id, p).second);
        log.push_back("place " + std::to_string(p.job_id) + " on " + std::to_string(p.gpus[0].worker_id));
      }
    };
    int64_t next_job = 1;
    for (int64_t t = 0; t < 400; ++t) {
      const int op = pick(10);
      if (op < 5) {
        JobRequirements j = Job(next_job++, 1 + (pick(4) == 0 ? pick(6) : 0), 40 + pick(160), t,
                                pick(3) == 0 ? Priority::kSpot : Priority::kOnDemand);
        if (pick(3) == 0) j.gpu_models = {models[pick(3)]};
        if (pick(4) == 0) j.regions = {regions[pick(2)]};
        if (pick(5) == 0) j.same_host = false;
        if (pick(6) == 0) j.min_reputation = pick(100);
        specs[j.job_id] = j;
        apply(m.AddJob(j, t));
      } else if (op < 8 && !running.empty()) {
        auto it = std::next(running.begin(), pick(static_cast<int>(running.size())));
        const int64_t id = it->first;
        running.erase(it);
        apply(op == 7 ? m.Requeue(id, t) : m.FinishJob(id, t));
      } else if (op == 8) {
        const int64_t w = 1 + pick(12);
        const bool open = closed.contains(w);
        if (open) closed.erase(w); else closed.insert(w);
        apply(m.SetSchedulable(w, open, t));
      } else {
        apply(m.Tick(t));
      }
      // Invariants after every step.
      std::set<std::pair<int64_t, uint32_t>> used;
      for (const auto& [id, p] : running) {
        const JobRequirements& j = specs.at(id);
        REQUIRE(p.gpus.size() == j.gpu_count);  // never more or fewer GPUs than asked
        std::set<std::string> placed_regions;
        std::set<int64_t> placed_workers;
        for (const PlacedGpu& g : p.gpus) {
          REQUIRE(used.insert({g.worker_id, g.index}).second);  // no GPU holds two jobs
          REQUIRE(m.HolderOf(g.worker_id, g.index) == id);
          const WorkerSpec& w = workers.at(g.worker_id);
          REQUIRE(g.price_utok_per_gpu_hour == w.ask_utok_per_gpu_hour);
          REQUIRE(g.price_utok_per_gpu_hour <= j.bid_utok_per_gpu_hour);  // never above the bid
          REQUIRE(w.reputation >= j.min_reputation);
          REQUIRE((j.gpu_models.empty() || j.gpu_models[0] == w.gpus[g.index].model));
          REQUIRE((j.regions.empty() || j.regions[0] == w.region));
          REQUIRE((j.priority != Priority::kSpot || w.policy.accepts_spot));
          auto min_bid = w.policy.min_bid_by_model.find(w.gpus[g.index].model);
          REQUIRE((min_bid == w.policy.min_bid_by_model.end() || j.bid_utok_per_gpu_hour >= min_bid->second));
          placed_regions.insert(w.region);
          placed_workers.insert(g.worker_id);
        }
        REQUIRE(placed_regions.size() == 1);
        if (j.same_host) REQUIRE(placed_workers.size() == 1);
      }
    }
    return log;
  };
  INFO("seed " << seed);
  const std::vector<std::string> first = run(seed);
  CHECK(run(seed) == first);  // identical decisions for the same seed
}

TEST_CASE("market: recovery restores running jobs onto their GPUs; a removed worker gives its jobs back",
          "[market]") {
  Market m;
  m.UpsertWorker(Worker(1, 10, 2));
  m.UpsertWorker(Worker(2, 20, 1));
  const std::vector<PlacedGpu> held = {{.worker_id = 1, .index = 0, .price_utok_per_gpu_hour = 10},
                                       {.worker_id = 1, .index = 1, .price_utok_per_gpu_hour = 10}};
  REQUIRE(m.RestoreRunning(Job(1, 2, 100), held, 0));
  CHECK(m.HolderOf(1, 0) == 1);
  CHECK(m.HolderOf(1, 1) == 1);
  CHECK_FALSE(m.RestoreRunning(Job(2, 1, 100), {held[0]}, 0));  // a GPU never holds two jobs
  CHECK(PlacedOn(m.AddJob(Job(3, 1, 100), 0), 3) == 2);        // only worker 2 is free

  CHECK(m.RemoveWorker(1) == std::vector<int64_t>{1});
  CHECK(m.HolderOf(1, 0) == 0);
  CHECK(m.AddJob(Job(4, 1, 100), 1).placements.empty());  // worker 1 is gone, worker 2 is busy
  CHECK(m.WhyWaiting(4) == "needs 1 free GPUs on one worker; the largest free fit is 0");
}

TEST_CASE("market: an unschedulable worker keeps its jobs but gets no new ones until it is back", "[market]") {
  Market m;
  m.UpsertWorker(Worker(1, 10, 2));
  m.UpsertWorker(Worker(2, 50, 2));
  REQUIRE(PlacedOn(m.AddJob(Job(1, 1, 100), 0), 1) == 1);
  CHECK(m.SetSchedulable(1, false, 0).placements.empty());
  CHECK(m.HolderOf(1, 0) == 1);                          // still running there
  CHECK(PlacedOn(m.AddJob(Job(2, 1, 100), 0), 2) == 2);  // the dearer worker, the cheap one is out
  CHECK(PlacedOn(m.AddJob(Job(3, 1, 100), 0), 3) == 2);
  CHECK(m.AddJob(Job(4, 2, 100), 0).placements.empty());
  CHECK(m.FinishJob(1, 1).placements.empty());  // its freed GPU is not offered either
  CHECK(m.Tick(2).placements.empty());
  CHECK(m.WhyWaiting(4) == "needs 2 free GPUs on one worker; the largest free fit is 0");
  const Decisions back = m.SetSchedulable(1, true, 3);
  REQUIRE(back.placements.size() == 1);
  CHECK(back.placements[0].job_id == 4);
  CHECK(back.placements[0].gpus.size() == 2);
  CHECK(m.QueuedJobIds().empty());
  CHECK(m.HasJob(4));
  CHECK_FALSE(m.HasJob(1));
}

TEST_CASE("market: a container job that asks for the network goes only where the provider allows it", "[market]") {
  Market m;
  WorkerSpec closed = Worker(1, 10, 2, "H100");
  closed.job_kinds = {"container"};
  m.UpsertWorker(closed);
  JobRequirements networked = Job(1, 1, 100);
  networked.kind = "container";
  networked.needs_network = true;
  CHECK(m.AddJob(networked, 0).placements.empty());
  CHECK(m.WhyWaiting(1) == "no worker's provider allows the network the job asks for (spec.container.network)");
  JobRequirements offline = Job(2, 1, 100);
  offline.kind = "container";
  CHECK(PlacedOn(m.AddJob(offline, 0), 2) == 1);  // the same worker takes a job without the network
  WorkerSpec open = Worker(2, 10, 2, "H100");
  open.job_kinds = {"container"};
  open.policy.allows_network = true;
  m.UpsertWorker(open);
  CHECK(PlacedOn(m.Tick(1), 1) == 2);
}
