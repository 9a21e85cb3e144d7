#!/usr/bin/env bash
# redis-cli driven checks against syncmesh-replica.
#
#   tests/cli/run.sh
#
# Starts its own replica on free ports (binary: $SYNCMESH_REPLICA_BIN, else target/debug,
# else target/release), runs redis-cli commands and compares their output, and stops the
# replica on exit. SYNCMESH_COMPAT_TARGET=redis runs the same checks against a redis-server
# (to validate the script). Prints "N passed, M failed"; exits non-zero on any failure.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${SYNCMESH_COMPAT_TARGET:-replica}"
workdir="$(mktemp -d "${TMPDIR:-/tmp}/syncmesh-cli.XXXXXX")"
server_pid=""

cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$server_pid" 2>/dev/null
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}

PORT="$(free_port)"
ADMIN_PORT="$(free_port)"
MESH_PORT="$(free_port)"

if [[ "$target" == "redis" ]]; then
    redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$workdir" \
        >"$workdir/server.log" 2>&1 &
    server_pid=$!
else
    bin="${SYNCMESH_REPLICA_BIN:-}"
    if [[ -z "$bin" ]]; then
        if [[ -x "$repo/target/debug/syncmesh-replica" ]]; then bin="$repo/target/debug/syncmesh-replica"
        else bin="$repo/target/release/syncmesh-replica"; fi
    fi
    if [[ ! -x "$bin" ]]; then
        echo "replica binary not found: $bin (build it, or set SYNCMESH_REPLICA_BIN)" >&2
        echo "0 passed, 1 failed"
        exit 2
    fi
    "$bin" --bind 127.0.0.1 --port "$PORT" --admin-port "$ADMIN_PORT" --mesh-port "$MESH_PORT" \
        --mesh-insecure >"$workdir/server.log" 2>&1 &
    server_pid=$!
fi

