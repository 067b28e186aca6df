// Seeds to options, and shrinking a failing run to a smaller one that still fails.
#include <array>

#include "absl/strings/str_cat.h"
#include "tests/sim/sim_model.h"

namespace tessera::sim {
namespace {

struct FaultField {
  const char* name;
  int FaultRates::*rate;
  int max_ppm;
};

// Each fault's name and the most it fires per opportunity (worker-steps of 100 ms, messages, …).
constexpr std::array<FaultField, 10> kFaults = {{
    {"worker_crash", &FaultRates::worker_crash, 800},
    {"worker_partition", &FaultRates::worker_partition, 800},
    {"message_delay", &FaultRates::message_delay, 50'000},
    {"duplicate", &FaultRates::duplicate, 30'000},
    {"reorder", &FaultRates::reorder, 500'000},
    {"usage_lost", &FaultRates::usage_lost, 20'000},
    {"scheduler_restart", &FaultRates::scheduler_restart, 1'500},
    {"kernel_failure", &FaultRates::kernel_failure, 150'000},
    {"clock_jump", &FaultRates::clock_jump, 500},
    {"settlement_crash", &FaultRates::settlement_crash, 150'000},
}};

}  // namespace

const char* BugName(InjectedBug bug) {
  switch (bug) {
    case InjectedBug::kNone: return "none";
    case InjectedBug::kResettle: return "resettle";
    case InjectedBug::kStaleLease: return "stale-lease";
    case InjectedBug::kNoRequeueOnHello: return "no-requeue-on-hello";
  }
  return "?";
}

SimOptions OptionsForSeed(uint64_t seed) {
  Rng rng(seed ^ 0x5eed5eed5eedULL);
  SimOptions o;
  o.seed = seed;
  o.workers = static_cast<int>(rng.Uniform(2, 6));
  o.customers = static_cast<int>(rng.Uniform(1, 4));
  o.jobs = static_cast<int>(rng.Uniform(8, 40));
  // Each fault is on in about two runs of three, at a rate drawn up to its maximum.
  for (const FaultField& f : kFaults) {
    if (rng.Chance(666'666)) o.faults.*f.rate = static_cast<int>(rng.Uniform(1, f.max_ppm));
  }
  return o;
}

std::string Describe(const SimOptions& o) {
  std::string out = absl::StrCat("seed=", o.seed, " workers=", o.workers, " customers=", o.customers, " jobs=", o.jobs);
  for (const FaultField& f : kFaults) {
    if (o.faults.*f.rate > 0) absl::StrAppend(&out, " ", f.name, "=", o.faults.*f.rate, "ppm");
  }
  if (o.bug != InjectedBug::kNone) absl::StrAppend(&out, " bug=", BugName(o.bug));
  return out;
}

ShrunkFailure Shrink(const SimOptions& failing) {
  SimOptions best = failing;
  best.record_trace = false;
  auto fails = [](const SimOptions& o) { return !RunSimulation(o).ok; };
  // Faults off one at a time, then a smaller workload, while the same seed still fails.
  for (const FaultField& f : kFaults) {
    if (best.faults.*f.rate == 0) continue;
    SimOptions trial = best;
    trial.faults.*f.rate = 0;
    if (fails(trial)) best = trial;
  }
  for (bool smaller = true; smaller;) {
    smaller = false;
    for (auto [field, floor] : {std::pair{&SimOptions::jobs, 1}, {&SimOptions::workers, 1}, {&SimOptions::customers, 1}}) {
      SimOptions trial = best;
      if (trial.*field <= floor) continue;
      trial.*field = std::max(floor, trial.*field / 2);
      if (!fails(trial)) {
        trial = best;
        trial.*field -= 1;
        if (!fails(trial)) continue;
      }
      best = trial;
      smaller = true;
    }
  }
  best.record_trace = true;
  return {.options = best, .result = RunSimulation(best)};
}

}  // namespace tessera::sim
