// Benchmark of the scheduling core (scheduler/market.h) on the synthetic market of issue 3, on one
// core: 10,000 workers with 1–8 GPUs (6 models, 4 regions, asks ±30 %), 100,000 queued jobs (70 %
// single GPU, 25 % 2–8 GPUs on one host, 5 % 16–64 spread), and the naive full-scan matcher
// (scheduler/matcher.h) on the same queue as the baseline.
//
//   build/bench/tessera_market_bench [--workers 10000] [--jobs 100000] [--seed 1]
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "scheduler/market.h"
#include "scheduler/matcher.h"

using namespace tessera::scheduler;
using SteadyClock = std::chrono::steady_clock;

namespace {

const std::vector<std::string> kModels = {"H100", "A100", "L40S", "RTX4090", "A10", "V100"};
const std::vector<int64_t> kBasePrice = {2'500'000, 1'600'000, 1'000'000, 500'000, 400'000, 600'000};
const std::vector<uint64_t> kMemoryMib = {80'000, 80'000, 48'000, 24'000, 24'000, 32'000};
const std::vector<std::string> kRegions = {"eu-west", "us-east", "us-west", "ap-south"};

struct Synthetic {
  std::vector<WorkerSpec> workers;
  std::vector<JobRequirements> jobs;
  size_t gpus = 0;
};

Synthetic MakeMarket(int workers, int jobs, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&](int lo, int hi) { return lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1)); };
  Synthetic s;
  for (int w = 0; w < workers; ++w) {
    const int model = uniform(0, 5);
    WorkerSpec spec{.worker_id = w + 1, .region = kRegions[uniform(0, 3)], .reputation = uniform(0, 100),
                    .ask_utok_per_gpu_hour = kBasePrice[model] * uniform(70, 130) / 100, .gpus = {}, .policy = {}, .job_kinds = {}};
    const int n = uniform(1, 8);
    for (int g = 0; g < n; ++g) spec.gpus.push_back({.model = kModels[model], .memory_mib = kMemoryMib[model], .compute_capability = 80});
    if (uniform(0, 9) == 0) spec.policy.accepts_spot = false;
    s.gpus += n;
    s.workers.push_back(std::move(spec));
  }
  for (int j = 0; j < jobs; ++j) {
    const int kind = uniform(0, 99);
    JobRequirements r{.job_id = j + 1, .account = "customer" + std::to_string(uniform(0, 99)), .kind = "train_mlp", .gpu_count = 1,
                      .gpu_models = {}, .min_memory_mib = 0, .min_compute_capability = 0, .regions = {},
                      .min_reputation = 0, .same_host = true, .bid_utok_per_gpu_hour = 0, .max_duration_ms = 3'600'000,
                      .priority = uniform(0, 4) == 0 ? Priority::kSpot : Priority::kOnDemand, .submitted_at_ms = j};
    if (kind >= 70 && kind < 95) r.gpu_count = static_cast<uint32_t>(uniform(2, 8));
    if (kind >= 95) {
      r.gpu_count = static_cast<uint32_t>(uniform(16, 64));
      r.same_host = false;
    }
    const int model = uniform(0, 5);
    if (uniform(0, 1) == 0) r.gpu_models = {kModels[model], kModels[(model + 1) % 6]};
    if (uniform(0, 3) == 0) r.regions = {kRegions[uniform(0, 3)]};
    if (uniform(0, 4) == 0) r.min_memory_mib = 40'000;
    if (uniform(0, 9) == 0) r.min_reputation = uniform(0, 50);
    r.bid_utok_per_gpu_hour = kBasePrice[model] * uniform(80, 160) / 100;
    s.jobs.push_back(std::move(r));
  }
  return s;
}

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

double MedianUs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

