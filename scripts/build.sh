#!/usr/bin/env bash
# Configures and builds Tessera into build/ with Ninja and ccache. TESSERA_CUDA=AUTO|ON|OFF picks
# the CUDA backends (AUTO: when nvcc is found). Warnings are errors in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
werror=OFF
[ "${CI:-}" = "true" ] && werror=ON
cmake -S . -B build -G Ninja -DTESSERA_CUDA="${TESSERA_CUDA:-AUTO}" -DTESSERA_WERROR="${TESSERA_WERROR:-$werror}" >/dev/null
ninja -C build -j "$(nproc)"
