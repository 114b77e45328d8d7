# Process helpers the node_*.sh integration tests share. Source it after making the test's
# scratch directory $tmp; set POLL (seconds between polls of wait_for, default 0.1) first where
# a test needs another rate. Processes a test starts go into pids: they are killed on exit,
# and $tmp removed (kept, and named, when KEEP is set).
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# Fails the test with the last lines of every party's log.
fail() {
  echo "FAIL: $*"
  local f
  for f in "$tmp"/*.err "$tmp"/*.log; do
    [ -s "$f" ] && { echo "--- $(basename "$f") (last lines)"; tail -8 "$f"; }
  done
  exit 1
}

# A process that exists and is not a zombie.
alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ "$state" != Z* ]]
}
finished() { ! alive "$1"; }

# wait_for <seconds> <description> <command...>: runs the command every POLL seconds until it
# succeeds; fails the test after <seconds>.
wait_for() {
  local secs="$1" what="$2"
  shift 2
  local tries
  tries=$(awk -v s="$secs" -v p="${POLL:-0.1}" 'BEGIN { print int(s / p + 0.5) }')
  local i
  for ((i = 0; i < tries; i++)); do
    "$@" && return 0
    sleep "${POLL:-0.1}"
  done
  fail "timed out after ${secs}s waiting for $what"
}
