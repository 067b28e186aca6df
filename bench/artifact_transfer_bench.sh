#!/usr/bin/env bash
# Artifact transfer through the server against a plain copy of the same file (issue 18's target:
# upload and download each at least 0.5x of cp). Starts its own server (durable: blob fsync and
# PostgreSQL fsync on) in a temp dir, makes a file of SIZE_MIB random MiB, then runs, interleaved
# RUNS times: `cp` (copy_file_range: the kernel copies, no byte passes through user space), `dd
# bs=1M` (the same bytes read and written through user space, as any receiver must), `tessera artifact put` (the file's first bytes changed before
# each, so every upload stores new bytes) and `tessera artifact get` (digest-checked), and
# `openssl dgst -sha256` of the file: the SHA-256 that both ends of a verified transfer must compute
# at least once, on one core, which bounds any of them. Prints each run and the medians, with the
# ratios cp/put and cp/get (>= 0.5 meets the target) and cp/sha256 (the best a verified transfer can reach).
#
#   bench/artifact_transfer_bench.sh [SIZE_MIB=1024] [RUNS=5]
set -euo pipefail
size_mib=${1:-1024}
runs=${2:-5}
bin=${TESSERA_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/services/tessera}
dir=$(mktemp -d /tmp/tessera-artifact-bench-XXXXXX)
chmod 755 "$dir"
cleanup() {
  [ -n "${server_pid:-}" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
"$bin" server --listen 127.0.0.1:0 --data-dir "$dir/data" --port-file "$dir/port" --max-artifact-bytes $((size_mib * 2 << 20)) \
  >"$dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do [ -s "$dir/port" ] && break; sleep 0.1; done
export TESSERA_SERVER=127.0.0.1:$(cat "$dir/port") TESSERA_API_KEY_FILE=$dir/data/admin.key
"$bin" account create bench >/dev/null
head -c $((size_mib << 20)) /dev/urandom >"$dir/file"
now() { date +%s.%N; }
# Every timed command starts from the same memory: written-back, clean caches dropped (as root),
# the source file read back in. Without it, whichever command runs when the page cache is full pays
# for reclaiming it (3 s instead of 0.3 s for 1 GiB of write(2) on our VMs).
settle() {
  sync
  [ -w /proc/sys/vm/drop_caches ] && echo 1 >/proc/sys/vm/drop_caches
  cat "$dir/file" >/dev/null
}
printf "%-4s %8s %8s %8s %8s %8s   (seconds for %d MiB)\n" run cp dd put get sha256 "$size_mib"
for i in $(seq 1 "$runs"); do
  head -c 32 /dev/urandom | dd of="$dir/file" conv=notrunc status=none  # new bytes: a new blob each upload
  settle
  t0=$(now); cp "$dir/file" "$dir/copy"; t1=$(now)
  rm -f "$dir/copy"
  settle
  t2=$(now); dd if="$dir/file" of="$dir/copy" bs=1M status=none; t3=$(now)
  rm -f "$dir/copy"
  settle
  t4=$(now); digest=$("$bin" artifact put "$dir/file" --account bench 2>/dev/null | cut -d' ' -f1); t5=$(now)
  settle
  t6=$(now); "$bin" artifact get "$digest" --account bench -O "$dir/got" >/dev/null 2>&1; t7=$(now)
  cmp -s "$dir/file" "$dir/got" || { echo "downloaded bytes differ" >&2; exit 1; }
  rm -f "$dir/got"
  "$bin" artifact rm "$digest" --account bench >/dev/null
  settle
  t8=$(now); openssl dgst -sha256 "$dir/file" >/dev/null; t9=$(now)
  echo "$i $t0 $t1 $t2 $t3 $t4 $t5 $t6 $t7 $t8 $t9" | awk '{print $1, $3 - $2, $5 - $4, $7 - $6, $9 - $8, $11 - $10}' >>"$dir/times"
  awk '{printf "%-4s %8.3f %8.3f %8.3f %8.3f %8.3f\n", $1, $2, $3, $4, $5, $6}' <(tail -1 "$dir/times")
done
python3 - "$dir/times" "$size_mib" <<'PY'
import statistics, sys
rows = [list(map(float, l.split()[1:])) for l in open(sys.argv[1])]
cp, dd, put, get, sha = (statistics.median(c) for c in zip(*rows))
mib = float(sys.argv[2])
print(f"median  cp {cp:.3f} s ({mib / cp:.0f} MiB/s)  dd bs=1M {dd:.3f} s ({mib / dd:.0f} MiB/s)")
print(f"median  put {put:.3f} s ({mib / put:.0f} MiB/s)  get {get:.3f} s ({mib / get:.0f} MiB/s)")
print(f"median  sha256 of the file alone {sha:.3f} s ({mib / sha:.0f} MiB/s)")
print(f"ratio   cp/put {cp / put:.2f}  cp/get {cp / get:.2f}   dd/put {dd / put:.2f}  dd/get {dd / get:.2f}   target >= 0.5 of cp")
print(f"bound   cp/sha256 {cp / sha:.2f}: no transfer that checks a SHA-256 beats it here; put and get reach {sha / put:.2f} and {sha / get:.2f} of it")
PY
