#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 (as root) and runs the whole test suite. First the main
# build: unit, integration (throwaway PostgreSQL clusters), end-to-end and crash tests (real server
# and worker processes, SIGKILLed and frozen) and the deterministic simulation. Then the sanitized
# clang build: the unit, integration and simulation tests under ASan and UBSan, and every libFuzzer
# target for 60 s. Arguments go to the main build's ctest; TESSERA_SANITIZED=0 skips the second half.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
sanitized="${TESSERA_SANITIZED:-1}"
if [ "$sanitized" = 1 ]; then
  # It compiles while the main suite runs, which mostly waits on processes and PostgreSQL.
  nice -n 10 ./scripts/build-sanitized.sh > build/build-sanitized.log 2>&1 &
  builder=$!
fi
status=0
(cd build && ctest --output-on-failure --timeout 900 "$@") || status=$?
if [ "$sanitized" = 1 ]; then
  if ! wait "$builder"; then
    tail -n 60 build/build-sanitized.log
    exit 1
  fi
  [ "$status" = 0 ] || exit "$status"
  TESSERA_SANITIZED_BUILT=1 ./scripts/test-sanitized.sh -j 3
fi
exit "$status"
