#!/usr/bin/env bash
# Bad input through the command line: a one-line error naming the file and the
# problem, exit status 1, never a crash or a backtrace.
set -uo pipefail
gtune="$1" src="$2"
fx="$src/tests/fixtures/hf-reference"
model="$src/models/pretrained/opt-mini-gcide"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# expect_error <name> <substring> <command...>
expect_error() {
  local name="$1" want="$2"
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local code=$?
  [ "$code" -eq 1 ] || fail "$name: exit status $code (want 1); stderr: $(cat "$tmp/err")"
  grep -q -- "$want" "$tmp/err" || fail "$name: stderr lacks '$want': $(cat "$tmp/err")"
  ! grep -q "frame #" "$tmp/err" || fail "$name: backtrace printed"
  [ "$(grep -c . "$tmp/err")" -le 2 ] || fail "$name: error is not short: $(cat "$tmp/err")"
}

ref="$fx/opt-tiny-s1/reference.safetensors"
expect_error "missing model dir" "config.json" "$gtune" verify --model "$tmp/nope" --reference "$ref"

cp -r "$fx/opt-tiny-s1" "$tmp/truncated"
head -c 5000 "$fx/opt-tiny-s1/model.safetensors" >"$tmp/truncated/model.safetensors"
expect_error "truncated safetensors" "model.safetensors" "$gtune" verify --model "$tmp/truncated" --reference "$ref"

cp -r "$fx/opt-tiny-s1" "$tmp/badheader"
printf '\xff\xff\xff\xff\xff\xff\xff\x7f{}' >"$tmp/badheader/model.safetensors"
expect_error "header size past the end" "model.safetensors" "$gtune" verify --model "$tmp/badheader" --reference "$ref"

cp -r "$fx/opt-tiny-s1" "$tmp/gpt"
sed -i 's/"model_type": "opt"/"model_type": "gpt-neox"/' "$tmp/gpt/config.json"
expect_error "unknown model_type" "unknown model_type 'gpt-neox'" "$gtune" verify --model "$tmp/gpt" --reference "$ref"

cp -r "$fx/opt-tiny-s1" "$tmp/shape"
sed -i 's/"ffn_dim": 256/"ffn_dim": 300/' "$tmp/shape/config.json"
expect_error "shape mismatch" "expected" "$gtune" verify --model "$tmp/shape" --reference "$ref"

cp -r "$model" "$tmp/notok"
rm "$tmp/notok/merges.txt"
echo "a line of text" >"$tmp/text.txt"
expect_error "missing tokenizer file" "merges.txt" "$gtune" eval-ppl --model "$tmp/notok" --text "$tmp/text.txt"

expect_error "missing text file" "$tmp/none.txt" "$gtune" eval-ppl --text "$tmp/none.txt"
expect_error "split point out of range" "n_in=9" "$gtune" simulate --set model.n_in=9 --set training.steps=1 --quiet
echo "cli_bad_input: ok"
