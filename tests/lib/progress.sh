# Progress for long builds (sourced, not run): a step line when a build starts, then either a
# spinner with the elapsed time (stderr is a terminal) or a line every 30 s (a log), and a line
# with the time it took. The build's routine chatter is counted instead of printed: Go's
# `go: downloading MODULE` lines and `go build -v`'s package names, cargo's `Compiling CRATE`
# lines. Everything else (warnings, errors) passes through.
#
#   source tests/lib/progress.sh
#   progress "building kubernetes" go build -v ./...     # returns the command's status
#
# PROGRESS_TAG (default "build") prefixes the lines; PROGRESS_EVERY (default 30) is the period
# of the log lines in seconds.

progress() {
  local label=$1 status
  shift
  _progress_line "$label ..."
  "$@" 2>&1 | _progress_filter "$label"
  status=${PIPESTATUS[0]}
  return "$status"
}

_progress_line() { printf '[%s %s] %s\n' "${PROGRESS_TAG:-build}" "$(date +%H:%M:%S)" "$1" >&2; }

_progress_elapsed() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# Reads the build's output on stdin; keeps the terminal's spinner or the log's lines going.
_progress_filter() {
  local label=$1 start=$SECONDS tty=0 line="" rest="" rc spin='|/-\' i=0 next
  local modules=0 packages=0 crates=0 counts
  [[ -t 2 ]] && tty=1
  next=$((SECONDS + ${PROGRESS_EVERY:-30}))
  _progress_counts() {
    counts=""
    ((modules > 0)) && counts+=", $modules modules/crates downloaded"
    ((packages > 0)) && counts+=", $packages packages compiled"
    ((crates > 0)) && counts+=", $crates crates compiled"
  }
  while :; do
    # A 1 s timeout lets the spinner turn while the build is silent; a line cut by the
    # timeout is kept and completed by the next read.
    if IFS= read -r -t 1 line; then
      line=$rest$line; rest=""
      case "$line" in
        "go: downloading "*) modules=$((modules + 1)); continue ;;
        *"Compiling "*|*"Checking "*) crates=$((crates + 1)); continue ;;
        *"Downloaded "*) modules=$((modules + 1)); continue ;;
        *"Downloading crates"*|*"Updating crates.io index"*|*"Locking "*|*"Executable "*) continue ;;
      esac
      # `go build -v` prints each package's import path alone on a line.
      if [[ "$line" =~ ^[A-Za-z0-9._~/-]+$ && "$line" != *" "* ]]; then packages=$((packages + 1)); continue; fi
      ((tty == 1)) && printf '\r\033[K' >&2
      printf '%s\n' "$line" >&2
    else
      rc=$?
      if ((rc <= 128)); then
        [[ -n "$line" ]] && printf '%s\n' "$line" >&2
        break
      fi
      rest+=$line
    fi
    _progress_counts
    if ((tty == 1)); then
      i=$(((i + 1) % 4))
      printf '\r\033[K%s %s: %s%s' "${spin:i:1}" "$label" "$(_progress_elapsed $((SECONDS - start)))" "$counts" >&2
    elif ((SECONDS >= next)); then
      _progress_line "$label: $(_progress_elapsed $((SECONDS - start))) so far$counts"
      next=$((SECONDS + ${PROGRESS_EVERY:-30}))
    fi
  done
  ((tty == 1)) && printf '\r\033[K' >&2
  _progress_counts
  _progress_line "$label: ended after $(_progress_elapsed $((SECONDS - start)))$counts"
}
