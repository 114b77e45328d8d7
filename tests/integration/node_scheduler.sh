#!/usr/bin/env bash
# The scheduler as a node of its own: a server node, a scheduler node and two client nodes
# (scheduler.clients = 2, FedAvg after each phase) on loopback.
#  1. the run equals `gtune simulate` of the same plan: each client's adapters byte for byte,
#     its losses and evaluations; results.json has both clients; a second client under a name
#     already taken is refused with the reason; `gtune ctl status` reaches the scheduler node;
#  2. a client killed with kill -9 mid-run (after FedAvg) and started again joins again,
#     resumes from its checkpoint, and the run still equals the uninterrupted one;
#  3. without checkpoints a lost client fails the run, naming it; the clients left stop with
#     a clear error, as they do when the scheduler node itself is killed;
#  4. with checkpoints the scheduler node killed with kill -9 mid-run (after FedAvg) and
#     started again on its address goes on from its checkpoint, the clients join it again,
#     and the run still equals the uninterrupted one;
#  5. a client node frozen (SIGSTOP: its connection stays open, it answers nothing) is
#     replaced at once by a client started again under its name, and the run still equals
#     the uninterrupted one.
set -euo pipefail
gtune="$1" src="$2"
cfg="$src/config/examples/plan.toml"
tmp=$(mktemp -d)
source "$(dirname "$0")/lib/nodes.bash"
# reap <pid>: the exit status of a finished background process, in $code.
reap() {
  code=0
  wait "$1" || code=$?
}
logged() { grep -q -- "$2" "$tmp/$1.err" 2>/dev/null; }
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

# Two phases of 10 steps (split, then online), batches of 4 over 80 examples: 40 per client.
common=(--config "$cfg" --set phase.0.strategy=split --set phase.0.steps=10 --set phase.1.steps=10
  --set data.train_examples=80 --set data.valid_examples=8 --set training.batch=4
  --set run.checkpoint_every=2 --set network.reconnect_seconds=60 --quiet --metrics 0)
names=(plan-example-0 plan-example-1)

"$gtune" simulate "${common[@]}" --set scheduler.control= --out "$tmp/ref" >"$tmp/ref.out" \
  2>"$tmp/ref.err" || fail "the reference simulation failed"

"$gtune" node --role server --listen 127.0.0.1:0 --port-file "$tmp/server.port" "${common[@]}" \
  >"$tmp/server.out" 2>"$tmp/server.err" &
pids+=($!)
wait_for 60 "the server node" test -s "$tmp/server.port"
server_port=$(cat "$tmp/server.port")

scheduler() {  # scheduler <run> <extra args...>: pid in $scheduler, port in $scheduler_port
  local run="$1"
  shift
  rm -f "$tmp/$run.port"
  "$gtune" node --role scheduler --listen "127.0.0.1:${listen_port:-0}" --port-file "$tmp/$run.port" \
    "${common[@]}" --out "$tmp/$run" "$@" >"$tmp/$run.out" 2>"$tmp/$run.err" &
  scheduler=$!
  pids+=("$scheduler")
  wait_for 60 "the scheduler node of $run" test -s "$tmp/$run.port"
  scheduler_port=$(cat "$tmp/$run.port")
}
client() {  # client <run> <shard> <extra args...>: in the background, pid in $client
  local run="$1" shard="$2"
  shift 2
  "$gtune" node --role client --connect "127.0.0.1:$server_port" \
    --scheduler "127.0.0.1:$scheduler_port" --shard "$shard" "${common[@]}" \
    --out "$tmp/$run-$shard" "$@" >>"$tmp/$run-$shard.out" 2>>"$tmp/$run-$shard.err" &
  client=$!
  pids+=("$client")
}
# same_as_reference <run>: both clients' adapters, losses and evaluations equal simulate's.
same_as_reference() {
  local run="$1" k
  for k in 0 1; do
    cmp -s "$tmp/ref/adapters-${names[$k]}.safetensors" "$tmp/$run-$k/adapters.safetensors" ||
      fail "$run: client $k's adapters differ from gtune simulate's"
  done
  python3 - "$tmp/ref/results.json" "$tmp/$run/results.json" <<'EOF' || fail "$run: results differ (above)"
import json, sys
ref, got = (json.load(open(p)) for p in sys.argv[1:])
assert [c["client"] for c in got["clients"]] == ["plan-example-0", "plan-example-1"], \
    [c["client"] for c in got["clients"]]
for r, g in zip(ref["clients"], got["clients"]):
    steps = [s["step"] for s in g["steps"]]
    assert steps == list(range(1, 21)), f"{g['client']}: steps {steps}"
    assert [s["loss"] for s in g["steps"]] == [s["loss"] for s in r["steps"]], "losses differ"
    assert [(e["step"], e["loss"]) for e in g["evals"]] == [(e["step"], e["loss"]) for e in r["evals"]], \
        f"evaluations differ: {g['evals']} vs {r['evals']}"
assert got["totals"]["steps"] == ref["totals"]["steps"] == 40, got["totals"]["steps"]
for key in ("step_bytes_up", "step_bytes_down"):
    assert got["totals"][key] == ref["totals"][key], f"{key}: {got['totals'][key]} vs {ref['totals'][key]}"
EOF
}

