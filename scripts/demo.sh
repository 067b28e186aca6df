#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 (as root) and runs the main job: the server with its
# embedded PostgreSQL and two workers; a customer uploads its dataset and its own PyTorch training
# program, runs it in the workers' sandbox and follows its logs; the worker running it is SIGKILLed
# mid-training and the job resumes on the other from its last checkpoint; then its outputs, its
# invoice (both attempts) and the balances. Where this machine cannot make sandboxes (a chroot
# without user namespaces), the built-in train_mlp kernel runs instead, saying why. Everything it
# starts is stopped on exit; its state is left in .demo/ for a look.
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

# A worker silent for 3 s loses its leases (the default is 10 s): the lost worker below is noticed sooner.
"$bin/tessera" server --listen 127.0.0.1:0 --data-dir "$demo/data" --port-file "$demo/port" --lease-timeout-ms 3000 >"$demo/server.log" 2>&1 &
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
declare -A rig_pid
"$bin/tessera-worker" --server "$TESSERA_SERVER" --provider gpuco --api-key-file "$demo/gpuco.key" --name rig-a --cpu --gpus 2 --ask 1200000 --state-dir "$demo/rig-a" >"$demo/rig-a.log" 2>&1 &
pids+=($!); rig_pid[rig-a]=$!
"$bin/tessera-worker" --server "$TESSERA_SERVER" --provider gpuco --api-key-file "$demo/gpuco.key" --name rig-b --cpu --gpus 2 --ask 1000000 --state-dir "$demo/rig-b" >"$demo/rig-b.log" 2>&1 &
pids+=($!); rig_pid[rig-b]=$!
for _ in $(seq 1 50); do [ "$(tessera worker list | grep -c ' yes ')" = 2 ] && break; sleep 0.2; done
# Each worker proves its hardware (a proof-of-GPU challenge) before it is offered a job.
for _ in $(seq 1 50); do [ "$(tessera worker list | grep -c ACTIVE)" = 2 ] && break; sleep 0.2; done
echo "== workers"
tessera worker list
echo "== rig-a's proof of hardware"
tessera admin fraud show "$(cat "$demo/rig-a/worker-id")"

train_builtin() {
  local jobs=() seed out j
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
}

# The customer's own training program: its data and code uploaded, run in the sandbox, followed,
# its worker killed mid-training, resumed elsewhere from its checkpoint, its model downloaded.
train_pytorch() {
  echo "== acme's own data and code"
  /usr/bin/python3 examples/pytorch/make_data.py "$demo/train.csv" 4000
  mkdir -p "$demo/code" && cp examples/pytorch/train.py "$demo/code/"
  local data code job worker_id victim survivor
  data=$(as_acme artifact put "$demo/train.csv" | grep -o 'sha256:[0-9a-f]*' | head -1)
  code=$(as_acme artifact put --name code "$demo/code" | grep -o 'sha256:[0-9a-f]*' | head -1)
  as_acme artifact ls
  cat >"$demo/finetune.yaml" <<YAML
kind: container
gpu_count: 1
gpu_models: [CPU]
bid_utok_per_gpu_hour: 2000000
max_duration_ms: 900000
container:
  command: [python3, /job/code/train.py, --epochs, "30", --epoch-seconds, "0.5"]
  inputs: [{artifact: "$data", path: train.csv}]
  code: "$code"
  secrets: {WANDB_API_KEY: "demo-secret-never-shown"}
  checkpoint_interval_s: 2
  cpu_cores: 1
  memory_mib: 2048
YAML
  echo "== acme's job spec"; cat "$demo/finetune.yaml"
  job=$(as_acme job submit -f "$demo/finetune.yaml" --account acme --request-id demo-finetune | grep -o 'job [0-9]*' | head -1 | cut -d' ' -f2)
  echo "== job $job submitted; its logs, followed live (tessera job logs $job -f):"
  as_acme job logs "$job" -f 2>&1 | tee "$demo/follow.log" | sed -u 's/^/  | /' &
  local follower=$!
  # Mid-training, once a checkpoint is saved, the worker running the job dies without a word.
  for _ in $(seq 1 600); do
    grep -q 'checkpoint saved' "$demo/follow.log" && grep -q '^epoch 8/' "$demo/follow.log" && break
    sleep 0.2
  done
  worker_id=$(as_acme -o json job get "$job" | grep -oE '"worker_?[iI]d": ?"?[0-9]+' | grep -oE '[0-9]+$' || true)
  victim=rig-a; survivor=rig-b
  [ "$(cat "$demo/rig-b/worker-id")" = "$worker_id" ] && { victim=rig-b; survivor=rig-a; }
  echo "== SIGKILL $victim (worker $worker_id) mid-training: once its lease times out the job resumes on $survivor from its last checkpoint"
  kill -KILL "${rig_pid[$victim]}"
  { wait "${rig_pid[$victim]}"; } 2>/dev/null || true
  wait "$follower" || true
  echo "== the job's history (tessera job watch $job)"
  as_acme job watch "$job" | grep -v ' progress ' || true
  echo "== the secret never reaches the logs"
  if as_acme job logs "$job" 2>&1 | grep -q demo-secret-never-shown; then echo "unexpected: a secret in the logs"; exit 1; fi
  echo "   (no line holds it)"
  echo "== the trained model (tessera job outputs $job)"
  as_acme job outputs "$job" -o "$demo/model"
  ls -l "$demo/model"
  cat "$demo/model/metrics.json"; echo
  sleep 1  # settlement runs every 200 ms
  echo "== job $job"
  as_acme job get "$job"
  echo "== its invoice: both attempts, each on its own worker"
  as_acme billing invoice "$job"
}

if grep -q 'container jobs: on' "$demo/rig-a.log" && grep -q 'container jobs: on' "$demo/rig-b.log"; then
  train_pytorch
else
  echo "== container jobs are off on this machine ($(grep -o 'container jobs: off: .*' "$demo/rig-a.log" | head -1 | cut -c 22-))"
  echo "   so the customer's own program cannot run here; the built-in train_mlp kernel runs instead"
  train_builtin
fi
echo "== balances"
as_acme billing balance acme
"$bin/tessera" --api-key-file "$demo/gpuco.key" billing balance gpuco
echo "== acme's ledger"
as_acme billing transfers acme --limit 10
echo "== acme's key cannot read gpuco's earnings"
if as_acme billing balance gpuco; then echo "unexpected: a customer read a provider's balance"; exit 1; fi
