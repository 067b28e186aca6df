// tessera_sim: runs the deterministic simulation over a range of seeds, on every core, and on a
// failure prints the seed, the shrunk options and the trace up to the violation.
//
//   tessera_sim --seeds 2000            # seeds 1..2000
//   tessera_sim --first 777 --seeds 1 --trace
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "tests/sim/sim_world.h"

int main(int argc, char** argv) {
  CLI::App app{"Tessera deterministic simulation"};
  uint64_t first = 1;
  int64_t seeds = 2000;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  bool trace = false;
  std::string bug = "none";
  app.add_option("--first", first, "first seed");
  app.add_option("--seeds", seeds, "how many seeds, from --first");
  app.add_option("--threads", threads, "parallel runs");
  app.add_flag("--trace", trace, "print the whole trace of every run");
  app.add_option("--bug", bug, "inject a defect (resettle, stale-lease, no-requeue-on-hello) to see the checks catch it");
  CLI11_PARSE(app, argc, argv);
  tessera::sim::InjectedBug injected = tessera::sim::InjectedBug::kNone;
  for (auto b : {tessera::sim::InjectedBug::kResettle, tessera::sim::InjectedBug::kStaleLease, tessera::sim::InjectedBug::kNoRequeueOnHello}) {
    if (bug == tessera::sim::BugName(b)) injected = b;
  }
  if (bug != "none" && injected == tessera::sim::InjectedBug::kNone) {
    std::fprintf(stderr, "unknown --bug %s\n", bug.c_str());
    return 2;
  }

  const auto began = std::chrono::steady_clock::now();
  std::atomic<int64_t> next{0}, steps{0}, faults{0}, jobs{0}, reports{0};
  std::mutex mu;
  std::vector<uint64_t> failed;
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int64_t i; (i = next++) < seeds;) {
        tessera::sim::SimOptions o = tessera::sim::OptionsForSeed(first + static_cast<uint64_t>(i));
        o.bug = injected;
        o.record_trace = trace;
        const tessera::sim::SimResult r = tessera::sim::RunSimulation(o);
        steps += r.step;
        faults += r.faults_fired;
        jobs += r.jobs_accepted;
        reports += r.reports_settled;
        std::lock_guard lock(mu);
        if (trace) {
          for (const std::string& line : r.trace) std::printf("%s\n", line.c_str());
        }
        if (!r.ok) failed.push_back(o.seed);
      }
    });
  }
  for (std::thread& t : pool) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  std::printf("%lld seeds from %llu: %lld steps, %lld faults fired, %lld jobs, %lld reports settled, %zu failed, %.1f s\n",
              static_cast<long long>(seeds), static_cast<unsigned long long>(first), static_cast<long long>(steps.load()),
              static_cast<long long>(faults.load()), static_cast<long long>(jobs.load()), static_cast<long long>(reports.load()),
              failed.size(), seconds);
  if (failed.empty()) return 0;
  std::sort(failed.begin(), failed.end());
  tessera::sim::SimOptions o = tessera::sim::OptionsForSeed(failed.front());
  o.bug = injected;
  const tessera::sim::SimResult first_run = tessera::sim::RunSimulation(o);
  std::printf("FAILED seed %llu (%zu seeds failed): %s\n  options: %s\n", static_cast<unsigned long long>(o.seed), failed.size(),
              first_run.violation.c_str(), tessera::sim::Describe(o).c_str());
  const tessera::sim::ShrunkFailure shrunk = tessera::sim::Shrink(o);
  std::printf("shrunk to: %s\n  %s at step %lld\ntrace (last 60 lines):\n", tessera::sim::Describe(shrunk.options).c_str(),
              shrunk.result.violation.c_str(), static_cast<long long>(shrunk.result.step));
  const auto& lines = shrunk.result.trace;
  for (size_t i = lines.size() > 60 ? lines.size() - 60 : 0; i < lines.size(); ++i) std::printf("  %s\n", lines[i].c_str());
  // The lines about the job the violation names, from the start.
  if (auto at = shrunk.result.violation.find("job "); at != std::string::npos) {
    const std::string id = shrunk.result.violation.substr(at + 4, shrunk.result.violation.find_first_not_of("0123456789", at + 4) - at - 4);
    std::printf("trace of job %s:\n", id.c_str());
    for (const std::string& line : lines) {
      for (const char* tail : {" ", ":", "/"}) {
        if (line.find("job " + id + tail) != std::string::npos) {
          std::printf("  %s\n", line.c_str());
          break;
        }
      }
    }
  }
  std::printf("rerun: tests/sim/run --first %llu --seeds 1 --trace\n", static_cast<unsigned long long>(o.seed));
  return 1;
}
