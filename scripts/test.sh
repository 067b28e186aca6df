#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 (as root) and runs the whole test suite: unit,
# integration (throwaway PostgreSQL clusters) and end-to-end (real server and worker processes).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
cd build
ctest --output-on-failure --timeout 900 "$@"
