# Shared helpers of the benchmark scripts (sourced, not run).
#
# Environment understood by every script:
#   SYNCMESH_REPLICA_BIN    replica binary (default: <repo>/target/release/syncmesh-replica)
#   SYNCMESH_BENCH_TARGET   "replica" (default) or "redis": a second redis-server stands in for
#                           the replica (to try the scripts before the replica exists)
#   REDIS_SERVER            redis-server binary (default: from PATH)
#   SYNCMESH_BENCH_STANDALONE  1: start the replica without --mesh-insecure, i.e. with no mesh at
#                           all (every write stable at once, no replication log); default 0: the
#                           replica runs in mesh mode without peers, as a sidecar does

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$BENCH_DIR/.." && pwd)"
BENCH_TARGET="${SYNCMESH_BENCH_TARGET:-replica}"
REDIS_SERVER="${REDIS_SERVER:-redis-server}"
REPLICA_BIN="${SYNCMESH_REPLICA_BIN:-$REPO/target/release/syncmesh-replica}"
WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/syncmesh-bench.XXXXXX")"
PIDS=()

bench_cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    rm -rf "$WORKDIR"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}

# wait_ping PORT PID: until PING answers PONG (10 s at most)
wait_ping() {
    local port="$1" pid="$2"
    for _ in $(seq 400); do
        [[ "$(redis-cli -p "$port" PING 2>/dev/null)" == "PONG" ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.025
    done
    echo "server on port $port (pid $pid) is not answering PING" >&2
    return 1
}

# start_redis NAME -> sets ${NAME}_PORT ${NAME}_PID
start_redis() {
    local name="$1" port; port="$(free_port)"
    "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORKDIR" \
        --logfile "$WORKDIR/$name.log" &
    local pid=$!
    PIDS+=("$pid")
    wait_ping "$port" "$pid" || { tail -20 "$WORKDIR/$name.log" >&2; exit 2; }
    printf -v "${name}_PORT" '%s' "$port"
    printf -v "${name}_PID" '%s' "$pid"
}

# start_target NAME -> the replica (or a redis-server stand-in); sets ${NAME}_PORT ${NAME}_PID
# ${NAME}_ADMIN and ${NAME}_READY_MS (spawn until /readyz answers 200, or PING for the stand-in)
start_target() {
    local name="$1"
    local port admin mesh; port="$(free_port)"; admin="$(free_port)"; mesh="$(free_port)"
    local cmd
    if [[ "$BENCH_TARGET" == "redis" ]]; then
        cmd=("$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORKDIR")
        admin=""
    else
        if [[ ! -x "$REPLICA_BIN" ]]; then
            echo "replica binary not found: $REPLICA_BIN (cargo build --release -p syncmesh-replica)" >&2
            exit 2
        fi
        cmd=("$REPLICA_BIN" --bind 127.0.0.1 --port "$port" --admin-port "$admin" --mesh-port "$mesh")
        [[ "${SYNCMESH_BENCH_STANDALONE:-0}" == 1 ]] || cmd+=(--mesh-insecure)
    fi
    # spawn from python so the readiness clock starts at the fork, and poll every 0.5 ms
    local out
    out="$(python3 - "$WORKDIR/$name.log" "$port" "$admin" "${cmd[@]}" <<'PYEOF'
import socket, subprocess, sys, time
log, port, admin, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
t0 = time.perf_counter()
p = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                     start_new_session=True)
def ready():
    try:
        if admin:
            with socket.create_connection(("127.0.0.1", int(admin)), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while not data.endswith(b"\n") and b"\r\n" not in data:
                    chunk = s.recv(256)
                    if not chunk:
                        break
                    data += chunk
                return data.split(b" ")[1:2] == [b"200"]
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False
while True:
    if ready():
        break
    if p.poll() is not None:
        print(f"FAIL {p.pid} exited with {p.returncode}")
        sys.exit(0)
    if time.perf_counter() - t0 > 30:
        print(f"FAIL {p.pid} not ready after 30 s")
        sys.exit(0)
    time.sleep(0.0005)
print(f"OK {p.pid} {(time.perf_counter() - t0) * 1000:.1f}")
PYEOF
)"
    local status pid ready_ms
    read -r status pid ready_ms <<<"$out"
    [[ "$pid" =~ ^[0-9]+$ ]] && PIDS+=("$pid")
    if [[ "$status" != OK ]]; then
        echo "target failed to start: $out" >&2; tail -20 "$WORKDIR/$name.log" >&2; exit 2
    fi
    printf -v "${name}_PORT" '%s' "$port"
    printf -v "${name}_PID" '%s' "$pid"
    printf -v "${name}_ADMIN" '%s' "$admin"
    printf -v "${name}_READY_MS" '%s' "$ready_ms"
}

# rss_kb PID: resident set size in kB (VmRSS)
rss_kb() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

target_label() {
    if [[ "$BENCH_TARGET" == "redis" ]]; then
        echo "stand-in"
    elif [[ "${SYNCMESH_BENCH_STANDALONE:-0}" == 1 ]]; then
        echo "solo"
    else
        echo "replica"
    fi
}
