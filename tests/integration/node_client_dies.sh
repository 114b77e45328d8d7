#!/usr/bin/env bash
# A client node killed mid-run (kill -9) ends its session on the server, which
# stays up and serves the next client; SIGTERM then shuts the server down cleanly.
set -uo pipefail
gtune="$1" src="$2"
cfg="$src/tests/integration/online-plain.toml"
tmp=$(mktemp -d)
POLL=0.2
source "$(dirname "$0")/lib/nodes.bash"



common=(--config "$cfg" --set data.train_examples=200 --set data.valid_examples=16 --quiet)

# The server, on any free port.
"$gtune" node --role server --listen 127.0.0.1:0 --port-file "$tmp/port" "${common[@]}" \
  >"$tmp/server.out" 2>"$tmp/server.err" &
server=$!
pids+=("$server")
server_ready() {
  alive "$server" || fail "the server exited before listening"
  [ -s "$tmp/port" ]
}
wait_for 120 "the server's port file" server_ready
port=$(cat "$tmp/port")
[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] || fail "port file holds '$port'"
grep -q "listening on 127.0.0.1:$port" "$tmp/server.err" || fail "server did not log its port $port"

# A long client, killed once it is training.
"$gtune" node --role client --connect "127.0.0.1:$port" --set training.steps=200 \
  "${common[@]}" --out "$tmp/run1" >"$tmp/client1.out" 2>"$tmp/client1.err" &
client1=$!
pids+=("$client1")
client1_training() {
  alive "$client1" || fail "the first client exited early"
  grep -q "session" "$tmp/client1.err" && grep -q "after 0 steps" "$tmp/client1.err"
}
# Session opened and the held-out loss before training computed: steps come next.
wait_for 180 "the first client to start training" client1_training
sleep 2
alive "$client1" || fail "the first client finished or died before it was killed"
kill -9 "$client1"
wait "$client1" 2>/dev/null
[ ! -e "$tmp/run1/results.json" ] || fail "the killed client wrote results.json"

session_ended() { grep -q "session 1 .*ended: client down" "$tmp/server.err"; }
wait_for 60 "the server to end the dead client's session" session_ended
alive "$server" || fail "the server died with its client"

# A second client gets the server's full service.
timeout -k 10 300 "$gtune" node --role client --connect "127.0.0.1:$port" --set training.steps=3 \
  --set run.name=second "${common[@]}" --out "$tmp/run2" >"$tmp/client2.out" 2>"$tmp/client2.err"
code=$?
[ "$code" -eq 0 ] || fail "the second client exited $code"
[ -s "$tmp/run2/results.json" ] || fail "the second client wrote no results.json"
[ -s "$tmp/run2/adapters.safetensors" ] || fail "the second client wrote no adapters"
python3 - "$tmp/run2/results.json" <<'EOF' || fail "second client's results.json (above)"
import json, sys
r = json.load(open(sys.argv[1]))
r = r["clients"][0]
assert len(r["steps"]) == 3, f"{len(r['steps'])} step records, want 3"
assert r["totals"]["step_bytes_up"] > 0, "no bytes up"
EOF
second_done() { grep -q "session 2 (second-server) ended: client said goodbye" "$tmp/server.err"; }
wait_for 30 "the server to close the second session" second_done
alive "$server" || fail "the server exited after the second client"

# SIGTERM: a clean shutdown with status 0.
kill -TERM "$server"
server_gone() { ! alive "$server"; }
wait_for 60 "the server to exit on SIGTERM" server_gone
wait "$server"
code=$?
pids=()
[ "$code" -eq 0 ] || fail "the server exited $code on SIGTERM (want 0)"
grep -q "server: shutting down" "$tmp/server.err" || fail "the server did not log 'shutting down'"
! grep -qE "frame #|terminate called|Segmentation|\[error\]" "$tmp/server.err" ||
  fail "the server logged an error: $(grep -E "frame #|terminate called|Segmentation|\[error\]" "$tmp/server.err" | head -3)"
echo "node_client_dies: ok"
