#!/usr/bin/env bash
# Runs every test of the project, installing what the tests need when it is missing.
#
#   tests/run-all.sh            everything (what CI runs)
#   SKIP=k8s,fuzz tests/run-all.sh   skip some suites while iterating
#
# Suites: lint (fmt + clippy), cargo (unit, property and Rust-client tests), compat (redis-py
# against redis-server side by side), cli (redis-cli), faults (fault injection against a mesh in
# network namespaces: FAULT_RUNS random seeds, or FAULT_SEEDS=1,2, of FAULT_SECONDS each; needs
# root), frameworks (BullMQ, Celery, node-redlock, rate-limiter-flexible through a mesh, and how
# many jobs run twice with workers on three replicas), fuzz (bounded cargo-fuzz runs), charts
# (the Helm chart's monitoring: promtool checks and unit tests of the alert rules, dashboard
# queries, metric names against live replicas), k8s (the control-plane smoke test), operator
# (CRD, chart, reconciler and webhook against a real kube-apiserver), node (a control plane with
# a real node: the replica as a native sidecar in running pods, cluster DNS, Services), e2e (the
# product on that node, upgrades included). The Kubernetes suites' checks are Rust tests in
# tests/kube/, run by their scripts in tests/k8s/. The last line is "suites: N passed, M failed".
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source "$repo/tests/lib/deps.sh"
source "$repo/tests/lib/progress.sh"

# Build artefacts live outside the clone so that a second run (and CI) reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SYNCMESH_CACHE:-$HOME/.cache/syncmesh}/target}"
export SYNCMESH_REPLICA_BIN="$CARGO_TARGET_DIR/debug/syncmesh-replica"

# A cold run writes about 25 GB of build output. Incremental-compilation state only speeds up
# edit-compile cycles, so when less than 30 GB is free it goes first, rather than a build
# failing half-way with "No space left on device".
mkdir -p "$CARGO_TARGET_DIR"
free_gb=$(($(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print $4 }') / 1024 / 1024))
if ((free_gb < 30)); then
    echo "only ${free_gb} GB free: removing incremental build state under ${CARGO_TARGET_DIR%/*}"
    rm -rf "${CARGO_TARGET_DIR%/*}"/target*/*/incremental
fi

skip="${SKIP:-}"
passed=0
failed=0
failed_names=()

suite() {
    local name="$1"
    shift
    if [[ ",$skip," == *",$name,"* ]]; then
        echo "=== $name: skipped (SKIP)"
        return
    fi
    echo "=== $name: $*"
    local start=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "=== $name: ok ($((SECONDS - start))s)"
    else
        failed=$((failed + 1))
        failed_names+=("$name")
        echo "=== $name: FAILED ($((SECONDS - start))s)"
    fi
}

install_test_dependencies || { echo "could not install the test dependencies" >&2; exit 2; }

# Cold, the workspace takes minutes to compile: tests/lib/progress.sh says how far it got.
lint() {
    cargo fmt --all -- --check &&
        PROGRESS_TAG=lint progress "cargo clippy" cargo clippy --color never --workspace --all-targets -- -D warnings
}

cargo_tests() {
    PROGRESS_TAG=cargo progress "compiling the workspace's tests" cargo test --color never --workspace --no-run &&
        cargo test --workspace --quiet --no-fail-fast
}

suite lint lint
suite cargo cargo_tests
suite compat tests/compat/run.sh
suite cli tests/cli/run.sh
suite frameworks tests/frameworks/run.sh

faults() {
    local args=(--duration "${FAULT_SECONDS:-25}") seed
    if [[ -n "${FAULT_SEEDS:-}" ]]; then
        for seed in ${FAULT_SEEDS//,/ }; do args+=(--seed "$seed"); done
    else
        args+=(--runs "${FAULT_RUNS:-3}")
    fi
    timeout 900 tests/faults/run.sh "${args[@]}"
}
suite faults faults
suite fuzz tests/fuzz/run.sh "${FUZZ_SECONDS:-30}"
suite charts bash tests/charts/run.sh
suite k8s bash tests/k8s/smoke.sh
suite operator bash tests/k8s/operator.sh
suite node bash tests/k8s/node-smoke.sh
suite e2e bash tests/k8s/e2e.sh

if ((failed > 0)); then
    echo "failed suites: ${failed_names[*]}"
fi
echo "suites: $passed passed, $failed failed"
((failed == 0))
