#!/usr/bin/env bash
# The operator against a real control plane (suite `operator` of tests/run-all.sh): builds the
# operator and the test, brings up a control plane (tests/k8s/cluster.sh), runs the checks of
# tests/kube/tests/operator.rs (CRD validation, the Helm chart, reconciliation, the webhook
# called over TLS by kube-apiserver, leader election, certificate renewal, replica upgrades,
# metrics, admission latency, cleanup) and takes the control plane down; its logs are kept
# (cluster.sh down --keep-logs) when the test failed.
#
#   bash tests/k8s/operator.sh
#
# Ends with "N passed, M failed" and the measured figures; exits non-zero if a check failed.
# Environment: OPERATOR_TEST_NAME (instance name), SYNCMESH_OPERATOR_BIN (the binary; built
# with cargo when unset), plus everything cluster.sh reads.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=${OPERATOR_TEST_NAME:-operator-$$}
# shellcheck source=tests/k8s/run-rust-test.sh
source "$HERE/run-rust-test.sh"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SYNCMESH_CACHE:-$HOME/.cache/syncmesh}/target}"
if [[ -z "${SYNCMESH_OPERATOR_BIN:-}" ]]; then
  source "$ROOT/tests/lib/progress.sh"
  PROGRESS_TAG=operator progress "cargo build of syncmesh-operator" \
    cargo build --color never --manifest-path "$ROOT/Cargo.toml" -p syncmesh-operator --bin syncmesh-operator || exit 1
  export SYNCMESH_OPERATOR_BIN="$CARGO_TARGET_DIR/debug/syncmesh-operator"
fi
rust_test_build operator || exit 1

down_on_exit "$NAME"
ENV_OUT=$("$HERE/cluster.sh" --name "$NAME" up) || { echo "not ok - cluster.sh up"; exit 1; }
eval "$ENV_OUT"
export KUBECONFIG SYNCMESH_K8S_NAME SYNCMESH_K8S_BIN
rust_test_run operator
