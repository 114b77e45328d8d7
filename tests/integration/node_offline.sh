#!/usr/bin/env bash
# The offline design across processes: a server node, an emulator-builder node and
# a client node. The client's connection is cut (kill -9) in the middle of the
# emulator download; started again, it resumes the download where it stopped, and
# its adapters equal those of the same run in one `gtune simulate` process. Then the
# builder is killed (kill -9) in the middle of another client's download and started
# again on its address: the client reaches it again, resumes, and ends the same.
set -uo pipefail
gtune="$1" src="$2"
cfg="$src/config/examples/offline.toml"
tmp=$(mktemp -d)
POLL=0.05
source "$(dirname "$0")/lib/nodes.bash"

# Small chunks and a slow reader make the download long enough to cut in the middle.
common=(--config "$cfg" --set data.train_examples=120 --set data.valid_examples=16
  --set training.steps=15 --set training.epochs=0 --set emulator.chunk_bytes=1024
  --set scheduler.control= --quiet --metrics 0)

"$gtune" simulate "${common[@]}" --out "$tmp/ref" >"$tmp/ref.out" 2>"$tmp/ref.err" ||
  fail "the reference simulation failed"

start() {  # start <role> <extra args...>: a node listening on $listen (default any free port)
  local role="$1"
  shift
  rm -f "$tmp/$role.port"
  "$gtune" node --role "$role" --listen "127.0.0.1:${listen:-0}" --port-file "$tmp/$role.port" "${common[@]}" \
    "$@" >"$tmp/$role.out" 2>"$tmp/$role.err" &
  pids+=($!)
  wait_for 120 "the $role node" test -s "$tmp/$role.port"
  port=$(cat "$tmp/$role.port")
}
start server --out "$tmp/server"
server_port=$port
start builder --out "$tmp/builder"
builder_port=$port

client() {  # client [name]: its output in $tmp/<name> (default client)
  local name="${1:-client}"
  "$gtune" node --role client --connect "127.0.0.1:$server_port" --builder "127.0.0.1:$builder_port" \
    "${common[@]}" --out "$tmp/$name" >>"$tmp/$name.out" 2>>"$tmp/$name.err" &
  client=$!
  pids+=("$client")
}
partial() { compgen -G "$tmp/${1:-client}/transfers/*/*.part" >/dev/null; }
client
wait_for 120 "the client's partial download" partial
kill -9 "$client"
wait "$client" 2>/dev/null
part=$(compgen -G "$tmp/client/transfers/*/*.part" | head -1)
[ -n "$part" ] || fail "no partial download after the kill"
had=$(stat -c %s "$part")

client
wait_for 300 "the restarted client" finished "$client"
wait "$client" || fail "the restarted client exited with $?"
grep -q "resuming at [1-9][0-9]* bytes" "$tmp/client.err" || fail "the download did not resume"
! compgen -G "$tmp/client/transfers/*/*.part" >/dev/null || fail "a .part file is left"
cmp "$tmp/ref/adapters.safetensors" "$tmp/client/adapters.safetensors" ||
  fail "the nodes' adapters differ from gtune simulate's"
# The model owner keeps what it plugged: the client's adapters, generating the same text.
plugged=$(compgen -G "$tmp/server/plugged-*.safetensors" | head -1)
[ -n "$plugged" ] || fail "the server wrote no plugged adapters: $(ls -R "$tmp/server" 2>&1)"
gen=(generate --config "$cfg" --prompt "A cat is" --max-tokens 8 --json)
"$gtune" "${gen[@]}" --adapters "$tmp/client/adapters.safetensors" >"$tmp/client.gen" 2>/dev/null ||
  fail "generate with the client's adapters"
"$gtune" "${gen[@]}" --adapters "$plugged" >"$tmp/server.gen" 2>"$tmp/gen.err" ||
  fail "generate with the plugged adapters: $(tail -2 "$tmp/gen.err")"
cmp -s "$tmp/client.gen" "$tmp/server.gen" || fail "the plugged adapters generate otherwise"

# The builder killed in the middle of a download and started again on its address (its work
# directory kept): the client reaches it again and the download resumes.
builder_pid=${pids[1]}
client client2
wait_for 120 "the second client's partial download" partial client2
kill -9 "$builder_pid"
wait "$builder_pid" 2>/dev/null
mv "$tmp/builder.err" "$tmp/builder-killed.log"
listen=$builder_port start builder --out "$tmp/builder"
wait_for 300 "the second client" finished "$client"
wait "$client" || fail "the second client exited with $? after its builder was killed"
grep -q "lost the emulator builder" "$tmp/client2.err" || fail "the client did not see the builder go"
grep -q "reached the emulator builder again" "$tmp/client2.err" || fail "no reconnection"
grep -q "resuming at [1-9][0-9]* bytes" "$tmp/client2.err" || fail "the download did not resume"
cmp "$tmp/ref/adapters.safetensors" "$tmp/client2/adapters.safetensors" ||
  fail "after the builder's restart the adapters differ from gtune simulate's"
echo "node_offline: ok (download cut at $had bytes, resumed; builder killed and reached again)"
