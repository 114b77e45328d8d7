#!/usr/bin/env bash
# gtune verify agrees with transformers on both fixtures and fails on an impossible tolerance.
set -uo pipefail
gtune="$1" src="$2"
fx="$src/tests/fixtures/hf-reference"
fail() { echo "FAIL: $*"; exit 1; }

for m in opt-tiny-s1 llama-tiny-s1; do
  out=$("$gtune" verify --model "$fx/$m" --reference "$fx/$m/reference.safetensors") || fail "$m: verify exited $?: $out"
  grep -q "^OK:" <<<"$out" || fail "$m: no OK line: $out"
  grep -q "^logits " <<<"$out" || fail "$m: logits not compared"
  grep -q "^grad\." <<<"$out" || fail "$m: gradients not compared"
done

"$gtune" verify --model "$fx/opt-tiny-s1" --reference "$fx/opt-tiny-s1/reference.safetensors" --tolerance 0 >/tmp/gt_verify_$$ 2>&1
code=$?
[ "$code" -eq 1 ] || fail "tolerance 0 should exit 1 (some diffs are nonzero), got $code"
grep -q "^FAILED:" /tmp/gt_verify_$$ || fail "no FAILED line"
rm -f /tmp/gt_verify_$$
echo "cli_verify: ok"
