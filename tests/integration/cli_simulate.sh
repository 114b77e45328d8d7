#!/usr/bin/env bash
# The main job in short: an Online run between client and server actors lowers
# the held-out loss and writes its results; eval-ppl scores text.
set -uo pipefail
gtune="$1" src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$("$gtune" simulate --config "$src/tests/integration/online-plain.toml" --set training.steps=12 \
  --set data.train_examples=300 --set data.valid_examples=32 --quiet --out "$tmp/run" \
  --set evaluation.tasks=definition_to_word,example_cloze --set evaluation.items=20 2>"$tmp/log") ||
  fail "simulate exited $?: $(cat "$tmp/log")"
echo "$out"
# "held-out loss   5.60 -> 4.20 (perplexity ...)"
before=$(echo "$out" | awk '/^held-out loss/ {print $3}')
after=$(echo "$out" | awk '/^held-out loss/ {print $5}')
[ -n "$before" ] && [ -n "$after" ] || fail "no before/after loss"
awk -v b="$before" -v a="$after" 'BEGIN {exit !(a < b)}' || fail "held-out loss did not fall: $before -> $after"
[ -s "$tmp/run/results.json" ] || fail "no results.json"
[ -s "$tmp/run/adapters.safetensors" ] || fail "no adapters written"
grep -q "^task .*definition_to_word: acc" <<<"$out" || fail "no task accuracy in the summary"
python3 - "$tmp/run/results.json" <<'PY' || fail "task accuracy in results.json (above)"
import json, sys
t = json.load(open(sys.argv[1]))["tasks"]
assert [x["task"] for x in t["tasks"]] == ["definition_to_word", "example_cloze"], t
for x in t["tasks"]:
    for s in [x["zero_shot"]] + x["tuned"]:
        assert s["items"] == 20 and 0 <= s["acc"] <= 1 and 0 <= s["acc_norm"] <= 1, s
PY
grep -q "session 1 opened" "$tmp/log" || fail "no server session logged"

printf 'a plant having a woody stem\nthe act of moving quickly from one place to another\n' >"$tmp/text.txt"
out=$("$gtune" eval-ppl --text "$tmp/text.txt" 2>/dev/null) || fail "eval-ppl exited $?"
grep -q "perplexity" <<<"$out" || fail "eval-ppl printed no perplexity: $out"
echo "cli_simulate: ok"