# A shard beyond scheduler.clients, or without a scheduler, is a usage error.
code=0
"$gtune" node --role client --connect 127.0.0.1:1 --scheduler 127.0.0.1:1 --shard 2 "${common[@]}" \
  >/dev/null 2>"$tmp/shard.err" || code=$?
[ "$code" -eq 1 ] && grep -q "^gtune: error: --shard 2: the run has 2 shard(s)" "$tmp/shard.err" ||
  fail "--shard 2 of 2: exit status $code, $(tail -1 "$tmp/shard.err")"

# 1. An uninterrupted run; a duplicate name and the control API while it waits.
scheduler run1 --set scheduler.control=127.0.0.1:0 --set run.checkpoint_dir="$tmp/ckpt1"
logged run1 "waiting for clients 0/2" || fail "the scheduler node does not say it waits"
client run1 0 --set run.checkpoint_dir="$tmp/ckpt1"
c0=$client
wait_for 60 "client 0 to join" logged run1 "client ${names[0]} joined (1/2)"
wait_for 10 "the control API's address" grep -q "^control " "$tmp/run1.out"
control=$(sed -n 's|^control *http://\([^/ ]*\).*|\1|p' "$tmp/run1.out")
out=$("$gtune" ctl status --address "$control") || fail "ctl status on the scheduler node failed"
grep -q '"waiting"' <<<"$out" || fail "ctl status while waiting: $out"
grep -q "${names[0]}" <<<"$out" || fail "ctl status lacks the joined client: $out"
code=0
"$gtune" node --role client --connect "127.0.0.1:$server_port" --scheduler "127.0.0.1:$scheduler_port" \
  --shard 0 "${common[@]}" >/dev/null 2>"$tmp/dup.err" || code=$?
[ "$code" -eq 1 ] || fail "a second client 0 was not refused (exit status $code)"
grep -q "refused client ${names[0]}: a client named ${names[0]} has already joined" "$tmp/dup.err" ||
  fail "no clear refusal: $(tail -2 "$tmp/dup.err")"
client run1 1 --set run.checkpoint_dir="$tmp/ckpt1"
c1=$client
wait_for 120 "the run to finish" finished "$scheduler"
reap "$scheduler"
[ "$code" -eq 0 ] || fail "the scheduler node failed"
for p in "$c0" "$c1"; do
  wait_for 30 "the client nodes to exit" finished "$p"
  reap "$p"
  [ "$code" -eq 0 ] || fail "a client node failed"
done
logged run1 "all 2 client(s) joined" || fail "the scheduler did not log the clients joined"
logged run1 "phase 2 of 2: online" || fail "the scheduler did not log the second phase"
logged run1 "plan done" || fail "the scheduler did not log the end"
same_as_reference run1

# 2. kill -9 client 1 in the second phase (after FedAvg), start it again with the same command.
scheduler run2 --set scheduler.control= --set run.checkpoint_dir="$tmp/ckpt2"
client run2 0 --set run.checkpoint_dir="$tmp/ckpt2"
c0=$client
client run2 1 --set run.checkpoint_dir="$tmp/ckpt2"
ckpt="$tmp/ckpt2/${names[1]}.checkpoint.safetensors"
wait_for 120 "client 1's checkpoint after step 12" at_least_step 12 "$ckpt"
kill -9 "$client"
wait "$client" 2>/dev/null || true
killed_at=$(checkpoint_step "$ckpt")
[ "$killed_at" -lt 20 ] || fail "client 1 finished before it was killed"
wait_for 30 "the scheduler to notice the loss" logged run2 "client ${names[1]} was lost"
client run2 1 --set run.checkpoint_dir="$tmp/ckpt2"
c1=$client
wait_for 120 "the resumed run to finish" finished "$scheduler"
reap "$scheduler"
[ "$code" -eq 0 ] || fail "the scheduler node failed after the kill"
for p in "$c0" "$c1"; do
  wait_for 30 "the client nodes to exit" finished "$p"
  reap "$p"
  [ "$code" -eq 0 ] || fail "a client node failed after the kill"
done
logged run2-1 "resuming after step $killed_at" || fail "the restarted client did not resume"
logged run2 "client ${names[1]} joined again" || fail "the scheduler did not take the client back"
same_as_reference run2

