// Randomness enters through this interface, as time enters through Clock: production draws from the
// operating system's CSPRNG (libsodium), tests and the simulation from a seed they print, so a run
// can be replayed. Both are safe to share between threads.
//
//   SecureRandom random;                      // production
//   SeededRandom random(seed);                // tests, simulation
//   uint64_t row = random.Below(rows);        // uniform in [0, rows)
#pragma once

#include <cstdint>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "kernels/synthetic_data.h"

namespace tessera {

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // 64 uniformly random bits.
  virtual uint64_t Next() = 0;
  // Uniform in [0, n) for n > 0, without modulo bias.
  uint64_t Below(uint64_t n);
  // Uniform in [0, 1), 53 random bits.
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
};

// The CSPRNG: what a challenge's rows or a re-check's time must come from, so that a worker cannot
// predict them.
class SecureRandom final : public RandomSource {
 public:
  uint64_t Next() override;
};

// SplitMix64 from `seed`: the same seed, the same draws.
class SeededRandom final : public RandomSource {
 public:
  explicit SeededRandom(uint64_t seed) : rng_(seed) {}
  uint64_t Next() override;

 private:
  std::mutex mu_;
  kernels::SplitMix64 rng_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera
