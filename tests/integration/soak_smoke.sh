#!/usr/bin/env bash
# A short soak (bench/soak.sh for 40 s): one server node, 4 client nodes running short online
# runs back to back, kill -9 of a training client every 12 s, and SIGTERM to the server at the
# end. Checks that the harness works and nothing crashes: the server serves every run, ends the
# killed clients' sessions, and exits 0; samples and a summary are written. The memory and fd
# limits are lenient here (warm-up dominates 40 s); the real numbers come from the full
# benchmark (bench/soak.sh, docs/soak.md). About 55 s on 2 cores.
set -uo pipefail
gtune="$1" src="$2"
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "soak_smoke: skipped ($tool is missing)" && exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "FAIL: $*"
  [ -s "$tmp/soak.log" ] && { echo "--- bench/soak.sh (last lines)" && tail -25 "$tmp/soak.log"; }
  [ -s "$tmp/soak/server.err" ] && { echo "--- server stderr (last lines)" && tail -6 "$tmp/soak/server.err"; }
  exit 1
}

timeout -k 10 100 bash "$src/bench/soak.sh" "$gtune" 40 "$tmp/soak" --steps 8 --kill-every 12 \
  --drain 5 --threshold 400 --fd-limit 16 --quiet >"$tmp/soak.log" 2>&1
code=$?
if [ "$code" -eq 124 ] || [ "$code" -eq 137 ]; then fail "bench/soak.sh ran past 100 s"; fi
[ "$code" -eq 0 ] || fail "bench/soak.sh exited $code"
grep -q '^soak: ok$' "$tmp/soak/summary.txt" || fail "no 'soak: ok' in the summary"

python3 - "$tmp/soak" <<'EOF' || fail "the soak's records (above)"
import csv, sys
out = sys.argv[1]
runs = list(csv.reader(open(f"{out}/runs.csv")))
status = [r[2] for r in runs]
assert status.count("completed") >= 1, f"no completed run: {status}"
assert status.count("killed") >= 1, f"no client was killed: {status}"
assert not {"failed", "hung"} & set(status), f"a client failed: {runs}"
rows = list(csv.DictReader(open(f"{out}/samples.csv")))
assert len(rows) >= 15, f"{len(rows)} samples, want >= 15 (one every 2 s)"
assert all(int(r["rss_kb"]) > 0 and int(r["fds"]) > 0 for r in rows), "a sample without RSS or fds"
assert max(int(r["sessions"]) for r in rows) >= 2, "gtune_sessions never showed concurrent sessions"
assert int(rows[-1]["sessions"]) == 0, f"{rows[-1]['sessions']} sessions open at the end"
EOF
grep -q "ended: client down" "$tmp/soak/server.err" || fail "the server ended no session of a dead client"
grep -q "server: shutting down" "$tmp/soak/server.err" || fail "the server did not shut down on SIGTERM"
echo "soak_smoke: ok ($(grep -E '^  runs ' "$tmp/soak/summary.txt" | sed 's/^ *runs *//'))"
