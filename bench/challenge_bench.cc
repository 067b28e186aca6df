// What a proof-of-GPU challenge costs on each side (Google Benchmark), at the sizes the throughput
// table gives: the worker's CPU-reference product and its commitment (hashing every row), and the
// server's check of the k = 8 opened rows (deriving the operands, recomputing each row, the Merkle
// paths). The server's cost bounds how many workers a scheduler can verify per second.
#include <benchmark/benchmark.h>

#include "kernels/gpu_challenge.h"
#include "services/common/gpu_challenge_proof.h"

namespace tessera {
namespace {

constexpr uint32_t kRowsChecked = 8;

void BM_CpuProduct(benchmark::State& state) {
  const kernels::ChallengeSpec spec{.seed = 1, .n = static_cast<uint32_t>(state.range(0))};
  std::vector<int8_t> a, b;
  kernels::ChallengeOperands(spec, a, b);
  for (auto _ : state) benchmark::DoNotOptimize(kernels::ChallengeProduct(spec, a, b));
  state.counters["GOPS"] = benchmark::Counter(2.0 * spec.n * spec.n * static_cast<double>(spec.n) * static_cast<double>(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_CpuProduct)->Arg(256)->Unit(benchmark::kMillisecond);

void BM_Commit(benchmark::State& state) {
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  std::vector<int32_t> product(static_cast<size_t>(n) * n, 7);
  for (auto _ : state) benchmark::DoNotOptimize(CommitProduct(product, n).root);
}
BENCHMARK(BM_Commit)->Arg(256)->Arg(4'096)->Unit(benchmark::kMillisecond);

void BM_ServerCheck(benchmark::State& state) {
  const kernels::ChallengeSpec spec{.seed = 2, .n = static_cast<uint32_t>(state.range(0))};
  // The honest product, computed row by row: the full CPU product at n = 4,096 takes minutes.
  std::vector<int8_t> a, b;
  kernels::ChallengeOperands(spec, a, b);
  std::vector<int32_t> product(static_cast<size_t>(spec.n) * spec.n, 0);
  for (uint32_t r = 0; r < kRowsChecked; ++r) {
    const std::vector<int32_t> row = kernels::ChallengeRow(spec, a, b, r);
    std::copy(row.begin(), row.end(), product.begin() + static_cast<ptrdiff_t>(r) * spec.n);
  }
  const CommittedProduct committed = CommitProduct(std::move(product), spec.n);
  std::vector<RowOpening> openings;
  for (uint32_t r = 0; r < kRowsChecked; ++r) openings.push_back(OpenRow(committed, r));
  for (auto _ : state) {
    std::vector<int8_t> sa, sb;
    kernels::ChallengeOperands(spec, sa, sb);
    for (const RowOpening& o : openings) {
      if (!CheckOpening(spec, sa, sb, committed.root, o).ok()) state.SkipWithError("an honest opening failed");
    }
  }
}
BENCHMARK(BM_ServerCheck)->Arg(256)->Arg(4'096)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tessera
