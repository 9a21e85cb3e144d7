#!/usr/bin/env bash
# Scripts: redis-server vs syncmesh-replica, side by side, same machine, same run.
#
#   bench/scripts.sh
#
# 1. EVALSHA of a rate-limiter script (INCR, PEXPIRE when the key is new, return the count) on
#    random keys, redis-benchmark -c 50 at -P 1 and -P 16, interleaved runs; goal: ratio >= 0.8.
# 2. Idle RSS of the replica after a script ran (the Lua state loaded); goal: < 10 MB.
# 3. A BullMQ add-and-process loop (bench/bullmq_loop.mjs, packages of tests/frameworks): a
#    two-replica mesh (producer on one replica, worker on the other) against redis-server with
#    one replica attached (producer and worker on the primary); goal: ratio >= 0.7.
#
# Environment: BENCH_N (requests per EVALSHA run, default 200000), BENCH_ROUNDS (default 3),
# BENCH_CLIENTS (default 50), BENCH_JOBS (BullMQ jobs per run, default 3000), plus bench/lib.sh's.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N="${BENCH_N:-200000}"
ROUNDS="${BENCH_ROUNDS:-3}"
CLIENTS="${BENCH_CLIENTS:-50}"
JOBS="${BENCH_JOBS:-3000}"
SCRIPT="local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end return n"

start_redis REDIS
start_target TARGET
label="$(target_label)"
echo "redis-server port $REDIS_PORT; $label port $TARGET_PORT; redis-benchmark -c $CLIENTS -n $N, $(nproc) CPU(s)"

sha=""
for port in "$REDIS_PORT" "$TARGET_PORT"; do
    sha="$(redis-cli -p "$port" SCRIPT LOAD "$SCRIPT")"
done

evalsha_rps() { # PORT P
    redis-cli -p "$1" FLUSHALL >/dev/null
    redis-benchmark -h 127.0.0.1 -p "$1" -q -c "$CLIENTS" -n "$N" -P "$2" -r 100000 --csv \
        EVALSHA "$sha" 1 "rl:__rand_int__" 60000 2>/dev/null | awk -F'","' 'NR == 2 || /EVALSHA/ { gsub(/"/, "", $2); print $2; exit }'
}

echo
printf '%-28s %3s %12s %14s %6s  %s\n' test P "redis ops/s" "$label ops/s" ratio goal
for p in 1 16; do
    r_sum=0; t_sum=0
    for _ in $(seq "$ROUNDS"); do
        r="$(evalsha_rps "$REDIS_PORT" "$p")"; t="$(evalsha_rps "$TARGET_PORT" "$p")"
        r_sum="$(python3 -c "print($r_sum + ${r:-0})")"; t_sum="$(python3 -c "print($t_sum + ${t:-0})")"
    done
    python3 - "$p" "$r_sum" "$t_sum" "$ROUNDS" "$label" <<'PYEOF'
import sys
p, r, t, n, label = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ratio = t / r if r else 0
print(f"{'evalsha rate limiter':<28} {p:>3} {r / n:>12.0f} {t / n:>14.0f} {ratio:>6.2f}  "
      f"{'ok' if ratio >= 0.8 else 'below 0.8'} (>= 0.8)")
PYEOF
done

sleep 2
rss="$(rss_kb "$TARGET_PID")"
echo
echo "idle RSS of the $label with the Lua state loaded: $((rss / 1024)) MB ($rss kB); goal < 10 MB: $([[ $rss -lt 10240 ]] && echo ok || echo over)"

# BullMQ: a two-replica mesh vs redis-server with one replica attached.
fw="$REPO/tests/frameworks"
if [[ ! -d "$fw/node_modules/bullmq" ]]; then
    (cd "$fw" && npm ci --no-audit --no-fund --silent) || { echo "npm ci failed: no BullMQ figure" >&2; exit 0; }
fi
start_redis PRIMARY
replica_port="$(free_port)"
"$REDIS_SERVER" --port "$replica_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORKDIR" \
    --replicaof 127.0.0.1 "$PRIMARY_PORT" --logfile "$WORKDIR/redis-replica.log" &
PIDS+=($!)
wait_ping "$replica_port" "$!" || exit 2
a_port="$(free_port)"; a_mesh="$(free_port)"; a_admin="$(free_port)"
b_port="$(free_port)"; b_mesh="$(free_port)"; b_admin="$(free_port)"
peers="127.0.0.1:$a_mesh,127.0.0.1:$b_mesh"
for side in a b; do
    port_var="${side}_port"; mesh_var="${side}_mesh"; admin_var="${side}_admin"
    "$REPLICA_BIN" --bind 127.0.0.1 --port "${!port_var}" --mesh-port "${!mesh_var}" --admin-port "${!admin_var}" \
        --mesh-bind 127.0.0.1 --mesh-insecure --peers "$peers" --log warn >"$WORKDIR/mesh-$side.log" 2>&1 &
    PIDS+=($!)
done
for admin in "$a_admin" "$b_admin"; do
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null && break; sleep 0.05; done
done
echo
r_sum=0; t_sum=0
for _ in $(seq "$ROUNDS"); do
    r="$(cd "$fw" && node "$REPO/bench/bullmq_loop.mjs" "$JOBS" "$PRIMARY_PORT" "$PRIMARY_PORT")"
    t="$(cd "$fw" && node "$REPO/bench/bullmq_loop.mjs" "$JOBS" "$a_port" "$b_port")"
    echo "  bullmq round: redis-server + replica $r jobs/s; mesh of two $t jobs/s" >&2
    r_sum="$(python3 -c "print($r_sum + ${r:-0})")"; t_sum="$(python3 -c "print($t_sum + ${t:-0})")"
done
python3 - "$r_sum" "$t_sum" "$ROUNDS" "$JOBS" <<'PYEOF'
import sys
r, t, n, jobs = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ratio = t / r if r else 0
print(f"bullmq add+process ({jobs} jobs): redis-server with a replica {r / n:.0f} jobs/s, "
      f"two-replica mesh {t / n:.0f} jobs/s, ratio {ratio:.2f} {'ok' if ratio >= 0.7 else 'below 0.7'} (>= 0.7)")
PYEOF
