#!/usr/bin/env bash
# The designs and the scheduler as a user runs them (gtune simulate, gtune ctl):
# gradfree sends no gradients and, with its a2 cache, nothing from the second
# epoch on; offline sends nothing per step and the server plugs exactly the
# client's adapters; a switch on command equals the two phases run back to
# back; a byte budget switches to the fallback; FedAvg leaves the clients
# equal; a broken emulator download resumes.
set -uo pipefail
gtune="$1" src="$2"
tmp=$(mktemp -d)
bg=""
trap '[ -n "$bg" ] && kill $bg 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
small=(--set data.train_examples=32 --set data.valid_examples=16 --set scheduler.control= --quiet)

# run <name> <config> <args...>: simulate into $tmp/<name>.
run() {
  local name="$1" cfg="$2"
  shift 2
  timeout 300 "$gtune" simulate --config "$src/config/examples/$cfg.toml" "${small[@]}" "$@" \
    --out "$tmp/$name" >"$tmp/$name.out" 2>"$tmp/$name.err" ||
    fail "simulate $name exited $?: $(tail -5 "$tmp/$name.err")"
}

# py <script> <args...>: a python check; its output explains a failure.
py() { python3 - "$@"; }

# --- gradfree: two epochs of 4 steps, with and without the a2 cache ----------
run gf-cache gradfree --set training.epochs=2 --set privacy.privatize_steps=0
run gf-nocache gradfree --set training.epochs=2 --set gradfree.cache_a2=false \
  --set privacy.privatize_steps=0
py "$tmp/gf-cache/results.json" "$tmp/gf-nocache/results.json" <<'PY' || fail "gradfree (above)"
import json, sys
def epochs(path):
    c = json.load(open(path))["clients"][0]
    kinds = {b["kind"] for b in c["totals"]["all_bytes"]}
    assert not any(k.startswith("gradients") for k in kinds), f"gradient messages: {kinds}"
    steps = c["steps"]
    assert len(steps) == 8, len(steps)
    per = [sum(b["bytes"] for s in steps[e*4:(e+1)*4] for b in s["bytes"]) for e in (0, 1)]
    return per
cache, nocache = epochs(sys.argv[1]), epochs(sys.argv[2])
print(f"gradfree bytes per epoch: with cache {cache}, without {nocache}")
assert cache[0] > 0 and cache[1] == 0, cache
# Without the cache every epoch sends its activations again (padding varies with the order).
assert nocache[0] > 0 and nocache[1] > 0.9 * nocache[0], nocache
PY

# --- offline: nothing per step; the plugged adapters are the client's --------
run off offline --set training.steps=4
py "$tmp/off/results.json" "$tmp/off/adapters.safetensors" \
  "$tmp/off/plugged-offline-example.safetensors" <<'PY' || fail "offline (above)"
import json, struct, sys
r = json.load(open(sys.argv[1]))
c = r["clients"][0]
assert all(not s["bytes"] for s in c["steps"]), "an offline step sent bytes"
kinds = {b["kind"]: b["bytes"] for b in c["totals"]["all_bytes"]}
assert kinds.get("chunk_down", 0) > 0 and kinds.get("adapters_up", 0) > 0, kinds
e = r["emulators"][0]
print("offline: emulator {:.2f} MB down, adapters {:.2f} MB up; losses {}".format(
    kinds["chunk_down"] / 1e6, kinds["adapters_up"] / 1e6,
    {k: round(v, 4) for k, v in e.items() if k.endswith("loss")}))
def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    head = json.loads(data[8:8 + n])
    head.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in head.items()}
a, b = tensors(sys.argv[2]), tensors(sys.argv[3])
assert a.keys() == b.keys(), (sorted(a)[:3], sorted(b)[:3])
bad = [k for k in a if a[k] != b[k]]
assert not bad, f"plugged adapters differ from the client's: {bad[:5]}"
PY

# --- a switch on command = the two phases back to back ----------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 300 "$gtune" simulate --config "$src/tests/integration/online-plain.toml" --set training.steps=10 \
  --set data.train_examples=120 --set data.valid_examples=16 --set "scheduler.control=127.0.0.1:$port" \
  --quiet --out "$tmp/switched" >"$tmp/switched.out" 2>"$tmp/switched.err" &
bg=$!
ctl() { "$gtune" ctl "$@" --address "127.0.0.1:$port" 2>>"$tmp/ctl.err"; }
for _ in $(seq 1 300); do ctl pause >/dev/null && break; sleep 0.1; done
step=""
for _ in $(seq 1 300); do
  status=$(ctl status) || true
  step=$(echo "$status" | python3 -c 'import json,sys; c=json.load(sys.stdin)["clients"][0]; print(c["step"] if c["paused"] else "")' 2>/dev/null)
  [ -n "$step" ] && break
  sleep 0.1
