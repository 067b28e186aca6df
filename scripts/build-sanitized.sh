#!/usr/bin/env bash
# Builds the unit, integration and simulation tests and the libFuzzer targets with clang under
# AddressSanitizer and UndefinedBehaviorSanitizer into build-sanitize/ (CPU backends). Expects
# install-deps.sh. TESSERA_FUZZ_SECONDS sets how long each fuzz target runs under ctest (60). The
# property tests run a tenth (or a twentieth) of their seeds here (ASan costs 5 to 10 times the CPU). The code
# compiles at -O0, which halves clang's time, the compute-heavy libraries at -O1
# (tessera_sanitized_optimize in CMakeLists.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-sanitize -G Ninja -DCMAKE_CXX_COMPILER=clang++-14 -DTESSERA_SANITIZE=ON -DTESSERA_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1" \
  -DTESSERA_FUZZ_SECONDS="${TESSERA_FUZZ_SECONDS:-60}" -DTESSERA_SIM_SEEDS=200 -DTESSERA_WERROR="${TESSERA_WERROR:-OFF}" >/dev/null
ninja -C build-sanitize -j "$(nproc)" sanitized_suite
