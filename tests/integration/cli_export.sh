#!/usr/bin/env bash
# gtune export as a user runs it (issue 18): a full-tuned and a LoRA run exported as adapters
# (transformers' names; PEFT's layout) and as merged checkpoints; a merged checkpoint, loaded as
# an ordinary model, generates what the run's adapters generate; PEFT's formula on the source
# weights gives the merged weights; bad requests are refused and leave nothing behind.
set -uo pipefail
gtune="$1" src="$2"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cfg="$src/tests/integration/online-plain.toml"
base="$src/models/pretrained/opt-mini-gcide"
printf '%s\n' '{"prompt": "A cat is"}' '{"prompt": "Which word means: a dwelling?\nAnswer:"}' >"$tmp/p.jsonl"

for train in full lora; do
  set_train=(--set "model.train=$train")
  "$gtune" simulate --config "$cfg" "${set_train[@]}" --set training.steps=4 --set training.eval_every=0 \
    --set optimizer.lr=1e-2 --out "$tmp/run-$train" --quiet --metrics 0 >"$tmp/sim.out" 2>&1 ||
    fail "simulate ($train): $(tail -3 "$tmp/sim.out")"
  adapters="$tmp/run-$train/adapters.safetensors"
  for kind in adapters merged; do
    flag=()
    [ "$kind" = merged ] && flag=(--merged)
    "$gtune" export --config "$cfg" "${set_train[@]}" --adapters "$adapters" --out "$tmp/$kind-$train" \
      "${flag[@]}" >"$tmp/export.out" 2>&1 || fail "export $kind ($train): $(tail -3 "$tmp/export.out")"
    for f in config.json tokenizer.json vocab.json merges.txt gtune_export.json; do
      [ -f "$tmp/$kind-$train/$f" ] || fail "export $kind ($train) wrote no $f"
    done
  done
  # The merged checkpoint is an ordinary model: without adapters it generates what the run's
  # adapters plugged into the source generate.
  gen=(generate --config "$cfg" "${set_train[@]}" --prompts "$tmp/p.jsonl" --max-tokens 12 --json)
  "$gtune" "${gen[@]}" --adapters "$adapters" >"$tmp/tuned.jsonl" 2>/dev/null || fail "generate ($train)"
  "$gtune" "${gen[@]}" --set "model.path=$tmp/merged-$train" >"$tmp/merged.jsonl" 2>"$tmp/gen.err" ||
    fail "generate from the merged checkpoint ($train): $(tail -3 "$tmp/gen.err")"
  cmp -s "$tmp/tuned.jsonl" "$tmp/merged.jsonl" ||
    fail "the merged checkpoint ($train) generates otherwise: $(diff "$tmp/tuned.jsonl" "$tmp/merged.jsonl")"
done
[ -f "$tmp/adapters-full/adapters.safetensors" ] || fail "no adapters.safetensors (full)"
[ -f "$tmp/adapters-lora/adapter_config.json" ] || fail "no adapter_config.json (lora)"

# The files themselves, read without gtune: names, shapes, dtypes, PEFT's config and formula.
python3 - "$tmp" "$base" <<'PY' || fail "exported files (above)"
import array, json, random, struct, sys
tmp, base = sys.argv[1], sys.argv[2]

def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return h, 8 + n

def tensor(path, name):  # F32 or F16 as a flat list of floats, with its shape
    h, start = header(path)
    e = h[name]
    with open(path, "rb") as f:
        f.seek(start + e["data_offsets"][0])
        raw = f.read(e["data_offsets"][1] - e["data_offsets"][0])
    if e["dtype"] == "F32":
        a = array.array("f"); a.frombytes(raw); return list(a), e["shape"]
    assert e["dtype"] == "F16", e["dtype"]
    return [struct.unpack("<e", raw[i:i + 2])[0] for i in range(0, len(raw), 2)], e["shape"]

src, _ = header(f"{base}/model.safetensors")
for train in ("full", "lora"):
    merged, _ = header(f"{tmp}/merged-{train}/model.safetensors")
    assert set(merged) == set(src), set(merged) ^ set(src)
    for n in src:
        assert merged[n]["shape"] == src[n]["shape"], n
        assert merged[n]["dtype"] == "F32", (n, merged[n]["dtype"])

