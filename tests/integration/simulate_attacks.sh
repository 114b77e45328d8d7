#!/usr/bin/env bash
# The curious server: with attacker.enabled the server's tap feeds the
# attacker, which scores its reconstructions against the clients' true tokens.
# Gradient attacks find nothing to attack where no gradient crosses.
set -uo pipefail
gtune="$1" src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
small=(--set training.steps=11 --set data.train_examples=200 --set data.valid_examples=8
  --set scheduler.control= --set attacker.enabled=true --set attacker.every=5
  --set attacker.max_batches=2 --set attacker.fit_steps=20 --quiet)

run() {
  local name="$1" cfg="$2"
  shift 2
  timeout 600 "$gtune" simulate --config "$src/config/examples/$cfg.toml" "${small[@]}" "$@" \
    --out "$tmp/$name" >"$tmp/$name.out" 2>"$tmp/$name.err" ||
    fail "simulate $name exited $?: $(tail -5 "$tmp/$name.err")"
}

run split split --set attacker.attacks=embedding_inversion,learned_inversion_a1,learned_inversion_g2
grep -q "^attack .*learned_inversion_a1 on split: ROUGE-L F1" "$tmp/split.out" ||
  fail "no attack line in the summary: $(cat "$tmp/split.out")"
run gradfree gradfree --set attacker.attacks=learned_inversion_a1,learned_inversion_g2

python3 - "$tmp/split/results.json" "$tmp/gradfree/results.json" <<'PY' || fail "attack results (above)"
import json, sys
def scores(path):
    a = json.load(open(path))["attacks"]
    return {s["attack"]: s for s in a["scores"]}, a["best"]
split, best = scores(sys.argv[1])
assert set(split) == {"embedding_inversion", "learned_inversion_a1", "learned_inversion_g2"}, split.keys()
for name, s in split.items():
    assert s["samples"] == 16, f"{name}: {s['samples']} samples (2 batches of 8 expected)"
    assert 0 <= s["rouge_l"] <= 1 and 0 <= s["token_accuracy"] <= 1, s
    assert s["rouge_l_p10"] <= s["rouge_l_p50"] <= s["rouge_l_p90"], s
assert best["split"]["rouge_l"] == max(s["rouge_l"] for s in split.values()), best
gradfree, _ = scores(sys.argv[2])
assert "learned_inversion_g2" not in gradfree, "a gradient attack ran where no gradient crossed"
assert gradfree["learned_inversion_a1"]["samples"] == 16, gradfree
print({k: round(v["rouge_l"], 3) for k, v in split.items()})
PY
# The live policy: once an attack's score passes the threshold, the scheduler
# switches to the fallback (gradfree) at the clients' next step boundary.
run policy split --set training.steps=30 --set attacker.attacks=embedding_inversion,learned_inversion_a1 \
  --set attacker.every=2 --set attacker.max_batches=3 --set scheduler.attack_threshold=0.05
python3 - "$tmp/policy/results.json" <<'PY' || fail "attack policy (above)"
import json, sys
r = json.load(open(sys.argv[1]))
sw = r["switches"]
assert len(sw) == 1 and sw[0]["by"].startswith("attack:") and sw[0]["to"] == "gradfree", sw
after = sw[0]["after_step"]
assert after is not None and after < 30, sw
steps = r["clients"][0]["steps"]
assert all(s["strategy"] == "gradfree" for s in steps[after:]), [s["strategy"] for s in steps]
print(f"attack policy switched after step {after}: {sw[0]['by']}")
PY
echo "simulate_attacks: ok"
