#!/usr/bin/env bash
# End to end on a real single-node cluster (suite `e2e` of tests/run-all.sh): builds the
# replica, the operator, the demo service and the test, brings up a control plane with a node
# (tests/k8s/cluster.sh up --node), packs the binaries into images (tests/k8s/images.sh; the
# replica also as `<tag>-v2`, the upgrade the test rolls out), runs the checks of
# tests/kube/tests/e2e.rs and takes the cluster down (logs kept when the test failed).
#
#   bash tests/k8s/e2e.sh
#
# Ends with "N passed, M failed" and the measured figures; exits non-zero if a check failed.
# Environment: E2E_NAME (instance name, default e2e), plus everything cluster.sh reads.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=${E2E_NAME:-e2e}
export E2E_TAG=e2e
# shellcheck source=tests/k8s/demo.sh
source "$HERE/demo.sh"
# shellcheck source=tests/k8s/run-rust-test.sh
source "$HERE/run-rust-test.sh"

demo_build || { echo "not ok - cargo build"; exit 1; }
rust_test_build e2e || exit 1

down_on_exit "$NAME"
demo_log "bringing up control plane and node '$NAME' (builds binaries on first use)"
ENV_OUT=$("$HERE/cluster.sh" --name "$NAME" up --node) || { echo "not ok - cluster.sh up --node"; exit 1; }
eval "$ENV_OUT"
export KUBECONFIG SYNCMESH_K8S_NAME SYNCMESH_K8S_BIN
demo_log "packing and importing the images"
demo_images "$NAME" "$E2E_TAG" &&
  "$HERE/images.sh" --name "$NAME" binary "syncmesh/syncmesh-replica:$E2E_TAG-v2" "$DEMO_BIN/syncmesh-replica" --strip ||
  { echo "not ok - the images"; exit 1; }
rust_test_run e2e
