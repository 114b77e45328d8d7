#!/usr/bin/env bash
# gtune generate as a user runs it (issue 18): a short run's adapters plugged in, prompts from
# the command line and from a JSON-lines file, greedy output repeatable, sampling repeatable from
# its seed, and bad input refused with a clear error.
set -uo pipefail
gtune="$1" src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cfg="$src/tests/integration/online-plain.toml"

"$gtune" simulate --config "$cfg" --set training.steps=4 --set training.eval_every=0 \
  --set evaluation.generation_examples=16 \
  --out "$tmp/run" --quiet --metrics 0 >"$tmp/sim.out" 2>&1 || fail "simulate: $(tail -3 "$tmp/sim.out")"
[ -f "$tmp/run/adapters.safetensors" ] || fail "the run wrote no adapters"

# The run's generated definitions of held-out words, scored against WordNet's.
grep -q "^generated definitions .*ROUGE-L .* pretrained -> .* tuned, 16 held-out words" "$tmp/sim.out" ||
  fail "no generation summary: $(grep -i generat "$tmp/sim.out")"
python3 - "$tmp/run/results.json" <<'PY' || fail "results.json generation (above)"
import json, sys
g = json.load(open(sys.argv[1]))["generation"]
assert g["examples"] == 16, g
for s in [g["pretrained"]] + g["tuned"]:
    assert 0 <= s["ci95"][0] <= s["rouge_l"] <= s["ci95"][1] <= 1, s
    assert len(s["samples"]) == 3 and all(x["prompt"].endswith("):") for x in s["samples"]), s
    assert all(x["reference"] and "\n" not in x["text"] for x in s["samples"]), s
PY

gen() { "$gtune" generate --config "$cfg" --adapters "$tmp/run/adapters.safetensors" "$@"; }

# Streamed text: the prompt, what follows it, then why it stopped.
out=$(gen --prompt "The meaning of a word" --max-tokens 8 2>&1) || fail "generate exited $?: $out"
grep -q "^The meaning of a word" <<<"$out" || fail "no prompt echoed: $out"
grep -Eq "^\[(stop|length), [0-9]+ tokens\]$" <<<"$out" || fail "no finish line: $out"

# JSON lines, one per prompt, from --prompt and --prompts together.
printf '%s\n' '{"prompt": "A cat is"}' '' '{"prompt": "Which word means: a dwelling?\nAnswer:"}' >"$tmp/p.jsonl"
gen --prompt "One" --prompts "$tmp/p.jsonl" --max-tokens 6 --json >"$tmp/a.jsonl" 2>"$tmp/a.err" ||
  fail "generate --json: $(tail -3 "$tmp/a.err")"
python3 - "$tmp/a.jsonl" <<'PY' || fail "JSON output (above)"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["prompt"] for r in rows] == ["One", "A cat is", "Which word means: a dwelling?\nAnswer:"], rows
for r in rows:
    assert r["finish_reason"] in ("stop", "length"), r
    assert 0 <= r["tokens"] <= 6 and isinstance(r["text"], str), r
    assert r["finish_reason"] == "stop" or r["tokens"] == 6, r
PY
gen --prompt "One" --prompts "$tmp/p.jsonl" --max-tokens 6 --json >"$tmp/b.jsonl" 2>/dev/null
cmp -s "$tmp/a.jsonl" "$tmp/b.jsonl" || fail "greedy generation is not repeatable"
s1=$(gen --prompt "A cat is" --max-tokens 8 --temperature 1 --top-p 0.9 --seed 5 --json 2>/dev/null)
s2=$(gen --prompt "A cat is" --max-tokens 8 --temperature 1 --top-p 0.9 --seed 5 --json 2>/dev/null)
[ -n "$s1" ] && [ "$s1" = "$s2" ] || fail "sampling with one seed differs: $s1 / $s2"

# Split: the backbone on a server node, this process holding the adapters only; with fp32 a1
# the same tokens as generating here.
"$gtune" node --role server --listen 127.0.0.1:0 --port-file "$tmp/server.port" --config "$cfg" \
  --metrics 0 >"$tmp/server.out" 2>"$tmp/server.err" &
server=$!
trap 'kill "$server" 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 1 600); do [ -s "$tmp/server.port" ] && break; sleep 0.2; done
[ -s "$tmp/server.port" ] || fail "the server node did not listen: $(tail -3 "$tmp/server.err")"
fp32=(--set strategy.quantize_a1=none --prompt "One" --prompts "$tmp/p.jsonl" --max-tokens 6 --json)
gen "${fp32[@]}" >"$tmp/here.jsonl" 2>/dev/null || fail "generate here"
gen "${fp32[@]}" --connect "127.0.0.1:$(cat "$tmp/server.port")" >"$tmp/split.jsonl" 2>"$tmp/split.err" ||
  fail "generate --connect: $(tail -3 "$tmp/split.err")"
python3 - "$tmp/here.jsonl" "$tmp/split.jsonl" <<'PY' || fail "split generation differs (above)"
import json, sys
here = [json.loads(l) for l in open(sys.argv[1])]
split = [json.loads(l) for l in open(sys.argv[2])]
# The split rows say what crossed the wire (a1 up, a2 down, at least 3 kB a token in fp32).
assert all(r["wire_bytes"] >= 3000 * max(r["tokens"], 1) for r in split), split
assert all("wire_bytes" not in r for r in here), here
for r in split:
    del r["wire_bytes"]
assert here == split, (here, split)
PY
grep -q "(generate)" "$tmp/server.err" || fail "the server saw no generation session"
if gen --prompt "x" --connect "127.0.0.1:1" >"$tmp/e.out" 2>&1; then fail "reached a server that is not there"; fi
grep -q "cannot reach the server at 127.0.0.1:1" "$tmp/e.out" || fail "no clear error: $(tail -2 "$tmp/e.out")"

# Bad input: a clear error, exit status not 0.
expect_error() {  # expect_error <pattern> <args...>
  local pattern="$1"
  shift
  if gen "$@" >"$tmp/e.out" 2>&1; then fail "accepted: $*"; fi
  grep -q "$pattern" "$tmp/e.out" || fail "no clear error for $* (want '$pattern'): $(tail -2 "$tmp/e.out")"
}
expect_error "give --prompt" --max-tokens 4
printf '%s\n' '{"prompt": "fine"}' 'not json' >"$tmp/bad.jsonl"
expect_error "bad.jsonl:2: not JSON" --prompts "$tmp/bad.jsonl"
printf '%s\n' '{"text": "no prompt key"}' >"$tmp/bad2.jsonl"
expect_error 'bad2.jsonl:1: expected an object with a "prompt" string' --prompts "$tmp/bad2.jsonl"
expect_error "max-tokens" --prompt "x" --max-tokens 0
if "$gtune" generate --config "$cfg" --adapters "$src/tests/fixtures/hf-reference/llama-tiny-s1/model.safetensors" \
  --prompt "x" >"$tmp/e.out" 2>&1; then fail "adapters of another model were plugged in"; fi
grep -qi "adapter\|shape\|lack" "$tmp/e.out" || fail "no clear error for foreign adapters: $(tail -2 "$tmp/e.out")"
echo "cli_generate: ok"
