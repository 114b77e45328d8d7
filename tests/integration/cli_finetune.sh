#!/usr/bin/env bash
# A short run of the main job: held-out loss falls, adapters are written, and
# eval-ppl scores text with the embedded model.
set -uo pipefail
gtune="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$("$gtune" finetune --steps 12 --train-examples 500 --valid-examples 64 --out "$tmp/run" 2>/dev/null) ||
  fail "finetune exited $?"
echo "$out"
before=$(echo "$out" | awk '/held-out  before:/ {print $4}')
after=$(echo "$out" | awk '/held-out  after:/ {print $4}')
[ -n "$before" ] && [ -n "$after" ] || fail "no before/after loss"
awk -v b="$before" -v a="$after" 'BEGIN {exit !(a < b)}' || fail "held-out loss did not fall: $before -> $after"
[ -s "$tmp/run/adapters.safetensors" ] || fail "no adapters written"

out=$("$gtune" finetune --steps 3 --train lora --lora-rank 4 --train-examples 100 --valid-examples 16 2>/dev/null) ||
  fail "lora finetune exited $?"
echo "$out" | grep -q "training  lora" || fail "lora mode not reported"

printf 'a plant having a woody stem\nthe act of moving quickly from one place to another\n' >"$tmp/text.txt"
out=$("$gtune" eval-ppl --text "$tmp/text.txt" 2>/dev/null) || fail "eval-ppl exited $?"
echo "$out" | grep -q "perplexity" || fail "eval-ppl printed no perplexity: $out"
echo "cli_finetune: ok"
