#!/usr/bin/env bash
# The curious model owner's attacker as a node of its own: the server node copies
# what it receives to it (--attacker), a client node in an audit sends it the true
# tokens (--attacker); on SIGTERM it writes attacks.json, whose scores equal those
# of the same run in one `gtune simulate` process. An attacker node started again on
# its address (the first one gone) is reached again by the server, and scores the
# same run again alike.
set -uo pipefail
gtune="$1" src="$2"
cfg="$src/tests/integration/online-plain.toml"
tmp=$(mktemp -d)
POLL=0.2
source "$(dirname "$0")/lib/nodes.bash"

common=(--config "$cfg" --set data.train_examples=200 --set data.valid_examples=16
  --set training.steps=10 --set attacker.enabled=true --set attacker.attacks=embedding_inversion
  --set attacker.every=5 --set scheduler.control= --quiet --metrics 0)
"$gtune" simulate "${common[@]}" --out "$tmp/ref" >"$tmp/ref.out" 2>"$tmp/ref.err" ||
  fail "the reference simulation failed"

start() {  # start <role> <extra args...>: a node on $listen (default a free port); its port in $port
  local role="$1"
  shift
  rm -f "$tmp/$role.port"
  "$gtune" node --role "$role" --listen "127.0.0.1:${listen:-0}" --port-file "$tmp/$role.port" "${common[@]}" \
    "$@" >"$tmp/$role.out" 2>"$tmp/$role.err" &
  pids+=($!)
  last=$!
  wait_for 300 "the $role node" test -s "$tmp/$role.port"
  port=$(cat "$tmp/$role.port")
}
start attacker --out "$tmp/attacker"
attacker=$last attacker_port=$port
start server --attacker "127.0.0.1:$attacker_port"
server_port=$port
grep -q "copied to the attacker at 127.0.0.1:$attacker_port" "$tmp/server.err" ||
  fail "the server does not say it taps"

# run_and_score <attacker's out dir>: a client run in an audit; SIGTERM to the attacker; its
# attacks.json must equal the reference's scores.
run_and_score() {
  "$gtune" node --role client --connect "127.0.0.1:$server_port" --attacker "127.0.0.1:$attacker_port" \
    "${common[@]}" --out "$tmp/client" >"$tmp/client.out" 2>"$tmp/client.err" ||
    fail "the client failed"
  kill -TERM "$attacker"
  wait_for 60 "the attacker's report" test -s "$1/attacks.json"
  wait "$attacker" || fail "the attacker exited with $?"
  python3 - "$tmp/ref/results.json" "$1/attacks.json" <<'PY' || fail "scores differ (above)"
import json, sys
ref = json.load(open(sys.argv[1]))["attacks"]
got = json.load(open(sys.argv[2]))
assert got["scores"], "no scores"
assert got["scores"] == ref["scores"], f"{got['scores']} != {ref['scores']}"
assert got["best"] == ref["best"]
PY
}
run_and_score "$tmp/attacker"

# The attacker node gone, and another started on its address: the server reaches it again.
wait_for 30 "the server to notice the attacker went" grep -q "attacker relay: lost" "$tmp/server.err"
mv "$tmp/attacker.err" "$tmp/attacker-first.log"
listen=$attacker_port start attacker --out "$tmp/attacker2"
attacker=$last
wait_for 60 "the server to reach the attacker again" grep -q "attacker relay: reached" "$tmp/server.err"
run_and_score "$tmp/attacker2"
echo "node_attacker: ok ($(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['best'])" "$tmp/attacker/attacks.json"); the second attacker node scored alike)"
