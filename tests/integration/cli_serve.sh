#!/usr/bin/env bash
# gtune serve as a user runs it (issue 18): the official openai client from npm (pinned in
# tests/integration/openai-client) and curl against the OpenAI-compatible API, with the backbone
# in the process and on a server node; the API key enforced; bad requests and a client that
# hangs up mid-stream refused or survived; SIGTERM ends it.
set -uo pipefail
gtune="$1" src="$2"
tmp=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v node >/dev/null || { echo "skip: node is not installed"; exit 77; }
client="$src/tests/integration/openai-client"
[ -d "$client/node_modules/openai" ] ||
  fail "the openai client is not installed: scripts/install-deps installs it (npm ci in $client)"
cfg="$src/tests/integration/online-plain.toml"
fp32=(--config "$cfg" --set strategy.quantize_a1=none)

wait_port() {  # wait_port <file> <log> <pid>
  for _ in $(seq 1 600); do
    [ -s "$1" ] && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.2
  done
  fail "nothing listened: $(tail -3 "$2")"
}
serve() {  # serve <name> <args...>: starts gtune serve, its port in $tmp/<name>.port
  local name="$1"
  shift
  GTUNE_API_KEY=sekrit "$gtune" serve "${fp32[@]}" --listen 127.0.0.1:0 --port-file "$tmp/$name.port" \
    "$@" >"$tmp/$name.out" 2>&1 &
  pids+=($!)
  wait_port "$tmp/$name.port" "$tmp/$name.out" $!
}

# What the openai client should get: gtune generate's greedy text for the same prompt.
expected=$("$gtune" generate "${fp32[@]}" --prompt "A cat is" --max-tokens 12 --json 2>"$tmp/gen.err") ||
  fail "generate: $(tail -3 "$tmp/gen.err")"

serve here --metrics 127.0.0.1:0
here="http://127.0.0.1:$(cat "$tmp/here.port")"
grep -q "serving \"online-example\" at $here/v1" "$tmp/here.out" || fail "no address shown: $(cat "$tmp/here.out")"
node "$client/check.mjs" "$here/v1" online-example sekrit "$expected" || fail "openai client, backbone here"

# curl: the key, a streamed answer's events, a body that is not JSON, a client that hangs up.
code=$(curl -s -o "$tmp/r.json" -w '%{http_code}' "$here/v1/models")
[ "$code" = 401 ] || fail "no key: HTTP $code, not 401"
auth=(-H "Authorization: Bearer sekrit" -H "Content-Type: application/json")
curl -sN "${auth[@]}" "$here/v1/completions" \
  -d '{"model": "online-example", "prompt": "A cat is", "max_tokens": 12, "temperature": 0, "stream": true}' \
  >"$tmp/sse.txt" || fail "curl stream"
[ "$(tail -n 2 "$tmp/sse.txt" | head -n 1)" = "data: [DONE]" ] || fail "the stream does not end with [DONE]: $(tail -3 "$tmp/sse.txt")"
python3 - "$tmp/sse.txt" "$expected" <<'PY' || fail "server-sent events (above)"
import json, sys
events = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
assert events[-1] == "[DONE]", events[-1]
chunks = [json.loads(e) for e in events[:-1]]
text = "".join(c["choices"][0]["text"] for c in chunks)
assert text == json.loads(sys.argv[2])["text"], (text, sys.argv[2])
assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length"), chunks[-1]
assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
PY
code=$(curl -s -o "$tmp/r.json" -w '%{http_code}' "${auth[@]}" "$here/v1/completions" -d '{"model": ')
[ "$code" = 400 ] && grep -q "not JSON" "$tmp/r.json" || fail "malformed body: HTTP $code $(cat "$tmp/r.json")"
code=$(curl -s -o "$tmp/r.json" -w '%{http_code}' "${auth[@]}" "$here/v1/embeddings" -d '{}')
[ "$code" = 404 ] && grep -q "no route /v1/embeddings" "$tmp/r.json" || fail "unknown route: HTTP $code"
# Hang up after the first events of a long generation: serve stops it (the metrics count it
# cancelled) and serves on.
metrics=$(sed -n 's/^metrics *//p' "$tmp/here.out")
[ -n "$metrics" ] || fail "no metrics endpoint shown: $(cat "$tmp/here.out")"
curl -sN --max-time 1 "${auth[@]}" "$here/v1/completions" \
  -d '{"model": "online-example", "prompt": "A", "max_tokens": 450, "ignore_eos": true, "stream": true}' >/dev/null
