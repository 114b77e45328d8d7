#!/usr/bin/env bash
# gtune experiment as a user runs it: a small grid (two designs, --quick) writes report.md,
# results.csv and the plots; a rerun reuses the finished runs; a typo in a design fails before
# anything runs. gtune audit scores the attacks on the user's own text and gates on a limit.
set -uo pipefail
gtune="$1" src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat >"$tmp/grid.toml" <<TOML
[experiment]
base = "$src/tests/integration/online-plain.toml"
set = ["attacker.enabled=true", "attacker.attacks=embedding_inversion,learned_inversion_a1,membership_inference"]
tasks = ["word_to_hypernym"]
seeds = [0]
baseline = "split"
undefended = "split"
quick = ["training.steps=3", "data.train_examples=48", "data.valid_examples=8",
         "attacker.fit_steps=10", "attacker.max_batches=1", "evaluation.items=12"]

[[design]]
name = "split"
set = ["strategy.kind=split"]

[[design]]
name = "offline"
set = ["strategy.kind=offline"]
TOML

timeout 900 "$gtune" experiment --config "$tmp/grid.toml" --out "$tmp/out" --quick \
  >"$tmp/run.out" 2>"$tmp/run.err" || fail "experiment exited $?: $(tail -5 "$tmp/run.err")"
grep -q "\[2/2\] offline.word_to_hypernym.s0: done" "$tmp/run.out" || fail "progress: $(cat "$tmp/run.out")"
for f in report.md results.csv points.dat plots.gp; do
  [ -s "$tmp/out/$f" ] || fail "no $f"
done
if command -v gnuplot >/dev/null; then
  for f in accuracy_vs_attack.png accuracy_vs_bytes.png; do
    grep -q "P   N   G" <<<"$(head -c 8 "$tmp/out/$f" | od -An -c)" || fail "$f is not a PNG"
  done
else
  echo "note: gnuplot not installed here, PNGs not checked"
fi
python3 - "$tmp/out" <<'PY' || fail "report content (above)"
import csv, json, sys
out = sys.argv[1]
rows = list(csv.DictReader(open(f"{out}/results.csv")))
assert [r["design"] for r in rows] == ["split", "offline"], rows
split, offline = rows
for r in rows:
    assert r["status"] == "ok", r
    assert r["task"] == "word_to_hypernym", r
    assert 0 <= float(r["accuracy"]) <= 1, r
    assert float(r["client_memory_mb"]) > 0 and float(r["peak_rss_mb"]) > 0, r
# The numbers are the runs' own results.json.
res = json.load(open(f"{out}/runs/split.word_to_hypernym.s0/results.json"))
acc = res["tasks"]["tasks"][0]["tuned"][0]["acc"]
assert abs(float(split["accuracy"]) - acc) < 1e-4, (split["accuracy"], acc)
assert int(split["bytes_up_per_step"]) == round(res["totals"]["step_bytes_up"] / res["totals"]["steps"])
assert float(split["delta_vs_baseline_points"]) == 0
assert split["best_attack"] in ("embedding_inversion", "learned_inversion_a1"), split
assert split["membership_auc"] == "", "membership inference ran where no adapter is returned"
assert offline["best_attack"] == "" and offline["best_attack_rouge_l"] == "", offline
assert 0 <= float(offline["membership_auc"]) <= 1, offline
assert float(offline["bytes_up_per_step"]) == 0 and int(offline["bytes_total"]) > 0, offline
md = open(f"{out}/report.md").read()
assert "| split | split |" in md and "| offline | offline |" in md, md
assert "## Targets (against split)" in md, md
PY

# A rerun finds both runs finished.
"$gtune" experiment --config "$tmp/grid.toml" --out "$tmp/out" --quick >"$tmp/rerun.out" 2>&1 ||
  fail "rerun exited $?"
[ "$(grep -c "finished earlier, reused" "$tmp/rerun.out")" = 2 ] || fail "rerun: $(cat "$tmp/rerun.out")"

# A typo in a design stops the experiment before any run, naming the design and the key.
sed 's/strategy.kind=offline/strategy.knd=offline/' "$tmp/grid.toml" >"$tmp/bad.toml"
"$gtune" experiment --config "$tmp/bad.toml" --out "$tmp/bad" >"$tmp/bad.out" 2>&1 &&
  fail "a bad grid was accepted"
grep -q 'design "offline".*strategy.knd' "$tmp/bad.out" || fail "bad grid: $(cat "$tmp/bad.out")"
[ ! -d "$tmp/bad/runs/split.word_to_hypernym.s0" ] || fail "a run started before the grid was checked"

# gtune audit: the attacks on the client's own text; a limit of 0 fails (exit 2).
audit=(--config "$src/config/examples/split.toml" --set training.steps=2
  --set data.train_examples=32 --set data.valid_examples=8 --set attacker.fit_steps=10
  --set attacker.max_batches=1 --set attacker.attacks=embedding_inversion,learned_inversion_a1 --quiet)
"$gtune" audit "${audit[@]}" --out "$tmp/audit" --max-rouge 1 >"$tmp/audit.out" 2>&1 ||
  fail "audit exited $?: $(tail -5 "$tmp/audit.out")"
grep -q "^verdict: PASS" "$tmp/audit.out" || fail "audit: $(cat "$tmp/audit.out")"
grep -q "^learned_inversion_a1 *split" "$tmp/audit.out" || fail "audit table: $(cat "$tmp/audit.out")"
[ -s "$tmp/audit/audit.json" ] || fail "no audit.json"
"$gtune" audit "${audit[@]}" --max-rouge 0 >"$tmp/audit0.out" 2>&1
[ $? = 2 ] || fail "audit over the limit should exit 2: $(tail -3 "$tmp/audit0.out")"
grep -q "^verdict: FAIL" "$tmp/audit0.out" || fail "audit0: $(cat "$tmp/audit0.out")"
"$gtune" audit --config "$src/config/examples/centralized.toml" >"$tmp/central.out" 2>&1 &&
  fail "audit of the centralized baseline was accepted"
grep -q "nothing to audit" "$tmp/central.out" || fail "centralized audit: $(cat "$tmp/central.out")"
echo "ok"
