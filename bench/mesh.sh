#!/usr/bin/env bash
# Replication benchmarks of a syncmesh-replica mesh (all replicas on this machine, loopback).
#
#   bench/mesh.sh
#   MESH_BENCH_PARTS=delay MESH_BENCH_SIZES=3 bench/mesh.sh
#
# Measures, in one run: replication delay write-on-A -> visible-on-B (p50/p99) with 3 and 10
# replicas under ~10k SET/s of background load; SET throughput on one replica of a 3-replica
# mesh vs a standalone replica, and the others' catch-up; time to ready of a replica joining a
# 2-replica mesh holding 1,000,000 keys; mesh bytes per replicated SET. See bench/README.md,
# "mesh.sh — replication". The work is done by bench/mesh_bench.py; this script owns the
# processes: everything started is killed on exit, Ctrl-C and timeout (MESH_BENCH_TIMEOUT, s).
set -uo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
export PYTHONDONTWRITEBYTECODE=1  # no bench/__pycache__
export SYNCMESH_REPLICA_BIN="${SYNCMESH_REPLICA_BIN:-$REPO/target/release/syncmesh-replica}"
TIMEOUT="${MESH_BENCH_TIMEOUT:-480}"

for tool in python3 redis-cli redis-benchmark; do
    command -v "$tool" >/dev/null || { echo "$tool not found in PATH" >&2; exit 2; }
done
if [[ ! -x "$SYNCMESH_REPLICA_BIN" ]]; then
    echo "replica binary not found: $SYNCMESH_REPLICA_BIN (cargo build --release -p syncmesh-replica)" >&2
    exit 2
fi

MESH_BENCH_WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/syncmesh-mesh-bench.XXXXXX")"
MESH_BENCH_PIDFILE="$MESH_BENCH_WORKDIR/pids"
export MESH_BENCH_WORKDIR MESH_BENCH_PIDFILE
: >"$MESH_BENCH_PIDFILE"
PY_PID=""

cleanup() {
    trap - EXIT INT TERM
    # the Python driver stops its processes itself; whatever is left (it was killed) goes here
    if [[ -n "$PY_PID" ]] && kill -0 "$PY_PID" 2>/dev/null; then
        kill -TERM "$PY_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$PY_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$PY_PID" 2>/dev/null
    fi
    local pid left=()
    while read -r pid; do
        [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && left+=("$pid")
    done <"$MESH_BENCH_PIDFILE"
    for pid in "${left[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${left[@]}"; do
        for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    if [[ "${MESH_BENCH_KEEP:-0}" == 1 ]]; then
        echo "logs kept in $MESH_BENCH_WORKDIR" >&2
    else
        rm -rf "$MESH_BENCH_WORKDIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the driver runs in the background so that this shell handles Ctrl-C/TERM at once (a
# foreground child would delay the trap until it exits); `timeout` bounds the run
timeout --kill-after=15 "$TIMEOUT" python3 -u "$BENCH_DIR/mesh_bench.py" &
PY_PID=$!
wait "$PY_PID"
rc=$?
PY_PID=""
if [[ $rc == 124 ]]; then
    echo "mesh.sh: stopped after MESH_BENCH_TIMEOUT=${TIMEOUT}s" >&2
fi
exit "$rc"
