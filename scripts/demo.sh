#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 (as root) and runs the main job: the server with its
# embedded PostgreSQL, two workers, two train_mlp jobs watched to the end, then the invoices and
# balances. Everything it starts is stopped on exit; its state is left in .demo/ for a look.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
root=$(pwd)
demo="$root/.demo"
rm -rf "$demo" && mkdir -p "$demo" && chmod 755 "$demo"
bin="$root/build/services"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

"$bin/tessera" server --listen 127.0.0.1:0 --data-dir "$demo/data" --port-file "$demo/port" >"$demo/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do [ -s "$demo/port" ] && break; sleep 0.1; done
[ -s "$demo/port" ] || { echo "server did not start:"; cat "$demo/server.log"; exit 1; }
export TESSERA_SERVER="127.0.0.1:$(cat "$demo/port")"
# The server issued the first admin key into its data dir; the admin issues the others.
tessera() { "$bin/tessera" --api-key-file "$demo/data/admin.key" "$@"; }
as_acme() { "$bin/tessera" --api-key-file "$demo/acme.key" "$@"; }
echo "== server on $TESSERA_SERVER (embedded PostgreSQL under .demo/data, admin key in .demo/data/admin.key)"

tessera account create acme
tessera account create gpuco --kind provider
tessera admin create-key --role customer --account acme --label demo >"$demo/acme.key"
tessera admin create-key --role provider --account gpuco --label demo >"$demo/gpuco.key"
tessera admin list-keys
tessera billing deposit acme 100000000 --idempotency-key demo-deposit
# Two CPU workers (--cpu), so the demo is the same on any machine; without it a worker offers the
# machine's NVIDIA GPUs, and jobs must then ask for their model (examples/gemm_bench.yaml).
"$bin/tessera-worker" --server "$TESSERA_SERVER" --provider gpuco --api-key-file "$demo/gpuco.key" --name rig-a --cpu --gpus 2 --ask 1200000 --state-dir "$demo/rig-a" >"$demo/rig-a.log" 2>&1 &
pids+=($!)
"$bin/tessera-worker" --server "$TESSERA_SERVER" --provider gpuco --api-key-file "$demo/gpuco.key" --name rig-b --cpu --gpus 2 --ask 1000000 --state-dir "$demo/rig-b" >"$demo/rig-b.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ "$(tessera worker list | grep -c ' yes ')" = 2 ] && break; sleep 0.2; done
# Each worker proves its hardware (a proof-of-GPU challenge) before it is offered a job.
for _ in $(seq 1 50); do [ "$(tessera worker list | grep -c ACTIVE)" = 2 ] && break; sleep 0.2; done
echo "== workers"
tessera worker list
echo "== rig-a's proof of hardware"
tessera admin fraud show "$(cat "$demo/rig-a/worker-id")"

jobs=()
for seed in 7 8; do
  cat >"$demo/train-$seed.yaml" <<YAML
gpu_count: 1
gpu_models: [CPU]
bid_utok_per_gpu_hour: 2000000
max_duration_ms: 600000
train_mlp:
  seed: $seed
  input_dim: 32
  hidden_dim: 128
  output_dim: 4
  samples: 8192
  batch_size: 64
  epochs: 12
  learning_rate_micros: 40000
YAML
  out=$(as_acme job submit -f "$demo/train-$seed.yaml" --account acme --request-id "demo-train-$seed")
  echo "$out"
  jobs+=("$(echo "$out" | grep -o 'job [0-9]*' | head -1 | cut -d' ' -f2)")
done
for j in "${jobs[@]}"; do
  echo "== watching job $j"
  as_acme job watch "$j"
done
sleep 1  # settlement runs every 200 ms
for j in "${jobs[@]}"; do
  echo "== job $j"
  as_acme job get "$j"
  as_acme billing invoice "$j"
done
echo "== balances"
as_acme billing balance acme
"$bin/tessera" --api-key-file "$demo/gpuco.key" billing balance gpuco
echo "== acme's ledger"
as_acme billing transfers acme --limit 10
echo "== acme's key cannot read gpuco's earnings"
if as_acme billing balance gpuco; then echo "unexpected: a customer read a provider's balance"; exit 1; fi
