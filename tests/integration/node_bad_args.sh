#!/usr/bin/env bash
# gtune node with bad arguments: exit status 1 and a one-line error naming the
# problem, never a crash, a backtrace or a hang.
set -uo pipefail
gtune="$1" src="$2"
cfg="$src/tests/integration/online-plain.toml"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

small=(--config "$cfg" --set training.steps=2 --set data.train_examples=50 --set data.valid_examples=8 --quiet)

# expect_error <name> <substring> <node args...>
expect_error() {
  local name="$1" want="$2"
  shift 2
  timeout -k 10 60 "$gtune" node "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  local code=$?
  [ "$code" -ne 124 ] && [ "$code" -ne 137 ] || fail "$name: hung (killed after 60 s)"
  [ "$code" -eq 1 ] || fail "$name: exit status $code (want 1); stderr: $(cat "$tmp/err")"
  grep -qF -- "$want" "$tmp/err" || fail "$name: stderr lacks '$want': $(cat "$tmp/err")"
  grep -q "^gtune: error: " "$tmp/err" || fail "$name: not a gtune error line: $(cat "$tmp/err")"
  ! grep -qE "frame #|terminate called|Segmentation|Aborted" "$tmp/err" || fail "$name: crash or backtrace: $(cat "$tmp/err")"
  [ "$(grep -c . "$tmp/err")" -eq 1 ] || fail "$name: error is not one line: $(cat "$tmp/err")"
  [ ! -s "$tmp/out" ] || fail "$name: wrote to stdout: $(cat "$tmp/out")"
}

# A TCP port on 127.0.0.1 that nobody listens on: bound by the kernel, then released.
free_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
  free_port=1

expect_error "client without --connect" "needs --connect HOST:PORT" --role client "${small[@]}"
expect_error "connect to a closed port" "cannot reach the server at 127.0.0.1:$free_port" \
  --role client --connect "127.0.0.1:$free_port" "${small[@]}" --out "$tmp/run"
[ ! -e "$tmp/run/results.json" ] || fail "connect to a closed port: wrote results.json"
# With --wait the first connection is tried again for that long, saying so, then the same error.
code=0
timeout -k 10 60 "$gtune" node --role client --connect "127.0.0.1:$free_port" --wait 2 "${small[@]}" \
  >/dev/null 2>"$tmp/wait.err" </dev/null || code=$?
[ "$code" -eq 1 ] || fail "--wait 2 to a closed port: exit status $code"
grep -q "the server at 127.0.0.1:$free_port unreachable (.*); waiting up to 2 s for it (--wait)" \
  "$tmp/wait.err" || fail "--wait: no word of the waiting: $(head -2 "$tmp/wait.err")"
tail -1 "$tmp/wait.err" | grep -q "^gtune: error: cannot reach the server at 127.0.0.1:$free_port" ||
  fail "--wait: no clear error at the end: $(tail -1 "$tmp/wait.err")"
expect_error "connect without a port" "--connect: expected HOST:PORT, got '127.0.0.1'" \
  --role client --connect 127.0.0.1 "${small[@]}"
expect_error "listen on port 99999" "--listen: '99999' is not a port number" \
  --role server --listen 127.0.0.1:99999 "${small[@]}"
expect_error "listen on port abc" "--listen: 'abc' is not a port number" \
  --role server --listen 127.0.0.1:abc "${small[@]}"
expect_error "listen on port 0x (trailing junk)" "--listen: '0x' is not a port number" \
  --role server --listen 127.0.0.1:0x "${small[@]}"
expect_error "listen on port -1" "--listen: '-1' is not a port number" \
  --role server --listen=127.0.0.1:-1 "${small[@]}"
expect_error "listen without a port" "--listen: '' is not a port number" \
  --role server --listen 127.0.0.1: "${small[@]}"
expect_error "listen without a colon" "--listen: expected HOST:PORT, got 'localhost'" \
  --role server --listen localhost "${small[@]}"
expect_error "unknown --set key (server)" 'training.stepz: unknown key; did you mean "steps"?' \
  --role server --listen 127.0.0.1:0 "${small[@]}" --set training.stepz=3
expect_error "unknown --set key (client)" 'training.stepz: unknown key; did you mean "steps"?' \
  --role client --connect "127.0.0.1:$free_port" "${small[@]}" --set training.stepz=3
expect_error "bad --set value" "training.batch: 0 is out of range" \
  --role client --connect "127.0.0.1:$free_port" "${small[@]}" --set training.batch=0

# An unknown role is a command-line parse error (CLI11's own status), still short and clean.
timeout -k 10 60 "$gtune" node --role bogus "${small[@]}" >"$tmp/out" 2>"$tmp/err"
code=$?
[ "$code" -ne 0 ] && [ "$code" -ne 124 ] && [ "$code" -lt 128 ] || fail "--role bogus: exit status $code"
grep -q "bogus" "$tmp/err" || fail "--role bogus: error does not name the role: $(cat "$tmp/err")"
echo "node_bad_args: ok"