for _ in $(seq 1 100); do
  curl -s "$metrics" | grep -q '^gtune_completions_total{finish_reason="cancelled"} 1' && break
  sleep 0.2
done
curl -s "$metrics" >"$tmp/metrics.txt"
grep -q '^gtune_completions_total{finish_reason="cancelled"} 1' "$tmp/metrics.txt" ||
  fail "the hung-up generation was not cancelled: $(grep completions "$tmp/metrics.txt")"
grep -q '^gtune_time_to_first_token_seconds_count' "$tmp/metrics.txt" || fail "no time-to-first-token metric"
code=$(curl -s -o "$tmp/r.json" -w '%{http_code}' --max-time 60 "${auth[@]}" "$here/v1/completions" \
  -d '{"model": "online-example", "prompt": "A cat is", "max_tokens": 12, "temperature": 0}')
[ "$code" = 200 ] || fail "after a client hung up: HTTP $code"
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["choices"][0]["text"] == json.loads(sys.argv[2])["text"]' \
  "$tmp/r.json" "$expected" || fail "after a client hung up: $(cat "$tmp/r.json")"

# Split: the backbone on a server node, serve holding the adapters only; fp32 a1 gives the same
# text, so the same checks pass.
"$gtune" node --role server --listen 127.0.0.1:0 --port-file "$tmp/server.port" --config "$cfg" \
  --metrics 0 >"$tmp/server.out" 2>"$tmp/server.err" &
pids+=($!)
wait_port "$tmp/server.port" "$tmp/server.err" $!
serve split --metrics 127.0.0.1:0 --connect "127.0.0.1:$(cat "$tmp/server.port")"
split="http://127.0.0.1:$(cat "$tmp/split.port")"
node "$client/check.mjs" "$split/v1" online-example sekrit "$expected" || fail "openai client, backbone on a server node"
grep -q "(generate)" "$tmp/server.err" || fail "the server node saw no generation session"
# What each token cost on the wire, as the data owner's metrics show it.
split_metrics=$(sed -n 's/^metrics *//p' "$tmp/split.out")
curl -s "$split_metrics" >"$tmp/split-metrics.txt"
grep -Eq '^gtune_completion_wire_bytes_per_token_count [1-9]' "$tmp/split-metrics.txt" ||
  fail "no bytes-per-token metric: $(grep wire_bytes_per "$tmp/split-metrics.txt")"
grep -Eq '^gtune_wire_bytes_total\{.*kind="generate_up".*\} [1-9]' "$tmp/split-metrics.txt" ||
  fail "no generate_up bytes: $(grep generate_ "$tmp/split-metrics.txt")"

# SIGTERM ends serve promptly with status 0.
kill -TERM "${pids[0]}"
for _ in $(seq 1 50); do kill -0 "${pids[0]}" 2>/dev/null || break; sleep 0.2; done
kill -0 "${pids[0]}" 2>/dev/null && fail "serve did not stop on SIGTERM"
wait "${pids[0]}" || fail "serve exited $? on SIGTERM"

# Beyond loopback only with a key; bad options are clear errors.
if "$gtune" serve --config "$cfg" --listen 0.0.0.0:0 >"$tmp/e.out" 2>&1; then fail "served beyond loopback without a key"; fi
grep -q "beyond loopback the API needs a key" "$tmp/e.out" || fail "no clear error: $(tail -2 "$tmp/e.out")"
if "$gtune" serve --config "$cfg" --listen 127.0.0.1:x >"$tmp/e.out" 2>&1; then fail "took port x"; fi
grep -q "listen" "$tmp/e.out" || fail "no clear error for --listen: $(tail -2 "$tmp/e.out")"
echo "cli_serve: ok"