// The skeleton's matcher: every job scans every worker.
double NaivePlacementsPerSecond(const Synthetic& s, size_t* placed) {
  MatchInput in;
  for (const WorkerSpec& w : s.workers) {
    WorkerOffer o{.worker_id = w.worker_id, .ask_utok_per_gpu_hour = w.ask_utok_per_gpu_hour, .free_gpus = {}};
    for (uint32_t i = 0; i < w.gpus.size(); ++i) o.free_gpus.push_back({.index = i, .model = w.gpus[i].model});
    in.workers.push_back(std::move(o));
  }
  for (const JobRequirements& j : s.jobs) {
    in.jobs.push_back({.job_id = j.job_id, .gpu_count = j.gpu_count, .gpu_models = j.gpu_models,
                       .bid_utok_per_gpu_hour = j.bid_utok_per_gpu_hour, .priority = j.priority,
                       .submitted_at_ms = j.submitted_at_ms});
  }
  const auto start = SteadyClock::now();
  const MatchResult r = Match(in);
  const double seconds = Seconds(SteadyClock::now() - start);
  *placed = r.placements.size();
  return static_cast<double>(r.placements.size()) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  int workers = 10'000, jobs = 100'000, probes = 10'000;
  uint64_t seed = 1;
  bool baseline = true;
  CLI::App app{"Tessera scheduling core benchmark"};
  app.add_option("--workers", workers);
  app.add_option("--jobs", jobs);
  app.add_option("--probes", probes, "Single-job and freed-GPU measurements");
  app.add_option("--seed", seed);
  app.add_flag("!--no-baseline", baseline, "Skip the naive full-scan matcher");
  CLI11_PARSE(app, argc, argv);

  const Synthetic s = MakeMarket(workers, jobs, seed);
  std::printf("market: %d workers, %zu GPUs, %d queued jobs (seed %llu)\n", workers, s.gpus, jobs,
              static_cast<unsigned long long>(seed));

  // 1. Initial placement of the whole queue: jobs queued first, then the workers arrive, then one pass.
  const size_t heap_before = mallinfo2().uordblks;
  Market market(MarketOptions{.reserve_after_ms = INT64_MAX / 2, .reserve_min_gpus = 2, .max_reservations = 64});
  for (const JobRequirements& j : s.jobs) (void)market.AddJob(j, 0);
  for (const WorkerSpec& w : s.workers) market.UpsertWorker(w);
  const size_t heap_loaded = mallinfo2().uordblks;
  auto start = SteadyClock::now();
  const Decisions initial = market.Tick(1);
  const double initial_s = Seconds(SteadyClock::now() - start);
  const double rate = static_cast<double>(initial.placements.size()) / initial_s;
  std::printf("initial placement: %zu placements in %.3f s = %.0f placements/s (%zu preemptions)\n",
              initial.placements.size(), initial_s, rate, initial.preempted.size());
  std::printf("core memory: %.0f bytes per GPU and queued job (%zu bytes for %zu GPUs + %d jobs)\n",
              static_cast<double>(heap_loaded - heap_before) / static_cast<double>(s.gpus + s.jobs.size()),
              heap_loaded - heap_before, s.gpus, jobs);

  // 2. A freed GPU re-matched: finish a running single-GPU job; the queue is still long.
  std::vector<int64_t> single;
  for (const JobPlacement& p : initial.placements) {
    if (p.gpus.size() == 1) single.push_back(p.job_id);
  }
  std::mt19937_64 rng(seed + 7);
  std::shuffle(single.begin(), single.end(), rng);
  std::vector<double> freed_us;
  size_t rematched = 0;
  for (int i = 0; i < probes && i < static_cast<int>(single.size()); ++i) {
    start = SteadyClock::now();
    const Decisions d = market.FinishJob(single[static_cast<size_t>(i)], 2 + i);
    freed_us.push_back(Seconds(SteadyClock::now() - start) * 1e6);
    rematched += d.placements.size();
  }
  std::printf("freed GPU re-matched: median %.1f µs, p99 %.1f µs over %zu frees (%zu placements)\n", MedianUs(freed_us),
              Percentile(freed_us, 0.99), freed_us.size(), rematched);

  // 3. A single new job against the full market: an empty queue and every worker indexed.
  Market fresh;
  for (const WorkerSpec& w : s.workers) fresh.UpsertWorker(w);
  std::vector<double> new_us;
  size_t new_placed = 0;
  for (int i = 0; i < probes; ++i) {
    JobRequirements j = s.jobs[static_cast<size_t>(i) % s.jobs.size()];
    j.job_id = 1'000'000 + i;
    start = SteadyClock::now();
    const Decisions d = fresh.AddJob(j, 0);
    new_us.push_back(Seconds(SteadyClock::now() - start) * 1e6);
    new_placed += d.placements.size();
    (void)fresh.RemoveJob(j.job_id, 0);  // keep the market as it was
  }
  std::printf("single new job: median %.1f µs, p99 %.1f µs over %d jobs (%zu placed)\n", MedianUs(new_us),
              Percentile(new_us, 0.99), probes, new_placed);

  if (baseline) {
    size_t placed = 0;
    const double naive = NaivePlacementsPerSecond(s, &placed);
    std::printf("naive full-scan matcher: %zu placements at %.0f placements/s; the core is %.1fx faster\n", placed,
                naive, rate / naive);
  }
  return 0;
}
