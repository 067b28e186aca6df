#!/usr/bin/env bash
# Runs the sanitized build (scripts/build-sanitized.sh, which it calls first): the unit and
# integration tests and 200 simulation seeds under AddressSanitizer and UndefinedBehaviorSanitizer,
# where any memory error, leak or undefined behaviour fails the run, and each libFuzzer target for
# TESSERA_FUZZ_SECONDS from its seed corpus, where any input it finds fails the run. Arguments go
# to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${TESSERA_SANITIZED_BUILT:-}" = 1 ] || ./scripts/build-sanitized.sh
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TESSERA_PROPERTY_SEEDS=100
cd build-sanitize
ctest --output-on-failure --timeout 900 -L 'unit|integration|sim|fuzz' -E '^sim$' "$@"
