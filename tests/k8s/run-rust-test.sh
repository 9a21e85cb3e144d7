# Runs one of the Rust Kubernetes tests (tests/kube/tests/NAME.rs) against a cluster instance
# that the calling script brought up (sourced, not run):
#
#   source "$HERE/run-rust-test.sh"
#   rust_test_build NAME             # compile it first (with progress), before the cluster is up
#   rust_test_run NAME               # run it with the instance's exports; its status
#   down_on_exit INSTANCE            # take the instance down when the script exits
#
# The test prints `ok N - …` lines and ends with "N passed, M failed".

rust_test_build() {
  # shellcheck source=tests/lib/progress.sh
  source "$ROOT/tests/lib/progress.sh"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SYNCMESH_CACHE:-$HOME/.cache/syncmesh}/target}"
  PROGRESS_TAG=$1 progress "cargo build of the $1 test (tests/kube)" \
    cargo test --color never --manifest-path "$ROOT/Cargo.toml" -p syncmesh-k8s-tests --test "$1" --no-run
}

rust_test_run() {
  cargo test --quiet --manifest-path "$ROOT/Cargo.toml" -p syncmesh-k8s-tests --test "$1" -- \
    --ignored --nocapture --test-threads=1 2>&1 | grep -v -e '^running 1 test$' -e '^$'
  return "${PIPESTATUS[0]}"
}

# The instance goes down whatever happens, its logs saved when the script failed; Ctrl-C and
# TERM end the script (and so take it down) with the usual status.
down_on_exit() {
  DOWN_ON_EXIT_NAME=$1
  trap _down_on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

_down_on_exit() {
  local rc=$? keep=()
  (( rc == 0 )) || keep=(--keep-logs)
  "$ROOT/tests/k8s/cluster.sh" --name "$DOWN_ON_EXIT_NAME" down "${keep[@]}" 2>&1 | sed 's/^/    /'
  exit "$rc"
}
