#!/usr/bin/env bash
# Throughput and latency: redis-server vs syncmesh-replica, side by side, same machine, same run.
#
#   bench/throughput.sh
#
# Runs redis-benchmark -q -c 50 -n N --csv with -P 1 and -P 16 against both servers, interleaved
# (redis, replica, redis, replica, ...) to spread machine noise evenly, and prints one row per
# test and pipeline depth: ops/s of each, the ratio replica/redis, and p50/p99 latency.
#
# Tests: the redis-benchmark built-ins (-t set, get, ...) plus two custom commands:
#   xadd      XADD __bench_stream * f v     (one stream that grows by N entries per run)
#   publish   PUBLISH __bench_channel msg   with BENCH_SUBSCRIBERS `redis-cli subscribe`
#             processes attached to each server for the duration of the test (they are
#             started before it and killed after it); the row is labelled "publish (5 subs)".
#
# Environment: BENCH_N (requests per run, default 100000), BENCH_ROUNDS (runs per server and
# cell, averaged, default 2), BENCH_CLIENTS (default 50), BENCH_TESTS (default
# set,get,incr,sadd,hset,zadd,lpush,rpop,lrange_100,xadd,publish), BENCH_PIPELINES (default
# "1 16"), BENCH_SUBSCRIBERS (subscribers per server in the publish test, default 5),
# BENCH_TIMEOUT (seconds per run, default 300), plus those of bench/lib.sh.
# Goals: ratio >= 1.0 at -P 1 and >= 0.8 at -P 16.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N="${BENCH_N:-100000}"
ROUNDS="${BENCH_ROUNDS:-2}"
CLIENTS="${BENCH_CLIENTS:-50}"
TESTS="${BENCH_TESTS:-set,get,incr,sadd,hset,zadd,lpush,rpop,lrange_100,xadd,publish}"
SUBSCRIBERS="${BENCH_SUBSCRIBERS:-5}"
PIPELINES="${BENCH_PIPELINES:-1 16}"
RUN_TIMEOUT="${BENCH_TIMEOUT:-300}"

command -v redis-benchmark >/dev/null || { echo "redis-benchmark not found" >&2; exit 2; }

start_redis REDIS
start_target TARGET
label="$(target_label)"
echo "redis-server pid $REDIS_PID port $REDIS_PORT; $label pid $TARGET_PID port $TARGET_PORT" \
     "(ready in ${TARGET_READY_MS} ms)"
echo "redis-benchmark -q -c $CLIENTS -n $N, $ROUNDS round(s) per cell, $(nproc) CPU(s)"

# Does the server implement the commands a test needs? (lists may not exist yet on the replica)
supports() { # supports PORT TEST
    local port="$1" test="$2" probe
    case "$test" in
        lpush|lrange*) probe=(LPUSH __bench_probe x) ;;
        rpop) probe=(RPOP __bench_probe) ;;
        xadd) probe=(XADD __bench_probe '*' f v) ;;
        *) return 0 ;;
    esac
    local out; out="$(timeout 10 redis-cli -p "$port" "${probe[@]}" 2>&1)" || return 1
    redis-cli -p "$port" DEL __bench_probe >/dev/null 2>&1
    [[ "$out" != *ERR* && "$out" != *WRONGTYPE* ]]
}

# bench_cmd TEST: sets CMD to what follows redis-benchmark's common options, and CSV_NAME to
# the name redis-benchmark gives the test in its CSV output.
bench_cmd() {
    case "$1" in
        xadd) CMD=(XADD __bench_stream '*' f v) ;;
        publish) CMD=(PUBLISH __bench_channel msg) ;;
        *) CMD=(-t "$1") ;;
    esac
    if [[ "${CMD[0]}" == -t ]]; then
        CSV_NAME="$(tr '[:lower:]' '[:upper:]' <<<"$1")"
    else
        CSV_NAME="${CMD[*]}"
    fi
}

# The row label of a test.
test_label() {
    case "$1" in
        publish) echo "publish ($SUBSCRIBERS subs)" ;;
        *) echo "$1" ;;
    esac
}

# Subscribers for the publish test: SUBSCRIBERS `redis-cli subscribe` processes per port.
SUB_PIDS=()
start_subscribers() { # start_subscribers PORT...
    local port pid n
    for port in "$@"; do
        for _ in $(seq "$SUBSCRIBERS"); do
            redis-cli -p "$port" subscribe __bench_channel >/dev/null 2>&1 </dev/null &
            pid=$!
            SUB_PIDS+=("$pid")
            PIDS+=("$pid")
        done
    done
    for port in "$@"; do
        for _ in $(seq 200); do
            n="$(redis-cli -p "$port" PUBSUB NUMSUB __bench_channel 2>/dev/null | sed -n 2p)"
            [[ "$n" == "$SUBSCRIBERS" ]] && break
            sleep 0.025
        done
        if [[ "$n" != "$SUBSCRIBERS" ]]; then
            echo "only ${n:-0} of $SUBSCRIBERS subscribers attached on port $port" >&2
        fi
    done
}
stop_subscribers() {
    local pid keep=() p
    for pid in "${SUB_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${SUB_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        [[ " ${SUB_PIDS[*]} " == *" $p "* ]] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
    SUB_PIDS=()
}

