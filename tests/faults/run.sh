#!/usr/bin/env bash
# Fault-injection runs against a mesh of replicas, one network namespace per replica.
#
#   tests/faults/run.sh                       one run, random seed, 25 s of faults
#   tests/faults/run.sh --runs 3              three runs with random seeds (what CI runs)
#   tests/faults/run.sh --seed 1234 -v        replay a seed, printing faults as they happen
#   tests/faults/run.sh --help                every option
#
# Needs root (ip netns, iptables, tc), python3 with redis-py, and the replica binary:
# $SYNCMESH_REPLICA_BIN, else the cargo debug build (built here if missing). Prints a summary per
# seed and "fault runs: N passed, M failed"; a failing seed prints its replay command and keeps
# the replicas' logs. See docs/faults.md.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ $(id -u) -ne 0 ]]; then
    echo "tests/faults needs root: network namespaces, iptables and tc" >&2
    exit 2
fi
for tool in ip iptables tc python3; do
    command -v "$tool" >/dev/null || { echo "tests/faults needs $tool (tests/lib/deps.sh installs it)" >&2; exit 2; }
done
python3 -c 'import redis, pytest' 2>/dev/null || { echo "tests/faults needs redis-py and pytest (tests/compat/requirements.txt)" >&2; exit 2; }

bin="${SYNCMESH_REPLICA_BIN:-}"
if [[ -z "$bin" ]]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SYNCMESH_CACHE:-$HOME/.cache/syncmesh}/target}"
    bin="$CARGO_TARGET_DIR/debug/syncmesh-replica"
fi
liar="${SYNCMESH_LIAR_BIN:-$(dirname "$bin")/examples/lying_member}"
if [[ ! -x "$bin" || ! -x "$liar" ]]; then
    echo "building the replica and the lying member ($bin or $liar is missing)"
    (cd "$repo" && cargo build --quiet -p syncmesh-replica --bin syncmesh-replica --example lying_member) || exit 2
fi
export SYNCMESH_REPLICA_BIN="$bin" SYNCMESH_LIAR_BIN="$liar"

# The checker first, on made-up histories (it must see lost writes, and only those).
python3 -m pytest -q -p no:cacheprovider "$here/test_checks.py" || exit 1

# The kernel pieces the harness relies on, checked once with a clear message.
probe="smfprobe$$"
if ! ip netns add "$probe" 2>/dev/null; then
    echo "cannot create a network namespace (ip netns add): run as root on a kernel with netns" >&2
    exit 2
fi
problem=""
ip -n "$probe" link add br0 type bridge 2>/dev/null || problem="no bridge support in the kernel (CONFIG_BRIDGE)"
ip -n "$probe" link add v0 type veth peer name v1 2>/dev/null || problem="${problem:+$problem; }no veth support (CONFIG_VETH)"
ip netns exec "$probe" iptables -w -A INPUT -m statistic --mode random --probability 0.5 -j DROP 2>/dev/null \
    || problem="${problem:+$problem; }iptables cannot load the statistic match (xt_statistic / nft_compat)"
ip netns del "$probe"
if [[ -n "$problem" ]]; then
    echo "tests/faults: $problem" >&2
    exit 2
fi

# Namespaces carry a per-invocation prefix. The harness tears its runs down itself (also on
# SIGTERM); if it dies harder than that, whatever it left is removed here.
run_id="smf$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
harness=""
cleanup() {
    if [[ -n "$harness" ]] && kill -0 "$harness" 2>/dev/null; then
        kill -TERM "$harness" 2>/dev/null
        wait "$harness" 2>/dev/null
    fi
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$run_id-"); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# In the background so that a signal to this script is handled at once (bash runs traps only
# between foreground commands).
python3 -u "$here/harness.py" --run-id "$run_id" "$@" &
harness=$!
wait "$harness"
rc=$?
harness=""
exit "$rc"
