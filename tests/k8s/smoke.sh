#!/usr/bin/env bash
# Smoke test of the local control plane (suite `k8s` of tests/run-all.sh): brings up its own
# instance with tests/k8s/cluster.sh, runs the checks of tests/kube/tests/smoke.rs (kubectl,
# admission, controllers, server-side apply, CRDs, helm, a second instance, a component killed
# during up, down) and takes the instance down if the test did not (logs kept on failure).
#
#   bash tests/k8s/smoke.sh
#
# Ends with "N passed, M failed"; exits non-zero if any check failed. Environment: SMOKE_NAME
# (instance name, default smoke-<pid>), plus everything cluster.sh reads.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=${SMOKE_NAME:-smoke-$$}
# shellcheck source=tests/k8s/run-rust-test.sh
source "$HERE/run-rust-test.sh"

rust_test_build smoke || exit 1
down() {
  local rc=$? keep=() n
  (( rc == 0 )) || keep=(--keep-logs)
  for n in "$NAME-b" "$NAME-c"; do "$HERE/cluster.sh" --name "$n" down >/dev/null 2>&1; done
  "$HERE/cluster.sh" --name "$NAME" down "${keep[@]}" 2>&1 | sed 's/^/    /'
  exit "$rc"
}
trap down EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
t0=$SECONDS
ENV_OUT=$("$HERE/cluster.sh" --name "$NAME" up) || { echo "not ok - cluster.sh up"; exit 1; }
eval "$ENV_OUT"
export KUBECONFIG SYNCMESH_K8S_NAME SYNCMESH_K8S_BIN
echo "[smoke] cluster.sh up took $((SECONDS - t0))s"
rust_test_run smoke
