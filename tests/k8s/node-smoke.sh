#!/usr/bin/env bash
# Smoke test of the node mode (suite `node` of tests/run-all.sh): brings up a control plane with
# a real node on this machine (tests/k8s/cluster.sh up --node), packs the replica and a busybox
# toolbox into images (tests/k8s/images.sh), runs the checks of tests/kube/tests/node_smoke.rs
# (a native sidecar in running pods, cluster DNS, the mesh between pods, Services, logs and
# exec, and that `down` leaves the host clean) and takes the cluster down if the test did not.
#
#   bash tests/k8s/node-smoke.sh
#
# Needs root. Ends with "N passed, M failed"; exits non-zero if a check failed. Environment:
# NODE_SMOKE_NAME (instance name, default node-smoke-<pid>), SYNCMESH_REPLICA_BIN (default
# $CARGO_TARGET_DIR/debug/syncmesh-replica, built when missing), plus what cluster.sh reads.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=${NODE_SMOKE_NAME:-node-smoke-$$}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${SYNCMESH_CACHE:-$HOME/.cache/syncmesh}/target}
REPLICA_BIN=${SYNCMESH_REPLICA_BIN:-$CARGO_TARGET_DIR/debug/syncmesh-replica}
export REPLICA_IMAGE=syncmesh-replica:node-smoke
export TOOLBOX_IMAGE=syncmesh-toolbox:node-smoke   # busybox (Debian's busybox-static): sh, nslookup, nc
# shellcheck source=tests/k8s/run-rust-test.sh
source "$HERE/run-rust-test.sh"

[[ $(id -u) == 0 ]] || { echo "node-smoke.sh needs root"; exit 1; }
[[ -x /bin/busybox ]] || { echo "node-smoke.sh needs /bin/busybox (apt-get install busybox-static)"; exit 1; }
if [[ ! -x "$REPLICA_BIN" ]]; then
  source "$ROOT/tests/lib/progress.sh"
  PROGRESS_TAG=node-smoke progress "cargo build of syncmesh-replica" \
    cargo build --color never --manifest-path "$ROOT/Cargo.toml" -p syncmesh-replica || exit 1
fi
rust_test_build node_smoke || exit 1

down_on_exit "$NAME"
ENV_OUT=$("$HERE/cluster.sh" --name "$NAME" up --node) || { echo "not ok - cluster.sh up --node"; exit 1; }
eval "$ENV_OUT"
export KUBECONFIG SYNCMESH_K8S_NAME SYNCMESH_K8S_BIN
"$HERE/images.sh" --name "$NAME" binary "$REPLICA_IMAGE" "$REPLICA_BIN" --strip &&
  "$HERE/images.sh" --name "$NAME" binary "$TOOLBOX_IMAGE" /bin/busybox -- sleep 100000 ||
  { echo "not ok - images.sh packs and imports the replica and the toolbox"; exit 1; }
rust_test_run node_smoke
