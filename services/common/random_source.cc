#include "services/common/random_source.h"

#include <sodium.h>

namespace tessera {

uint64_t RandomSource::Below(uint64_t n) {
  // Rejection sampling: draws in the last, partial copy of [0, n) are thrown away.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t draw = Next();
  while (draw >= limit) draw = Next();
  return draw % n;
}

uint64_t SecureRandom::Next() {
  uint64_t bits = 0;
  randombytes_buf(&bits, sizeof bits);
  return bits;
}

uint64_t SeededRandom::Next() {
  std::lock_guard lock(mu_);
  return rng_.Next();
}

}  // namespace tessera
