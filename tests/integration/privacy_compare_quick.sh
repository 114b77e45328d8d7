#!/usr/bin/env bash
# The strict privacy protocol as a user runs it: config/examples/compare.toml --quick, its
# undefended and defended online designs (split, online: a privatize phase before online,
# every attack, the adaptive attacker; the other designs and seeds are left out only to keep CI
# short:
# unit tests check that every cell of the grid is a valid run, simulate_attacks runs
# privatize -> gradfree) writes a report
# with the worst step, the adaptive column and accuracy intervals; results.json of the defended
# run has the privatize phase, which sent no activation, and every attacked step.
set -uo pipefail
gtune="$1" src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

python3 - "$src/config/examples/compare.toml" "$tmp/grid.toml" <<'PY' || fail "grid"
import re, sys
text = open(sys.argv[1]).read()
head, *designs = re.split(r"(?m)^\[\[design\]\]\n", text)
keep = [d for d in designs if re.match(r'name = "(split|online)"', d)]
assert len(keep) == 2, keep
base = sys.argv[1].rsplit("/", 1)[0] + "/online.toml"
head = head.replace('base = "online.toml"', 'base = "%s"' % base)
head = head.replace('baseline = "centralized"', 'baseline = "split"')
assert "seeds = [0, 1, 2]" in head, "compare.toml's seeds changed: update this test"
head = head.replace("seeds = [0, 1, 2]", "seeds = [0]")  # one seed: CI time
open(sys.argv[2], "w").write(head + "".join("[[design]]\n" + d for d in keep))
PY
timeout 900 "$gtune" experiment --config "$tmp/grid.toml" --out "$tmp/out" --quick \
  >"$tmp/run.out" 2>"$tmp/run.err" || fail "experiment exited $?: $(tail -5 "$tmp/run.err")"
md="$tmp/out/report.md"
[ -s "$md" ] || fail "no report.md"
grep -q "worst step ROUGE-L | adaptive ROUGE-L" "$md" || fail "no strict columns: $(head -30 "$md")"
grep -q "^Attacker strength: the learned inversion of a1" "$md" || fail "no attacker strength line"
grep -q "| online | privatize->online | 0\.[0-9]* \[0\.[0-9]*, 0\.[0-9]*\]" "$md" ||
  fail "online row (privatize->online with an interval): $(grep '| online |' "$md")"
python3 - "$tmp/out" <<'PY' || fail "results (above)"
import csv, json, sys
out = sys.argv[1]
rows = {r["design"]: r for r in csv.DictReader(open(f"{out}/results.csv"))}
for d, r in rows.items():
    assert r["status"] == "ok", r
for d in ("split", "online"):
    assert rows[d]["worst_step_rouge_l"] != "", rows[d]
    assert rows[d]["adaptive_rouge_l"] != "", rows[d]
res = json.load(open(f"{out}/runs/online.all.s0/results.json"))
phases = res["clients"][0]["phases"]
assert [p["strategies"] for p in phases] == [["privatize"], ["online"]], phases
# Nothing but the emulator download and the session crossed in the privatize phase.
kinds = {b["kind"] for b in phases[0]["bytes"] if b["bytes"] > 0}
assert not kinds & {"activations_up", "activations_up.eval", "gradients_up"}, kinds
att = res["attacks"]
assert "online" in att["worst_step"] and "online" in att["worst_step_adaptive"], att.keys()
first_online = min(s["step"] for s in att["steps"] if s["strategy"] == "online")
assert first_online == 6, first_online  # the first message after 6 privatize steps
names = {s["attack"] for s in att["scores"]}
assert "adaptive_inversion_a1" in names, names
steps = res["clients"][0]["steps"]
assert all(-1 <= s["dcor"] <= 1 for s in steps), steps[:3]
assert any(s["inverter_accuracy"] >= 0 for s in steps if s["strategy"] == "privatize")
tuned = res["tasks"]["tasks"][0]["tuned"][0]
assert len(tuned["correct"]) == tuned["items"], tuned
PY
echo "ok"
