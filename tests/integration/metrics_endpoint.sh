#!/usr/bin/env bash
# gtune simulate --metrics serves Prometheus metrics while it runs; after the run (held open
# with --metrics-hold) the scraped wire bytes and messages equal results.json's byte accounting
# by link, direction and kind, and the steps, loss and current strategy are there.
set -uo pipefail
gtune="$1" src="$2"
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$gtune" simulate --config "$src/tests/integration/online-plain.toml" --set training.steps=5 \
  --set data.train_examples=64 --set data.valid_examples=8 --set scheduler.control= --quiet \
  --metrics 127.0.0.1:0 --metrics-hold 60 --out "$tmp/run" >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 600); do
  grep -q "^metrics   still served" "$tmp/out" && break
  kill -0 "$pid" 2>/dev/null || fail "simulate exited early: $(tail -5 "$tmp/err")"
  sleep 0.2
done
grep -q "^metrics   still served" "$tmp/out" || fail "the run did not finish: $(cat "$tmp/out")"
url=$(sed -n 's/^metrics   \(http:.*\/metrics\)$/\1/p' "$tmp/out")
[ -n "$url" ] || fail "no scrape URL printed at start: $(cat "$tmp/out")"

python3 - "$url" "$tmp/run/results.json" <<'PY' || fail "metrics vs results.json (above)"
import json, re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
res = json.load(open(sys.argv[2]))
sample = re.compile(r'^(\w+)\{(.*)\} (\S+)$')
def series(name):
    out = []
    for line in text.splitlines():
        m = sample.match(line)
        if m and m.group(1) == name:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            out.append((labels, float(m.group(3))))
    return out
def by_key(name):
    sums = {}
    for labels, v in series(name):
        k = (labels["link"], labels["direction"], labels["kind"])
        sums[k] = sums.get(k, 0) + v
    return sums
want_bytes = {(b["link"], b["direction"], b["kind"]): b["bytes"] for b in res["totals"]["all_bytes"]}
want_msgs = {(b["link"], b["direction"], b["kind"]): b["messages"] for b in res["totals"]["messages"]}
assert by_key("gtune_wire_bytes_total") == want_bytes, (by_key("gtune_wire_bytes_total"), want_bytes)
assert by_key("gtune_wire_messages_total") == want_msgs, (by_key("gtune_wire_messages_total"), want_msgs)
strategies = {l["strategy"] for l, _ in series("gtune_wire_bytes_total")}
assert "online" in strategies, strategies
steps = series("gtune_steps_total")
assert sum(v for _, v in steps) == res["totals"]["steps"] == 5, steps
assert [l["strategy"] for l, v in series("gtune_strategy_info") if v == 1] == ["online"], text
assert series("gtune_step_loss") and series("gtune_quantization_error"), text
count = [v for l, v in series("gtune_step_seconds_count")]
assert count == [5.0], count
PY
kill "$pid"
wait "$pid" 2>/dev/null
pid=""

# A taken address given explicitly is an error naming it; 0 disables the endpoint.
python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)' >"$tmp/port" &
holder=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
port=$(cat "$tmp/port")
"$gtune" simulate --config "$src/tests/integration/online-plain.toml" --set training.steps=1 \
  --set scheduler.control= --quiet --metrics "127.0.0.1:$port" >"$tmp/taken.out" 2>&1 &&
  { kill $holder; fail "a taken metrics address was accepted"; }
kill $holder
grep -q "metrics: cannot listen on 127.0.0.1:$port" "$tmp/taken.out" || fail "taken: $(cat "$tmp/taken.out")"
"$gtune" simulate --config "$src/tests/integration/online-plain.toml" --set training.steps=1 \
  --set data.train_examples=16 --set data.valid_examples=8 --set scheduler.control= --quiet \
  --metrics 0 >"$tmp/off.out" 2>&1 || fail "--metrics 0: $(tail -3 "$tmp/off.out")"
grep -q "^metrics" "$tmp/off.out" && fail "--metrics 0 still served metrics"

# Nodes serve metrics too: a server node and a client node in their own processes; each side
# counts the same bytes per direction on the link between them.
"$gtune" node --role server --listen 127.0.0.1:0 --port-file "$tmp/port.txt" \
  --config "$src/tests/integration/online-plain.toml" --metrics 127.0.0.1:0 >"$tmp/server.out" 2>"$tmp/server.err" &
server=$!
for _ in $(seq 300); do [ -s "$tmp/port.txt" ] && break; sleep 0.1; done
[ -s "$tmp/port.txt" ] || { kill $server; fail "the server node did not listen: $(tail -3 "$tmp/server.err")"; }
server_url=$(sed -n 's/^metrics   \(http:.*\/metrics\)$/\1/p' "$tmp/server.out")
"$gtune" node --role client --connect "127.0.0.1:$(cat "$tmp/port.txt")" \
  --config "$src/tests/integration/online-plain.toml" --set training.steps=3 --set data.train_examples=32 \
  --set data.valid_examples=8 --set scheduler.control= --quiet --metrics 127.0.0.1:0 \
  --metrics-hold 30 --out "$tmp/node" >"$tmp/client.out" 2>"$tmp/client.err" &
client=$!
for _ in $(seq 600); do grep -qs "^metrics   still served" "$tmp/client.out" && break; sleep 0.2; done
client_url=$(sed -n 's/^metrics   \(http:.*\/metrics\)$/\1/p' "$tmp/client.out" | head -1)
python3 - "$server_url" "$client_url" "$tmp/node/results.json" <<'PY'
import json, re, sys, urllib.request
def per_direction(url):
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    sums = {}
    for m in re.finditer(r'^gtune_wire_bytes_total\{(.*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        sums[labels["direction"]] = sums.get(labels["direction"], 0) + float(m.group(2))
    return sums, text
server, _ = per_direction(sys.argv[1])
client, text = per_direction(sys.argv[2])
res = json.load(open(sys.argv[3]))
total = {}
for b in res["totals"]["all_bytes"]:
    total[b["direction"]] = total.get(b["direction"], 0) + b["bytes"]
assert client == total, (client, total)
assert server == client, (server, client)
assert 'strategy="online"' in text
PY
status=$?
kill $client $server 2>/dev/null
wait $client $server 2>/dev/null
[ $status = 0 ] || fail "node metrics (above)"
echo ok
