// Google Benchmark of the first-version matcher: one round over J queued jobs and W workers.
#include <benchmark/benchmark.h>

#include "scheduler/matcher.h"

using namespace tessera::scheduler;

static void BM_MatchRound(benchmark::State& state) {
  const auto jobs_n = static_cast<int>(state.range(0));
  const auto workers_n = static_cast<int>(state.range(1));
  MatchInput input;
  for (int j = 0; j < jobs_n; ++j) {
    input.jobs.push_back({.job_id = j, .gpu_count = static_cast<uint32_t>(1 + j % 4), .gpu_models = {},
                          .bid_utok_per_gpu_hour = 1'000'000 + (j % 100) * 10'000, .priority = Priority::kOnDemand,
                          .submitted_at_ms = j});
  }
  for (int w = 0; w < workers_n; ++w) {
    WorkerOffer offer{.worker_id = w, .ask_utok_per_gpu_hour = 900'000 + (w % 50) * 10'000, .free_gpus = {}};
    for (uint32_t g = 0; g < 8; ++g) offer.free_gpus.push_back({.index = g, .model = "H100"});
    input.workers.push_back(std::move(offer));
  }
  for (auto _ : state) benchmark::DoNotOptimize(Match(input));
  state.SetItemsProcessed(state.iterations() * jobs_n);
}
BENCHMARK(BM_MatchRound)->Args({1'000, 100})->Args({10'000, 100})->Args({10'000, 1'000})->Unit(benchmark::kMillisecond);