# 3. No checkpoints: a lost client fails the run, naming it; the other client stops too.
scheduler run3 --set scheduler.control=
client run3 0
c0=$client
client run3 1
c1=$client
wait_for 60 "the plan to run" logged run3 "phase 1 of 2"
kill -9 "$c1"
wait "$c1" 2>/dev/null || true
wait_for 30 "the scheduler node to fail" finished "$scheduler"
reap "$scheduler"
[ "$code" -eq 1 ] || fail "the scheduler node did not fail"
logged run3 "client ${names[1]} was lost (.*); without run.checkpoint_dir" ||
  fail "no clear error naming the lost client"
wait_for 30 "client 0 to stop" finished "$c0"
reap "$c0"
[ "$code" -ne 0 ] || fail "client 0 exited 0 without a run"
logged run3-0 "lost the scheduler at 127.0.0.1:$scheduler_port" || fail "client 0: no clear error"

# ... and a scheduler node killed mid-run leaves no client hanging (one client is enough).
scheduler run4 --set scheduler.control= --set scheduler.clients=1
client run4 0 --set scheduler.clients=1
wait_for 60 "the plan to run" logged run4 "phase 1 of 2"
kill -9 "$scheduler"
wait "$scheduler" 2>/dev/null || true
wait_for 30 "the client to stop" finished "$client"
reap "$client"
[ "$code" -ne 0 ] || fail "the client exited 0 after its scheduler was killed"
logged run4-0 "lost the scheduler at 127.0.0.1:$scheduler_port before the run ended (its connection closed" ||
  fail "the client gave no clear error"

# 4. kill -9 the scheduler node in the second phase, start it again with the same command on
#    its address: it resumes from its checkpoint and both clients join it again.
scheduler run5 --set scheduler.control= --set run.checkpoint_dir="$tmp/ckpt5"
client run5 0 --set run.checkpoint_dir="$tmp/ckpt5"
c0=$client
client run5 1 --set run.checkpoint_dir="$tmp/ckpt5"
c1=$client
wait_for 120 "client 0's checkpoint after step 12" at_least_step 12 \
  "$tmp/ckpt5/${names[0]}.checkpoint.safetensors"
kill -9 "$scheduler"
wait "$scheduler" 2>/dev/null || true
scheduler_killed_at=$(checkpoint_step "$tmp/ckpt5/${names[0]}.checkpoint.safetensors")
[ "$scheduler_killed_at" -lt 20 ] || fail "the run finished before the scheduler was killed"
mv "$tmp/run5.err" "$tmp/run5-killed.log"
listen_port=$scheduler_port scheduler run5 --set scheduler.control= --set run.checkpoint_dir="$tmp/ckpt5"
wait_for 180 "the resumed run to finish" finished "$scheduler"
reap "$scheduler"
[ "$code" -eq 0 ] || fail "the restarted scheduler node failed"
for p in "$c0" "$c1"; do
  wait_for 30 "the client nodes to exit" finished "$p"
  reap "$p"
  [ "$code" -eq 0 ] || fail "a client node failed after the scheduler was killed"
done
logged run5 "resuming from .*scheduler.json" || fail "the restarted scheduler did not resume"
logged run5 "all 2 client(s) back" || fail "the clients did not join the restarted scheduler"
for k in 0 1; do
  logged "run5-$k" "joining it again when it is back" || fail "client $k did not rejoin"
done
same_as_reference run5

# 5. SIGSTOP client 1 mid-run and start it again: the scheduler sees the old one does not
#    answer and lets the new one take its place without waiting for the connection to close.
scheduler run6 --set scheduler.control= --set run.checkpoint_dir="$tmp/ckpt6"
client run6 0 --set run.checkpoint_dir="$tmp/ckpt6"
c0=$client
client run6 1 --set run.checkpoint_dir="$tmp/ckpt6"
frozen=$client
wait_for 120 "client 1's checkpoint after step 12" at_least_step 12 \
  "$tmp/ckpt6/${names[1]}.checkpoint.safetensors"
kill -STOP "$frozen"
client run6 1 --set run.checkpoint_dir="$tmp/ckpt6"
c1=$client
wait_for 30 "the new client 1 to take over" logged run6 "client ${names[1]} is replaced by a newer connection"
kill -9 "$frozen"
wait "$frozen" 2>/dev/null || true
wait_for 180 "the run to finish" finished "$scheduler"
reap "$scheduler"
[ "$code" -eq 0 ] || fail "the scheduler node failed after the takeover"
for p in "$c0" "$c1"; do
  wait_for 30 "the client nodes to exit" finished "$p"
  reap "$p"
  [ "$code" -eq 0 ] || fail "a client node failed after the takeover"
done
same_as_reference run6
echo "node_scheduler: ok (client 1 killed after step $killed_at, joined again; scheduler killed" \
  "after step $scheduler_killed_at, resumed; a frozen client replaced)"
