#!/usr/bin/env bash
# Bounded cargo-fuzz runs of every fuzz target (`cargo fuzz list`: the RESP parser, the command
# layer, the mesh decoder and handshake, the data directory's log and snapshot readers, recovery
# of a whole data directory), SECONDS each; the two data-directory targets (storage, data_dir)
# share SECONDS between them, so the suite's time stays what it was.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET]     default 30
#
# cargo-fuzz needs a nightly compiler; without a nightly toolchain the stable one is used with
# RUSTC_BOOTSTRAP=1. Crashes are kept under sidecar/fuzz/artifacts/ for replay.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${1:-30}"
cd "$repo/sidecar"

if ! command -v cargo-fuzz >/dev/null; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi
# The fuzz build keeps its own target directory next to the workspace's cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${SYNCMESH_CACHE:-$HOME/.cache/syncmesh}/target}-fuzz"

# Known false leak reports (see the file).
export LSAN_OPTIONS="suppressions=$repo/sidecar/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

status=0
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for target in $(cargo "${toolchain[@]}" fuzz list); do
    mkdir -p "fuzz/corpus/$target"
    budget="$seconds"
    case "$target" in storage | data_dir) budget=$(((seconds + 1) / 2)) ;; esac
    echo "--- fuzz $target for ${budget}s"
    dict=()
    [[ -f "fuzz/$target.dict" ]] && dict=(-dict="$repo/sidecar/fuzz/$target.dict")
    if cargo "${toolchain[@]}" fuzz run "$target" -- -max_total_time="$budget" -rss_limit_mb=4096 "${dict[@]}" >"$log" 2>&1; then
        grep -E "^Done" "$log" || true
    else
        grep -vE "^\s+[0-9]+: |^\s+at |address range table" "$log" | tail -40
        echo "fuzz target $target failed (input kept under sidecar/fuzz/artifacts/$target)"
        status=1
    fi
done
exit $status