for _ in $(seq 200); do
    [[ "$(redis-cli -p "$PORT" PING 2>/dev/null)" == "PONG" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.05
done
if [[ "$(redis-cli -p "$PORT" PING 2>/dev/null)" != "PONG" ]]; then
    echo "server ($target) did not answer PING on port $PORT; log:" >&2
    tail -20 "$workdir/server.log" >&2
    echo "0 passed, 1 failed"
    exit 2
fi

PASS=0
FAIL=0
FAILED_NAMES=()

cli() { timeout 20 redis-cli -p "$PORT" "$@"; }

record() { # record NAME OK(0/1) EXPECTED ACTUAL
    if [[ "$2" == 0 ]]; then
        PASS=$((PASS + 1))
    else
        FAIL=$((FAIL + 1))
        FAILED_NAMES+=("$1")
        printf 'FAIL %s\n  expected: %q\n  actual:   %q\n' "$1" "$3" "$4"
    fi
}

# check NAME EXPECTED CMD...   (stdout+stderr of CMD must equal EXPECTED)
check() {
    local name="$1" expected="$2"; shift 2
    local actual; actual="$("$@" 2>&1)"
    [[ "$actual" == "$expected" ]]; record "$name" $? "$expected" "$actual"
}

# check_sorted NAME EXPECTED CMD...   (lines compared after sorting)
check_sorted() {
    local name="$1" expected="$2"; shift 2
    local actual; actual="$("$@" 2>&1 | sort)"
    expected="$(printf '%s\n' "$expected" | sort)"
    [[ "$actual" == "$expected" ]]; record "$name" $? "$expected" "$actual"
}

# check_contains NAME NEEDLE CMD...   (output contains NEEDLE and CMD exits 0)
check_contains() {
    local name="$1" needle="$2"; shift 2
    local actual rc; actual="$("$@" 2>&1)"; rc=$?
    [[ $rc == 0 && "$actual" == *"$needle"* ]]; record "$name" $? "*$needle* (exit 0)" "exit $rc: ${actual:0:300}"
}

cli FLUSHALL >/dev/null

# ---------------------------------------------------------------- connection / server
check "ping"                 "PONG"  cli PING
check "ping message"         "hi"    cli PING hi
check "echo"                 "hello world" cli ECHO "hello world"
check "select db 1 via -n"   "OK"    redis-cli -p "$PORT" -n 1 SET dbkey one
check "db 1 value"           "one"   redis-cli -p "$PORT" -n 1 GET dbkey
check "db 0 isolated"        ""      cli GET dbkey
check "select out of range"  "ERR DB index is out of range" cli SELECT 16
check "dbsize"               "0"     cli DBSIZE
check_contains "info server" "# Server" cli INFO server
check_contains "info keyspace" "db1:keys=1" cli INFO keyspace
check "client setname (inline session)" "$(printf 'OK\ncli-test')" \
    bash -c "printf 'CLIENT SETNAME cli-test\nCLIENT GETNAME\n' | timeout 20 redis-cli -p $PORT"
check "unknown command"      "ERR unknown command 'NOSUCHCMD', with args beginning with: 'x' " cli NOSUCHCMD x
check "wrong arity"          "ERR wrong number of arguments for 'get' command" cli GET
check "quit"                 "OK"    cli QUIT

# ---------------------------------------------------------------- keys
cli MSET k1 a k2 b other c >/dev/null
check_sorted "keys pattern"  "$(printf 'k1\nk2')" cli KEYS 'k*'
check "exists"               "2"     cli EXISTS k1 k2 nokey
check "type string"          "string" cli TYPE k1
check "expire"               "1"     cli EXPIRE k1 100
check "ttl"                  "100"   cli TTL k1
check "persist"              "1"     cli PERSIST k1
check "rename"               "OK"    cli RENAME k1 k1new
check "renamed value"        "a"     cli GET k1new
check "copy"                 "1"     cli COPY k2 k2copy
check "del"                  "3"     cli DEL k1new k2 k2copy

# ---------------------------------------------------------------- strings
check "set ex"               "OK"    cli SET s v EX 100
check "get"                  "v"     cli GET s
check "append"               "5"     cli APPEND s 1234
check "getrange"             "v12"   cli GETRANGE s 0 2
check "incr"                 "1"     cli INCR n
check "incrby"               "11"    cli INCRBY n 10
check "incrbyfloat"          "10.6"  bash -c "timeout 20 redis-cli -p $PORT SET f 10.50 >/dev/null; timeout 20 redis-cli -p $PORT INCRBYFLOAT f 0.1"
check "incr not integer"     "ERR value is not an integer or out of range" cli INCR s
check "mget"                 "$(printf 'v1234\n\n11')" cli MGET s nokey n
check "repeat -r"            "$(printf '12\n13\n14')" cli -r 3 INCR n
check "setbit/bitcount"      "$(printf '0\n1')" bash -c "timeout 20 redis-cli -p $PORT SETBIT b 7 1; timeout 20 redis-cli -p $PORT BITCOUNT b"
check "stdin as last arg -x" "OK"    bash -c "printf 'line1\nline2' | timeout 20 redis-cli -p $PORT -x SET fromstdin"
check "stdin value"          "$(printf 'line1\nline2')" cli GET fromstdin

# ---------------------------------------------------------------- hashes / sets / sorted sets / hll
check "hset"                 "2"     cli HSET h f1 v1 f2 v2
check "hget"                 "v1"    cli HGET h f1
check_sorted "hgetall"       "$(printf 'f1\nv1\nf2\nv2')" cli HGETALL h
check "hincrby"              "5"     cli HINCRBY h cnt 5
check "wrongtype"            "WRONGTYPE Operation against a key holding the wrong kind of value" cli GET h
check "sadd"                 "3"     cli SADD set a b c
check "scard"                "3"     cli SCARD set
check_sorted "smembers"      "$(printf 'a\nb\nc')" cli SMEMBERS set
check "sismember"            "1"     cli SISMEMBER set b
check "zadd"                 "3"     cli ZADD z 1 a 2.5 b 1e30 c
check "zrange withscores"    "$(printf 'a\n1\nb\n2.5\nc\n1e+30')" cli ZRANGE z 0 -1 WITHSCORES
check "zscore"               "2.5"   cli ZSCORE z b
check "zincrby"              "0.30000000000000004" bash -c "timeout 20 redis-cli -p $PORT ZINCRBY zz 0.1 m >/dev/null; timeout 20 redis-cli -p $PORT ZINCRBY zz 0.2 m"
check "zrangebyscore"        "$(printf 'b')" cli ZRANGEBYSCORE z '(1' 3
check "pfadd"                "1"     cli PFADD hll a b c d
check "pfcount"              "4"     cli PFCOUNT hll

# ---------------------------------------------------------------- RESP3 and formatting options
check "resp3 double"         "(double) 2.5" cli -3 --no-raw ZSCORE z b
check "resp3 map"            '1# "f1" => "v1"' bash -c "timeout 20 redis-cli -p $PORT HSET h3 f1 v1 >/dev/null; timeout 20 redis-cli -p $PORT -3 --no-raw HGETALL h3"
check "resp3 null"           "(nil)" cli -3 --no-raw GET nokey
check "no-raw integer"       "(integer) 3" cli --no-raw SCARD set
check "no-raw string"        '"v1"'   cli --no-raw HGET h f1
check "csv"                  '"v1","v2",NULL' cli --csv HMGET h f1 f2 nokey

# ---------------------------------------------------------------- transactions (commands from stdin)
check "multi/exec"           "$(printf 'OK\nQUEUED\nQUEUED\nOK\n2')" \
    bash -c "printf 'MULTI\nSET t 1\nINCR t\nEXEC\n' | timeout 20 redis-cli -p $PORT"
check "execabort"            "$(printf 'OK\nERR wrong number of arguments for '"'"'set'"'"' command\n\nEXECABORT Transaction discarded because of previous errors.')" \
    bash -c "printf 'MULTI\nSET t\nEXEC\n' | timeout 20 redis-cli -p $PORT"

# ---------------------------------------------------------------- COMMAND DOCS, interactive mode, tools
check_contains "command docs get" "summary" cli COMMAND DOCS get
check_contains "command docs (all)" "summary" cli COMMAND DOCS
check_contains "command count"    "" cli COMMAND COUNT
# Interactive mode: redis-cli fetches COMMAND DOCS at start-up to build its hints; TERM=dumb keeps
# linenoise from using escape sequences. The session must work and print every reply.
interactive_out="$(printf 'SET ia 1\nGET ia\nHGET h f1\nZSCORE z b\nquit\n' |
    TERM=dumb timeout 20 script -qec "redis-cli -p $PORT" /dev/null 2>&1 | tr -d '\r')"
[[ "$interactive_out" == *'> OK'* && "$interactive_out" == *'> "1"'* && "$interactive_out" == *'> "v1"'* \
    && "$interactive_out" == *'> "2.5"'* ]]
record "interactive session" $? "OK, \"1\", \"v1\", \"2.5\" at prompts" "$interactive_out"
interactive3="$(printf 'ZSCORE z b\nHGETALL h3\nquit\n' |
    TERM=dumb timeout 20 script -qec "redis-cli -3 -p $PORT" /dev/null 2>&1 | tr -d '\r')"