done
[ -n "$step" ] || fail "the run never paused: $(cat "$tmp/ctl.err") $(tail -3 "$tmp/switched.err")"
[ "$step" -lt 10 ] || fail "paused only after the last step"
ctl switch --to nonsense >/dev/null && fail "ctl switch accepted an unknown strategy"
grep -q "is one of" "$tmp/ctl.err" || fail "no reason for the refused switch: $(cat "$tmp/ctl.err")"
ctl switch --to gradfree >/dev/null || fail "ctl switch failed: $(cat "$tmp/ctl.err")"
ctl resume >/dev/null || fail "ctl resume failed: $(cat "$tmp/ctl.err")"
wait $bg || fail "the switched run failed: $(tail -5 "$tmp/switched.err")"
bg=""
grep -q "strategy online -> gradfree at step $step" "$tmp/switched.err" ||
  fail "no switch at step $step in the log"
cat >"$tmp/two-phases.toml" <<EOF2
[[phase]]
strategy = "online"
steps = $step
[[phase]]
strategy = "gradfree"
steps = $((10 - step))
EOF2
# The example's settings, with the plan of the two phases.
grep -v -E '^(kind|steps) ' "$src/tests/integration/online-plain.toml" | sed "s|\.\./\.\./models|$src/models|" \
  >"$tmp/base.toml"
cat "$tmp/base.toml" "$tmp/two-phases.toml" >"$tmp/plan.toml"
timeout 300 "$gtune" simulate --config "$tmp/plan.toml" --set data.train_examples=120 \
  --set data.valid_examples=16 --set scheduler.control= --quiet --out "$tmp/phased" \
  >"$tmp/phased.out" 2>"$tmp/phased.err" || fail "two-phase run failed: $(tail -5 "$tmp/phased.err")"
cmp "$tmp/switched/adapters.safetensors" "$tmp/phased/adapters.safetensors" ||
  fail "switching at step $step differs from running the phases back to back"
echo "switch after step $step: adapters identical to the two phases back to back"

# --- budget policy: online until the budget is spent, then gradfree ----------
run budget online --set training.steps=6 --set scheduler.budget_bytes=2000000 \
  --set attacker.enabled=false  # the budget is under test, not the attacks (their fits cost minutes)
py "$tmp/budget/results.json" <<'PY' || fail "budget (above)"
import json, sys
r = json.load(open(sys.argv[1]))
sw = r["switches"]
assert len(sw) == 1 and sw[0]["by"].startswith("budget") and sw[0]["to"] == "gradfree", sw
after = sw[0]["after_step"]
steps = r["clients"][0]["steps"]
for s in steps[after:]:
    assert s["strategy"] == "gradfree", s["strategy"]
    assert not any(b["kind"].startswith("gradients") for b in s["bytes"]), s["bytes"]
print(f"budget spent after step {after}; then gradfree")
PY

# --- FedAvg: two clients end with the same adapters ---------------------------
run fed plan --set phase.0.steps=2 --set phase.1.steps=2
cmp "$tmp/fed/adapters-plan-example-0.safetensors" "$tmp/fed/adapters-plan-example-1.safetensors" ||
  fail "after FedAvg the two clients' adapters differ"
grep -q "averaged (FedAvg)" "$tmp/fed.err" || fail "no FedAvg logged"

# --- a broken emulator download resumes ---------------------------------------
run dl1 offline --set training.steps=1 --set "emulator.work_dir=$tmp/transfers"
file=$(find "$tmp/transfers/offline-example" -type f ! -name '*.part' | head -1)
[ -n "$file" ] || fail "no downloaded emulator in $tmp/transfers"
size=$(stat -c %s "$file")
head -c $((size / 2)) "$file" >"$file.part" && rm "$file"
run dl2 offline --set training.steps=1 --set "emulator.work_dir=$tmp/transfers"
grep -q "resuming at $((size / 2)) bytes" "$tmp/dl2.err" || fail "the download did not resume: $(grep emulator "$tmp/dl2.err")"
py "$tmp/dl2/results.json" "$size" <<'PY' || fail "resume (above)"
import json, sys
c = json.load(open(sys.argv[1]))["clients"][0]
got = sum(b["bytes"] for b in c["totals"]["all_bytes"] if b["kind"] == "chunk_down")
size = int(sys.argv[2])
assert got < 0.6 * size, f"fetched {got} bytes of a {size}-byte file: not resumed"
PY
# --- without --out: the emulators live in a temporary directory until the report is made ---
mkdir "$tmp/tmpdir"  # its own TMPDIR: other tests' temporary directories do not show here
TMPDIR="$tmp/tmpdir" timeout 300 "$gtune" simulate --config "$src/config/examples/offline.toml" \
  "${small[@]}" --set training.steps=1 >"$tmp/noout.out" 2>"$tmp/noout.err" ||
  fail "simulate without --out exited $?: $(tail -3 "$tmp/noout.err")"
grep -q "standalone loss" "$tmp/noout.out" || fail "no emulator report without --out"
[ -z "$(ls -A "$tmp/tmpdir")" ] || fail "left behind in TMPDIR: $(ls -A "$tmp/tmpdir")"
echo "simulate_designs: ok"
