#!/usr/bin/env bash
# A live server node takes a corpus of malformed messages from a hostile peer over
# the network (another protocol version, garbage, truncated, oversized, wrong
# shapes, other parties' sessions, out of order, a flood of hellos; the oversized message
# hung up on before it is read): each is refused with a reason and counted,
# while a real client node trains on the same server; that client's adapters equal
# those of a run the hostile peer did not disturb.
set -uo pipefail
gtune="$1" src="$2"
bad_peer="$(dirname "$gtune")/../tests/gt_bad_peer"
[ -x "$bad_peer" ] || { echo "FAIL: $bad_peer is not built"; exit 1; }
cfg="$src/tests/integration/online-plain.toml"
tmp=$(mktemp -d)
POLL=0.2
source "$(dirname "$0")/lib/nodes.bash"

# Limits low enough for the peer to cross cheaply, high enough for the real client (its
# evaluation batches: 32 x 64 tokens).
common=(--config "$cfg" --set data.train_examples=200 --set data.valid_examples=16
  --set training.steps=30 --set server.max_batch_tokens=4096 --set server.max_message_mb=2
  --set scheduler.control= --quiet)
"$gtune" node --role server --listen 127.0.0.1:0 --port-file "$tmp/port" "${common[@]}" \
  --metrics 127.0.0.1:0 >"$tmp/server.out" 2>"$tmp/server.err" &
pids+=($!)
wait_for 120 "the server" test -s "$tmp/port"
port=$(cat "$tmp/port")

client() {  # client <name>: trains against the server in the background, pid in $client
  "$gtune" node --role client --connect "127.0.0.1:$port" "${common[@]}" --metrics 0 \
    --set run.name="$1" --out "$tmp/$1" >"$tmp/$1.out" 2>"$tmp/$1.err" &
  client=$!
  pids+=("$client")
}
client ref
wait "$client" || fail "the undisturbed client failed"

client victim
wait_for 120 "the victim's session" grep -q "session .* opened for client 'victim'" "$tmp/server.err"
for round in 1 2 3; do
  "$bad_peer" 127.0.0.1 "$port" "$src/models/pretrained/opt-mini-gcide" >>"$tmp/peer.log" 2>&1 ||
    fail "round $round: a malformed message was not refused with its reason (peer.log)"
done
wait "$client" || fail "the client trained beside the hostile peer failed"
kill -0 "${pids[0]}" 2>/dev/null || fail "the server died"
grep -q "hung up on the peer at .* over the .* (server.max_message_mb)" "$tmp/server.err" ||
  fail "the server does not say it hung up on the oversized message's sender"
cmp "$tmp/ref/adapters.safetensors" "$tmp/victim/adapters.safetensors" ||
  fail "the hostile peer changed the real client's training"
metrics_url=$(sed -n 's/^metrics   \(http:.*\/metrics\)$/\1/p' "$tmp/server.out" | head -1)
if [ -n "$metrics_url" ] && command -v curl >/dev/null; then
  metrics=$(curl -s "$metrics_url")
  for series in 'kind="activations_up",reason="not_owner"' 'reason="peer_sessions"' \
    'kind="connection",reason="too_large"'; do
    grep -q "gtune_refused_total{.*$series" <<<"$metrics" ||
      fail "refusals ($series) are not counted in $metrics_url"
  done
fi
echo "node_bad_peer: ok ($(grep -c '^ok' "$tmp/peer.log") refusals and valid exchanges as expected)"