full, _ = header(f"{tmp}/adapters-full/adapters.safetensors")
assert set(full) <= set(src), set(full) - set(src)
for part in ("embed_tokens", "layers.0.", "layers.5.", "final_layer_norm"):
    assert any(part in n for n in full), part
assert not any(".layers.2." in n for n in full), "a backbone block in the adapters"

cfg = json.load(open(f"{tmp}/adapters-lora/adapter_config.json"))
assert cfg["peft_type"] == "LORA" and cfg["task_type"] == "CAUSAL_LM", cfg
assert cfg["r"] == 8 and cfg["lora_alpha"] == 16, cfg
assert sorted(cfg["target_modules"]) == ["q_proj", "v_proj"], cfg
assert cfg["layers_to_transform"] == [0, 5], cfg
peft_path = f"{tmp}/adapters-lora/adapter_model.safetensors"
peft, _ = header(peft_path)
assert len(peft) == 8, sorted(peft)
scale = cfg["lora_alpha"] / cfg["r"]
random.seed(0)
for layer in (0, 5):
    for proj in ("q_proj", "v_proj"):
        module = f"model.decoder.layers.{layer}.self_attn.{proj}"
        A, sa = tensor(peft_path, f"base_model.model.{module}.lora_A.weight")
        B, sb = tensor(peft_path, f"base_model.model.{module}.lora_B.weight")
        W, sw = tensor(f"{base}/model.safetensors", module + ".weight")
        M, _ = tensor(f"{tmp}/merged-lora/model.safetensors", module + ".weight")
        r = cfg["r"]
        assert sa == [r, sw[1]] and sb == [sw[0], r], (module, sa, sb, sw)
        assert any(abs(x) > 0 for x in B), f"{module}: lora_B never moved"
        for _ in range(200):
            i, j = random.randrange(sw[0]), random.randrange(sw[1])
            want = W[i * sw[1] + j] + scale * sum(B[i * r + k] * A[k * sw[1] + j] for k in range(r))
            got = M[i * sw[1] + j]
            assert abs(got - want) <= 1e-5 + 1e-5 * abs(want), (module, i, j, got, want)
PY

# --dtype: the weights and config.json say float16.
"$gtune" export --config "$cfg" --adapters "$tmp/run-full/adapters.safetensors" --out "$tmp/half" \
  --merged --dtype float16 >/dev/null 2>&1 || fail "export --dtype float16"
grep -q '"dtype": "float16"' "$tmp/half/config.json" || fail "config.json does not say float16"
python3 - "$tmp/half/model.safetensors" <<'PY' || fail "float16 export"
import json, struct, sys
f = open(sys.argv[1], "rb"); h = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
h.pop("__metadata__", None)
assert {e["dtype"] for e in h.values()} == {"F16"}, {e["dtype"] for e in h.values()}
PY

# Bad requests: a clear error, nothing half-written.
expect_error() {  # expect_error <pattern> <args...>
  local pattern="$1"
  shift
  if "$gtune" export --config "$cfg" "$@" >"$tmp/e.out" 2>&1; then fail "accepted: $*"; fi
  grep -q "$pattern" "$tmp/e.out" || fail "no clear error for $* (want '$pattern'): $(tail -2 "$tmp/e.out")"
}
expect_error "not an empty directory" --adapters "$tmp/run-full/adapters.safetensors" --out "$tmp/half"
expect_error "token_clusters" --set privacy.token_clusters=64 \
  --adapters "$tmp/run-full/adapters.safetensors" --out "$tmp/clusters"
expect_error 'was the run.s model.train "lora"' \
  --adapters "$tmp/run-lora/adapters.safetensors" --out "$tmp/mismatch"
expect_error "a PEFT adapter would leave it out" --set model.train=lora \
  --adapters "$tmp/run-full/adapters.safetensors" --out "$tmp/mismatch"
[ ! -e "$tmp/mismatch" ] || fail "a failed export left $tmp/mismatch"
ls "$tmp" | grep -q partial && fail "a failed export left a partial directory"
echo "cli_export: ok"
