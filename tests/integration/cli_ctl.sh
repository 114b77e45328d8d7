#!/usr/bin/env bash
# gtune ctl: clear errors when no run listens or arguments are missing, and,
# against a stand-in control API, the reply on stdout or the API's reason on stderr.
set -uo pipefail
gtune="$1"
tmp=$(mktemp -d)
fake=""
trap '[ -n "$fake" ] && kill "$fake" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# run_ctl <args...>: runs gtune ctl with a time limit; sets $code, $tmp/out, $tmp/err.
run_ctl() {
  timeout -k 10 30 "$gtune" ctl "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  code=$?
  [ "$code" -ne 124 ] && [ "$code" -ne 137 ] || fail "ctl $*: hung (killed after 30 s)"
}

# expect_error <name> <substring> <ctl args...>: exit 1, one "gtune: error:" line, nothing on stdout.
expect_error() {
  local name="$1" want="$2"
  shift 2
  run_ctl "$@"
  [ "$code" -eq 1 ] || fail "$name: exit status $code (want 1); stderr: $(cat "$tmp/err")"
  grep -qF -- "$want" "$tmp/err" || fail "$name: stderr lacks '$want': $(cat "$tmp/err")"
  grep -q "^gtune: error: " "$tmp/err" || fail "$name: not a gtune error line: $(cat "$tmp/err")"
  [ "$(grep -c . "$tmp/err")" -eq 1 ] || fail "$name: error is not one line: $(cat "$tmp/err")"
  [ ! -s "$tmp/out" ] || fail "$name: wrote to stdout: $(cat "$tmp/out")"
}

# A TCP port on 127.0.0.1 that nobody listens on: bound by the kernel, then released.
free_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
  free_port=1

expect_error "status, nothing listening" \
  "cannot reach the control API at 127.0.0.1:$free_port: connection refused — is a run with --control active?" \
  status --address "127.0.0.1:$free_port"
expect_error "bad --address" "--address: expected HOST:PORT, got 'nowhere'" status --address nowhere
expect_error "bad port" "--address: '70000' is not a port number" pause --address 127.0.0.1:70000

help=$("$gtune" ctl --help) || fail "ctl --help exited $?"
for action in status switch pause resume; do
  grep -qE "^ +$action " <<<"$help" || fail "ctl --help does not list '$action': $help"
done
grep -q -- "--to" <<<"$("$gtune" ctl switch --help)" || fail "ctl switch --help does not list --to"
grep -q -- "127.0.0.1:9470" <<<"$("$gtune" ctl status --help)" || fail "ctl status --help lacks the default address"

# Usage errors are CLI11's: non-zero, short, naming what is missing.
run_ctl switch --address "127.0.0.1:$free_port"
[ "$code" -ne 0 ] && [ "$code" -lt 128 ] || fail "switch without --to: exit status $code"
grep -q -- "--to" "$tmp/err" || fail "switch without --to: stderr does not name --to: $(cat "$tmp/err")"
run_ctl
[ "$code" -ne 0 ] && [ "$code" -lt 128 ] || fail "ctl without an action: exit status $code"

# A stand-in control API (python3's http.server), for what ctl does with replies.
if command -v python3 >/dev/null; then
  cat >"$tmp/fake.py" <<'PY'
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self.reply(200, {"strategy": "online", "step": 3})
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/switch":
            self.reply(200, {"ok": True, "to": json.loads(body)["to"]})
        else:
            self.reply(409, {"error": "the run is already paused"})
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(server.server_address[1]))
server.serve_forever()
PY
  python3 "$tmp/fake.py" "$tmp/port" &
  fake=$!
  for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
  [ -s "$tmp/port" ] || fail "the stand-in control API did not start"
  address="127.0.0.1:$(cat "$tmp/port")"

  run_ctl status --address "$address"
  [ "$code" -eq 0 ] || fail "status: exit status $code; stderr: $(cat "$tmp/err")"
  python3 -c 'import json, sys; assert json.load(open(sys.argv[1])) == {"strategy": "online", "step": 3}' \
    "$tmp/out" || fail "status: stdout is not the reply: $(cat "$tmp/out")"
  run_ctl switch --to gradfree --address "$address"
  [ "$code" -eq 0 ] || fail "switch: exit status $code; stderr: $(cat "$tmp/err")"
  grep -q '"to": "gradfree"' "$tmp/out" || fail "switch: stdout lacks the target: $(cat "$tmp/out")"
  expect_error "pause refused (409)" "gtune: error: the run is already paused" pause --address "$address"
fi
echo "cli_ctl: ok"
