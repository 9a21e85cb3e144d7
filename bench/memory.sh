#!/usr/bin/env bash
# Memory per key, idle footprint and start-up time: redis-server vs syncmesh-replica.
#
#   bench/memory.sh
#
# Loads BENCH_KEYS (default 1,000,000) string keys (12-byte keys, 16-byte values) into each
# server with redis-cli --pipe, reads VmRSS from /proc/<pid>/status before and after, and prints
# bytes per key for both and their ratio. Also prints the replica's idle RSS right after start and
# its time to ready (spawn until /readyz answers 200, polled every 0.5 ms).
# Goals: replica bytes/key <= 1.5 x redis, idle RSS < 10 MB, ready < 50 ms.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KEYS="${BENCH_KEYS:-1000000}"

# generate the mass-insertion protocol once: SET key:NNNNNNNN val:NNNNNNNNNNNN
proto="$WORKDIR/load.resp"
python3 - "$proto" "$KEYS" <<'PYEOF'
import sys
path, n = sys.argv[1], int(sys.argv[2])
assert n <= 10**8
with open(path, "wb", buffering=1 << 20) as f:
    chunk = []
    for i in range(n):
        chunk.append(b"*3\r\n$3\r\nSET\r\n$12\r\nkey:%08d\r\n$16\r\nval:%012d\r\n" % (i, i))
        if len(chunk) == 10000:
            f.write(b"".join(chunk))
            chunk.clear()
    f.write(b"".join(chunk))
PYEOF

start_target TARGET
label="$(target_label)"
sleep 0.2
target_idle_kb="$(rss_kb "$TARGET_PID")"
start_redis REDIS
sleep 0.2
redis_idle_kb="$(rss_kb "$REDIS_PID")"

load() { # load NAME PORT PID -> prints "before_kb after_kb dbsize seconds"
    local port="$2" pid="$3"
    local before after t0 t1 out
    before="$(rss_kb "$pid")"
    t0="$(date +%s.%N)"
    out="$(timeout 600 redis-cli -p "$port" --pipe <"$proto" 2>&1)"
    t1="$(date +%s.%N)"
    if [[ "$out" != *"errors: 0, replies: $KEYS"* ]]; then
        echo "$1: mass insertion failed: $(tail -3 <<<"$out")" >&2
    fi
    sleep 1   # let allocators settle
    after="$(rss_kb "$pid")"
    local n; n="$(redis-cli -p "$port" DBSIZE)"
    echo "$before $after $n $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')"
}

read -r r_before r_after r_n r_secs <<<"$(load redis "$REDIS_PORT" "$REDIS_PID")"
read -r t_before t_after t_n t_secs <<<"$(load "$label" "$TARGET_PORT" "$TARGET_PID")"

python3 - "$KEYS" "$label" "$r_before" "$r_after" "$r_n" "$r_secs" "$t_before" "$t_after" "$t_n" "$t_secs" \
    "$target_idle_kb" "$redis_idle_kb" "$TARGET_READY_MS" <<'PYEOF'
import sys
keys, label = int(sys.argv[1]), sys.argv[2]
rb, ra, rn, rs, tb, ta, tn, ts = sys.argv[3:11]
t_idle, r_idle, ready = int(sys.argv[11]), int(sys.argv[12]), float(sys.argv[13])
rb, ra, tb, ta = (int(x) for x in (rb, ra, tb, ta))
def per_key(before, after):
    return (after - before) * 1024 / keys
r_pk, t_pk = per_key(rb, ra), per_key(tb, ta)
print()
print(f"{keys} keys (12-byte keys, 16-byte values), loaded with redis-cli --pipe")
print(f"{'':<14} {'RSS before':>12} {'RSS after':>12} {'DBSIZE':>9} {'load s':>7} {'bytes/key':>10}")
print(f"{'redis-server':<14} {rb / 1024:>9.1f} MB {ra / 1024:>9.1f} MB {rn:>9} {rs:>7} {r_pk:>10.1f}")
print(f"{label:<14} {tb / 1024:>9.1f} MB {ta / 1024:>9.1f} MB {tn:>9} {ts:>7} {t_pk:>10.1f}")
ratio = t_pk / r_pk if r_pk > 0 else float("nan")
print()
print(f"bytes/key ratio {label}/redis: {ratio:.2f}   (goal <= 1.5: {'ok' if ratio <= 1.5 else 'MISSED'})")
print(f"{label} idle RSS after start: {t_idle / 1024:.1f} MB (redis-server: {r_idle / 1024:.1f} MB)"
      f"   (goal < 10 MB: {'ok' if t_idle < 10 * 1024 else 'MISSED'})")
print(f"{label} time to ready: {ready:.1f} ms   (goal < 50 ms: {'ok' if ready < 50 else 'MISSED'})")
for name, n in (("redis-server", rn), (label, tn)):
    if str(n) != str(keys):
        print(f"WARNING: {name} holds {n} keys, expected {keys}")
PYEOF
