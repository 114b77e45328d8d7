#!/usr/bin/env bash
# The monitoring as an operator sees it: a real Prometheus (Debian's) scrapes a running
# `gtune simulate`; the bytes it stored equal results.json's; its console page
# (monitoring/consoles/gtune.html) renders the run's strategy and bytes in headless Chromium,
# and a screenshot is kept. The Grafana dashboard is valid JSON that uses only documented
# metrics and a datasource variable. Exits 77 (skipped) where prometheus or chromium is
# missing; CI installs both (scripts/install-deps).
set -uo pipefail
gtune="$1" src="$2"
tmp=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
shot_dir="${GT_TEST_OUTPUT:-$PWD}"

python3 - "$src" <<'PY' || fail "dashboard (above)"
import json, re, sys
src = sys.argv[1]
d = json.load(open(f"{src}/monitoring/dashboards/guardedtuning.json"))
doc = open(f"{src}/docs/metrics.md").read()
documented = set(re.findall(r"`(gtune_\w+)`", doc))
assert [v["type"] for v in d["templating"]["list"]] == ["datasource"], d["templating"]
assert "uid" not in d or d["uid"] in (None, ""), "hard-coded dashboard uid"
for p in d["panels"]:
    assert p["datasource"]["uid"] == "${datasource}", p["title"]
    for t in p["targets"]:
        assert t["datasource"]["uid"] == "${datasource}", p["title"]
        for name in re.findall(r"gtune_\w+", t["expr"]):
            base = re.sub(r"_(bucket|count|sum)$", "", name)
            assert base in documented, f"{p['title']}: {name} is not in docs/metrics.md"
PY

command -v prometheus >/dev/null || { echo "SKIP: prometheus is not installed (Debian: prometheus)"; exit 77; }
chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || { echo "SKIP: chromium is not installed (Debian: chromium)"; exit 77; }

read -r metrics_port prom_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
cat >"$tmp/prometheus.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: gtune
    static_configs:
      - targets: ["127.0.0.1:$metrics_port"]
YML
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
  --web.listen-address="127.0.0.1:$prom_port" \
  --web.console.templates="$src/monitoring/consoles" \
  --web.console.libraries="$src/monitoring/console_libraries" >"$tmp/prometheus.log" 2>&1 &
pids+=($!)
api="http://127.0.0.1:$prom_port"
for _ in $(seq 100); do
  python3 -c "import urllib.request; urllib.request.urlopen('$api/-/ready', timeout=1)" 2>/dev/null && break
  sleep 0.2
done

"$gtune" simulate --config "$src/tests/integration/online-plain.toml" --set training.steps=8 \
  --set data.train_examples=64 --set data.valid_examples=8 --set scheduler.control= --quiet \
  --metrics "127.0.0.1:$metrics_port" --metrics-hold 120 --out "$tmp/run" >"$tmp/out" 2>"$tmp/err" &
pids+=($!)
for _ in $(seq 900); do
  grep -q "^metrics   still served" "$tmp/out" && break
  sleep 0.2
done
grep -q "^metrics   still served" "$tmp/out" || fail "the run did not finish: $(tail -5 "$tmp/err")"

# Prometheus' own view, once it has scraped the final numbers, equals results.json.
python3 - "$api" "$tmp/run/results.json" <<'PY' || fail "Prometheus vs results.json (above); $(tail -3 "$tmp/prometheus.log")"
import json, sys, time, urllib.parse, urllib.request
api, results = sys.argv[1], json.load(open(sys.argv[2]))
want = {(b["link"], b["direction"], b["kind"]): b["bytes"] for b in results["totals"]["all_bytes"]}
def query(q):
    url = f"{api}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    return json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
got = {}
for _ in range(60):
    got = {(r["metric"]["link"], r["metric"]["direction"], r["metric"]["kind"]): int(float(r["value"][1]))
           for r in query("sum by (link, direction, kind) (gtune_wire_bytes_total)")}
    if got == want:
        break
    time.sleep(0.5)
assert got == want, (got, want)
steps = query("sum(gtune_steps_total)")
assert steps and float(steps[0]["value"][1]) == results["totals"]["steps"], steps
PY

page="$api/consoles/gtune.html"
python3 - "$page" <<'PY' || fail "console page (above)"
import sys, urllib.request
html = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
assert "error executing template" not in html.lower(), html[:2000]
assert 'class="gtune-strategy">online<' in html, "no current strategy on the page"
assert 'class="text-right gtune-bytes">' in html, "no byte counts on the page"
PY
flags=(--headless --no-sandbox --disable-gpu --disable-background-networking
  --disable-component-update --disable-dev-shm-usage --no-first-run --user-data-dir="$tmp/chrome")
timeout 120 "$chromium" "${flags[@]}" --virtual-time-budget=5000 --dump-dom "$page" \
  >"$tmp/dom.html" 2>"$tmp/chrome.err" || fail "chromium --dump-dom: $(tail -3 "$tmp/chrome.err")"
grep -q 'gtune-strategy">online<' "$tmp/dom.html" || fail "the rendered page lacks the strategy"
grep -q "rickshaw_graph\|<svg" "$tmp/dom.html" || fail "the console graphs did not render (no svg)"
# The last 5 minutes (the console's own time control, in the URL), so the short run shows.
timeout 120 "$chromium" "${flags[@]}" --virtual-time-budget=5000 --window-size=1280,1600 \
  --screenshot="$shot_dir/monitoring-console.png" "$page#pctc%7B%22duration%22%3A300%2C%22endTime%22%3A0%7D" >/dev/null 2>>"$tmp/chrome.err" ||
  fail "chromium --screenshot: $(tail -3 "$tmp/chrome.err")"
[ -s "$shot_dir/monitoring-console.png" ] || fail "no screenshot"
echo "screenshot: $shot_dir/monitoring-console.png"
echo ok
