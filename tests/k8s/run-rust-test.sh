# Runs one of the Rust Kubernetes tests (tests/kube/tests/NAME.rs) against a cluster instance
# that the calling script brought up (sourced, not run):
#
#   source "$HERE/run-rust-test.sh"
#   rust_test_build NAME             # compile it first (with progress), before the cluster is up
#   rust_test_run NAME               # run it with the instance's exports; its status
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