[[ "$interactive3" == *'(double) 2.5'* && "$interactive3" == *'1# "f1" => "v1"'* ]]
record "interactive RESP3 session" $? "(double) 2.5 and a map" "$interactive3"

check_contains "--bigkeys"   "Biggest string" cli --bigkeys
check_contains "--memkeys"   "Biggest" cli --memkeys

# ---------------------------------------------------------------- --pipe mass insertion
cli FLUSHALL >/dev/null
python3 - "$workdir/mass.resp" <<'PYEOF'
import sys
with open(sys.argv[1], "wb") as f:
    for i in range(10000):
        k, v = b"pipe:%d" % i, b"value-%d" % i
        f.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
PYEOF
pipe_out="$(timeout 60 redis-cli -p "$PORT" --pipe < "$workdir/mass.resp" 2>&1)"
[[ "$pipe_out" == *"errors: 0, replies: 10000"* ]]
record "--pipe 10k SETs" $? "errors: 0, replies: 10000" "$pipe_out"
check "dbsize after --pipe"  "10000" cli DBSIZE
check "value after --pipe"   "value-9999" cli GET pipe:9999
check "--scan --pattern"     "1111" bash -c "timeout 30 redis-cli -p $PORT --scan --pattern 'pipe:1*' | wc -l"
check "--scan all"           "10000" bash -c "timeout 30 redis-cli -p $PORT --scan | sort -u | wc -l"

# ---------------------------------------------------------------- the server survived all of it
check "still alive"          "PONG"  cli PING

echo
if ((FAIL > 0)); then
    echo "failed: ${FAILED_NAMES[*]}"
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the server process is gone; log tail:"; tail -20 "$workdir/server.log"
    fi
fi
echo "$PASS passed, $FAIL failed"
((FAIL == 0))
