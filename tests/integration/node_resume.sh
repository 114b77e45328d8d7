#!/usr/bin/env bash
# Faults with real processes, and nothing lost:
#  1. a client node killed with kill -9 mid-epoch and started again resumes from
#     its checkpoint; its adapters equal an uninterrupted run's, byte for byte,
#     and its log has every step exactly once;
#  2. the server killed with kill -9 mid-run and started again: the client
#     reconnects, begins the interrupted step again and finishes with the same
#     adapters;
#  3. a checkpoint of other settings is refused with the key that differs.
set -uo pipefail
gtune="$1" src="$2"
cfg="$src/tests/integration/online-plain.toml"
tmp=$(mktemp -d)
POLL=0.2
source "$(dirname "$0")/lib/nodes.bash"
# The step a client checkpoint was written after (0 when there is none yet).
checkpoint_step() {
  python3 - "$1" <<'EOF' 2>/dev/null || echo 0
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n))["__metadata__"]
print(json.loads(meta["progress"])["step"])
EOF
}
at_least_step() { [ -f "$2" ] && [ "$(checkpoint_step "$2")" -ge "$1" ]; }

# 40 steps over 200 examples in batches of 8: 25 steps per epoch, so a kill after
# step 10 lands mid-epoch and the resumed run crosses into the second epoch.
common=(--config "$cfg" --set data.train_examples=200 --set data.valid_examples=16
  --set training.steps=40 --set training.eval_every=10 --set run.checkpoint_every=5
  --set scheduler.control= --quiet --metrics 0)

start_server() {  # start_server <name> <port>
  "$gtune" node --role server --listen "127.0.0.1:$2" --port-file "$tmp/$1.port" "${common[@]}" \
    >"$tmp/$1.out" 2>"$tmp/$1.err" &
  server=$!
  pids+=("$server")
  wait_for 120 "server $1 to listen" test -s "$tmp/$1.port"
  port=$(cat "$tmp/$1.port")
}
client() {  # client <name> <extra args...>: in the background, pid in $client
  local name="$1"
  shift
  "$gtune" node --role client --connect "127.0.0.1:$port" "${common[@]}" --set run.name="$name" \
    --out "$tmp/$name" "$@" >>"$tmp/$name.out" 2>>"$tmp/$name.err" &
  client=$!
  pids+=("$client")
}
succeeded() {  # succeeded <pid> <name>
  wait_for 300 "$2 to finish" finished "$1"
  wait "$1" || fail "$2 exited with $?"
}

start_server s1 0

# The uninterrupted reference (with checkpoints too: they must not change the numbers).
client ref --set run.checkpoint_dir="$tmp/ckpt-ref"
succeeded "$client" "the reference client"

# 1. kill -9 mid-epoch, start again with the same command.
client crash --set run.checkpoint_dir="$tmp/ckpt"
wait_for 300 "the client's checkpoint after step 10" at_least_step 10 "$tmp/ckpt/crash.checkpoint.safetensors"
kill -9 "$client"
wait "$client" 2>/dev/null
killed_at=$(checkpoint_step "$tmp/ckpt/crash.checkpoint.safetensors")
[ "$killed_at" -lt 40 ] || fail "the client finished before it was killed"
client crash --set run.checkpoint_dir="$tmp/ckpt"
succeeded "$client" "the restarted client"
grep -q "resuming after step $killed_at" "$tmp/crash.err" || fail "the restarted client did not resume"
cmp "$tmp/ref/adapters.safetensors" "$tmp/crash/adapters.safetensors" ||
  fail "adapters after kill -9 and resume differ from the uninterrupted run's"
python3 - "$tmp/ref/results.json" "$tmp/crash/results.json" <<'EOF' || fail "results differ (above)"
import json, sys
ref, got = (json.load(open(p))["clients"][0] for p in sys.argv[1:])
steps = [s["step"] for s in got["steps"]]
assert steps == list(range(1, 41)), f"steps {steps}"
assert [s["loss"] for s in got["steps"]] == [s["loss"] for s in ref["steps"]], "losses differ"
assert [(e["step"], e["loss"]) for e in got["evals"]] == [(e["step"], e["loss"]) for e in ref["evals"]], \
    f"evaluations differ: {got['evals']} vs {ref['evals']}"
EOF

# 3. The same checkpoint with another learning rate is refused, naming the key.
"$gtune" node --role client --connect "127.0.0.1:$port" "${common[@]}" --set run.name=crash \
  --set run.checkpoint_dir="$tmp/ckpt" --set optimizer.lr=0.5 >/dev/null 2>"$tmp/other.err" &&
  fail "a checkpoint of other settings was taken up"
grep -q "other settings (optimizer.lr" "$tmp/other.err" || fail "no clear error: $(tail -2 "$tmp/other.err")"

# 2. kill -9 the server mid-run and start it again on the same port.
client reconnect --set network.reconnect_seconds=120 --set run.checkpoint_dir="$tmp/ckpt-rec"
wait_for 300 "the client's training" at_least_step 5 "$tmp/ckpt-rec/reconnect.checkpoint.safetensors"
kill -9 "$server"
wait "$server" 2>/dev/null
alive "$client" || fail "the client died with the server"
sleep 1
start_server s2 "$port"
succeeded "$client" "the reconnecting client"
grep -q "reached the server again" "$tmp/reconnect.err" || fail "the client did not reconnect"
cmp "$tmp/ref/adapters.safetensors" "$tmp/reconnect/adapters.safetensors" ||
  fail "adapters after a server restart differ from the uninterrupted run's"
echo "node_resume: ok (killed the client after step $killed_at; server restarted)"