# run_one PORT TEST P -> prints "rps p50 p99" or "n/a" / "error"
run_one() {
    local port="$1" test="$2" p="$3"
    redis-cli -p "$port" FLUSHALL >/dev/null 2>&1
    bench_cmd "$test"
    local out err
    out="$(timeout "$RUN_TIMEOUT" redis-benchmark -h 127.0.0.1 -p "$port" -q -c "$CLIENTS" -n "$N" -P "$p" \
           --csv "${CMD[@]}" 2>"$WORKDIR/bench.err")"
    local rc=$?
    err="$(cat "$WORKDIR/bench.err")"
    if [[ $rc != 0 || "$err" == *"Error from server"* || "$out" == *"Error from server"* ]]; then
        echo "error"; return
    fi
    # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",...
    awk -F'","' -v want="$CSV_NAME" '
        { gsub(/^"|"$/, "", $0) }
        $1 == want || index($1, want " ") == 1 { print $2, $5, $7; found = 1; exit }
        END { if (!found) print "error" }' <<<"$out"
}

results="$WORKDIR/results.tsv"
: >"$results"
IFS=',' read -r -a test_list <<<"$TESTS"
for test in "${test_list[@]}"; do
    name="$(test_label "$test")"
    redis_ok=1; target_ok=1
    supports "$REDIS_PORT" "$test" || redis_ok=0
    supports "$TARGET_PORT" "$test" || target_ok=0
    [[ "$test" == publish ]] && start_subscribers "$REDIS_PORT" "$TARGET_PORT"
    for p in $PIPELINES; do
        for round in $(seq "$ROUNDS"); do
            if ((redis_ok)); then r="$(run_one "$REDIS_PORT" "$test" "$p")"; else r="n/a"; fi
            if ((target_ok)); then t="$(run_one "$TARGET_PORT" "$test" "$p")"; else t="n/a"; fi
            printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$p" "$round" "$r" "$t" >>"$results"
            printf '  %-16s -P %-3s round %s: redis %-28s %s %s\n' "$name" "$p" "$round" "$r" "$label" "$t" >&2
        done
    done
    [[ "$test" == publish ]] && stop_subscribers
done

python3 - "$results" "$label" <<'PYEOF'
import sys
from collections import defaultdict
path, label = sys.argv[1], sys.argv[2]
cells = defaultdict(lambda: {"redis": [], "target": [], "redis_bad": None, "target_bad": None})
order = []
for line in open(path):
    test, p, _round, r, t = line.rstrip("\n").split("\t")
    key = (test, int(p))
    if key not in cells:
        order.append(key)
    c = cells[key]
    for side, val in (("redis", r), ("target", t)):
        parts = val.split()
        if len(parts) == 3:
            c[side].append(tuple(float(x) for x in parts))
        else:
            c[side + "_bad"] = val

def avg(rows, i):
    return sum(r[i] for r in rows) / len(rows)

goal = {1: 1.0, 16: 0.8}
hdr = f"{'test':<16} {'P':>3} {'redis ops/s':>12} {label + ' ops/s':>14} {'ratio':>6}  " \
      f"{'p50 redis':>9} {'p50 ' + label:>12} {'p99 redis':>9} {'p99 ' + label:>12}  goal"
print()
print(hdr)
print("-" * len(hdr))
for key in order:
    test, p = key
    c = cells[key]
    def fmt(side):
        rows = c[side]
        if not rows:
            bad = c[side + "_bad"] or "n/a"
            return bad, bad, bad, None
        return f"{avg(rows, 0):.0f}", f"{avg(rows, 1):.3f}", f"{avg(rows, 2):.3f}", avg(rows, 0)
    r_ops, r50, r99, rv = fmt("redis")
    t_ops, t50, t99, tv = fmt("target")
    ratio = f"{tv / rv:.2f}" if rv and tv else "n/a"
    verdict = ""
    if rv and tv and p in goal:
        verdict = "ok" if tv / rv >= goal[p] else f"below {goal[p]}"
    print(f"{test:<16} {p:>3} {r_ops:>12} {t_ops:>14} {ratio:>6}  {r50:>9} {t50:>12} {r99:>9} {t99:>12}  {verdict}")
print()
print("ratio = replica ops/s / redis ops/s; latencies in ms (redis-benchmark p50/p99); "
      "goals: ratio >= 1.0 at -P 1, >= 0.8 at -P 16")
PYEOF
