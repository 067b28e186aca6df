// TESSERA_CHECK: an always-on assertion for invariants (a balance, a GPU owner, a state
// transition). Never use it on external input: validate that and return a status instead.
#pragma once

#include <cstdio>
#include <cstdlib>

#define TESSERA_CHECK(condition)                                                                   \
  do {                                                                                             \
    if (!(condition)) {                                                                            \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #condition);    \
      std::abort();                                                                                \
    }                                                                                              \
  } while (false)
