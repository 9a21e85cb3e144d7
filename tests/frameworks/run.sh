#!/usr/bin/env bash
# Job queues, locks and rate limiters that run on Redis, run against SyncMesh meshes:
#   - two replicas, producer on one and worker on the other: BullMQ (queue, worker, delayed
#     jobs, retries with backoff, repeatable jobs), node-redlock, rate-limiter-flexible
#     (node_frameworks.mjs) and Celery with the Redis broker and result backend (celery_check.py);
#   - three replicas with a worker on each: how many jobs ran twice (double_runs.py, the figure
#     docs/semantics.md prints).
# Installs the pinned npm and PyPI packages when they are missing. The last line is
# "frameworks: N passed, M failed".
#
#   tests/frameworks/run.sh            SYNCMESH_REPLICA_BIN selects the binary
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${SYNCMESH_REPLICA_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/syncmesh-replica}"
[[ -x "$bin" ]] || (cd "$repo" && cargo build -q -p syncmesh-replica) || exit 2
cd "$here"

# Packages: npm ci from the lock file, pip from requirements.txt (pinned).
if [[ ! -d node_modules/bullmq ]] || ! node -e 'for (const p of ["bullmq","ioredis","redlock","rate-limiter-flexible"]) require.resolve(p)' 2>/dev/null; then
    npm ci --no-audit --no-fund --silent || exit 2
fi
python3 -c 'import celery' 2>/dev/null || python3 -m pip install -q -r requirements.txt || exit 2

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# Ports as the other suites pick them (tests/compat/harness.py): from a per-process start,
# each one checked free and never handed out twice, so that suites running at the same time on
# the machine do not collide.
next_port=$(( 10000 + ($$ * 997) % 22000 ))
take_port() { # VAR: sets VAR to a free port
    while :; do
        next_port=$(( next_port >= 31999 ? 10000 : next_port + 1 ))
        if python3 -c "import socket; socket.socket().bind(('127.0.0.1', $next_port))" 2>/dev/null; then
            printf -v "$1" '%s' "$next_port"
            return
        fi
    done
}

# Starts n replicas of one mesh; their client ports go to the array `ports`.
ports=()
start_mesh() {
    local n="$1" name="$2" i peers="" p
    local client=() mesh=() admin=()
    for ((i = 0; i < n; i++)); do
        take_port p; client+=("$p"); take_port p; mesh+=("$p"); take_port p; admin+=("$p")
        peers+="${peers:+,}127.0.0.1:${mesh[i]}"
    done
    for ((i = 0; i < n; i++)); do
        "$bin" --bind 127.0.0.1 --port "${client[i]}" --mesh-port "${mesh[i]}" \
            --admin-port "${admin[i]}" --mesh-bind 127.0.0.1 --mesh-insecure --peers "$peers" \
            --bootstrap-timeout-ms 500 --log warn >"$work/$name-$i.log" 2>&1 &
        pids+=($!)
    done
    for ((i = 0; i < n; i++)); do
        local t=0
        until curl -sf "http://127.0.0.1:${admin[i]}/readyz" >/dev/null; do
            sleep 0.1; t=$((t + 1))
            ((t < 200)) || { echo "replica $i did not become ready" >&2; cat "$work/$name-$i.log" >&2; return 1; }
        done
    done
    ports=("${client[@]}")
}

passed=0
failed=0
step() {
    local name="$1"; shift
    echo "--- $name"
    if timeout 300 "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "--- $name FAILED"; fi
}

start_mesh 2 two || exit 2
step "node (BullMQ, redlock, rate-limiter-flexible)" node node_frameworks.mjs "${ports[0]}" "${ports[1]}"
step "celery" python3 celery_check.py "${ports[0]}" "${ports[1]}"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
wait 2>/dev/null
pids=()
start_mesh 3 three || exit 2
step "double runs with workers on three replicas" python3 double_runs.py "${ports[@]}"
echo "frameworks: $passed passed, $failed failed"
((failed == 0))
