# Helpers shared by the control-plane test scripts (sourced, not run): TAP-like counted checks.
#
#   TEST_TAG=smoke; source "$HERE/testlib.sh"
#   check "the thing works" some_command args...     # one counted check, output shown on failure
#   check "it happens" eventually 30 some_command    # retried for up to 30 s
#   summary                                          # "N passed, M failed"

PASSED=0
FAILED=0

say() { printf '[%s %s] %s\n' "${TEST_TAG:-test}" "$(date +%H:%M:%S)" "$*"; }
pass() { PASSED=$((PASSED + 1)); printf 'ok %d - %s\n' "$((PASSED + FAILED))" "$1"; }
fail() {
  FAILED=$((FAILED + 1)); printf 'not ok %d - %s\n' "$((PASSED + FAILED))" "$1"
  [[ -n "${2:-}" ]] && printf '%s\n' "$2" | tail -n 30 | sed 's/^/    | /'
  return 0
}
# check DESCRIPTION COMMAND...: one counted check; output shown only on failure.
check() {
  local desc=$1 out; shift
  if out=$("$@" 2>&1); then pass "$desc"; else fail "$desc" "$out"; return 1; fi
}
# eventually SECONDS COMMAND...: retry until it succeeds (last output kept for the failure report).
eventually() {
  local limit=$1 deadline; shift
  deadline=$((SECONDS + limit))
  until "$@"; do
    (( SECONDS < deadline )) || return 1
    sleep 1
  done
}
summary() { echo "$PASSED passed, $FAILED failed"; }

# finish RC: the end of a test script's EXIT handler: an unexpected exit counts as a failed
# check, then the time, the summary, and the exit status (1 if any check failed).
finish() {
  local rc=$1
  if (( rc != 0 && FAILED == 0 )); then fail "$TEST_TAG test aborted (exit $rc)"; fi
  say "finished in $((SECONDS - ${STARTED_AT:-0}))s"
  summary
  if (( FAILED > 0 )); then exit 1; fi
  exit "$rc"
}

# on_exit FUNCTION: run FUNCTION when the script ends, also on Ctrl-C and SIGTERM.
on_exit() {
  trap "$1" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
