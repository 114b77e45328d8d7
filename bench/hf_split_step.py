#!/usr/bin/env python3
"""The split fine-tuning step of bench/bench_split_step.cpp, written with PyTorch + transformers.

The same step as the C++ bench's variant A (without its wire): OPTForCausalLM cut at n_in / n_out
like gtune cuts it -- the client's input adapter is the embeddings (tokens + learned positions,
project_in) and the first n_in decoder layers; the server's backbone the layers between; the
client's output adapter the last n_out layers, the final layer norm, project_out and the LM head.
One step: input adapter -> a1 (detached at the cut) -> backbone -> a2 (detached at the cut) ->
output adapter -> mean next-token cross-entropy -> backward to a2 -> g2 -> backward through the
backbone -> g1 -> backward through the input adapter -> AdamW step on the adapters (the backbone is
frozen). Batches have the C++ bench's shapes (--shapes, as it prints them), right-padded, with
random token ids. Warm-up rounds, then timed rounds over all batches; every step ends with
torch.cuda.synchronize() on a GPU. Prints one line of JSON with the median seconds per step.

Models: the embedded checkpoint directory (models/pretrained/opt-mini-gcide, F16 on disk,
computed in fp32 like gtune) via from_pretrained, or --model opt-1.3b-random: OPT-1.3B's shape
with random weights from a config (no download), the shape bench_split_step builds.

  python3 bench/hf_split_step.py --model models/pretrained/opt-mini-gcide --device cuda \\
      --shapes 8x24,8x25,8x64,8x30 --rounds 40
  python3 bench/hf_split_step.py --model opt-1.3b-random --device cuda --rounds 10

Needs python3 with torch and transformers (not Debian's archive: the GPU machine's PyTorch).
Exit status 3 (and an "error" in the JSON) when they are missing.
"""

import argparse
import json
import statistics
import sys
import time

# OPT-1.3B's config.json (facebook/opt-1.3b), dropout off: bench_split_step.cpp's kOpt13bConfig.
OPT_1P3B = {
    "model_type": "opt",
    "activation_function": "relu",
    "do_layer_norm_before": True,
    "enable_bias": True,
    "ffn_dim": 8192,
    "hidden_size": 2048,
    "max_position_embeddings": 2048,
    "num_attention_heads": 32,
    "num_hidden_layers": 24,
    "vocab_size": 50272,
    "word_embed_proj_dim": 2048,
    "tie_word_embeddings": True,
    "pad_token_id": 1,
    "bos_token_id": 2,
    "eos_token_id": 2,
    "dropout": 0.0,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "layerdrop": 0.0,
}
RANDOM_MODEL = "opt-1.3b-random"


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/pretrained/opt-mini-gcide",
                    help="checkpoint directory, or " + RANDOM_MODEL)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--shapes", default="8x24,8x25,8x64,8x30",
                    help="batch shapes BxT, comma-separated (the C++ bench prints its own)")
    ap.add_argument("--n-in", type=int, default=1)
    ap.add_argument("--n-out", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight-decay", type=float, default=0.0, help="gtune's default: 0")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds")
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds (all batches each)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = default")
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"],
                    help="transformers' attention implementation (gtune: plain matmul-softmax)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-check", action="store_true",
                    help="skip checking the split loss against the unsplit model on batch 0")
    args = ap.parse_args(argv)
    try:
        args.shape_list = [tuple(int(x) for x in s.lower().split("x")) for s in args.shapes.split(",")]
        if not args.shape_list or any(len(s) != 2 or s[0] < 1 or s[1] < 2 for s in args.shape_list):
            raise ValueError
    except ValueError:
        ap.error("--shapes: expected BxT,BxT,... with B >= 1 and T >= 2, got " + repr(args.shapes))
    if args.rounds < 1 or args.warmup < 0 or args.n_in < 0 or args.n_out < 0:
        ap.error("--rounds >= 1, --warmup >= 0, --n-in >= 0, --n-out >= 0")
    return args


def fail(message, status=3, **extra):
    print(json.dumps(dict({"impl": "pytorch+transformers", "error": message}, **extra)))
    sys.exit(status)


def build_model(args, torch, transformers):
    """The model in fp32, dropout off, with the asked attention implementation when supported."""
    from transformers import OPTConfig, OPTForCausalLM
    if args.model == RANDOM_MODEL:
        config = OPTConfig(**OPT_1P3B)
        torch.manual_seed(args.seed)
        try:
            model = OPTForCausalLM._from_config(config, attn_implementation=args.attn)
        except (TypeError, ValueError, AttributeError):
            model = OPTForCausalLM(config)
    else:
        try:
            model = OPTForCausalLM.from_pretrained(args.model, attn_implementation=args.attn)
        except (TypeError, ValueError):
            model = OPTForCausalLM.from_pretrained(args.model)
    model = model.to(torch.float32)  # transformers 5 loads a F16 checkpoint as F16 by default
    for key in ("dropout", "attention_dropout", "activation_dropout", "layerdrop"):
        if getattr(model.config, key, 0):
            fail("the model has %s = %s; gtune has no dropout" % (key, getattr(model.config, key)))
    return model


class Split:
    """OPTForCausalLM cut like gtune's Segments; each part takes and returns plain tensors."""

    def __init__(self, torch, model, n_in, n_out):
        self.torch = torch
        self.model = model
        self.dec = model.model.decoder
        layers = list(self.dec.layers)
        if n_in + n_out >= len(layers):
            fail("n_in + n_out must leave the backbone at least one of %d layers" % len(layers))
        self.input_layers = layers[:n_in]
        self.backbone_layers = layers[n_in:len(layers) - n_out]
        self.output_layers = layers[len(layers) - n_out:]

    def mask_bias(self, mask, dtype):
        """(B, 1, T, T) additive causal + padding mask, as gtune's make_attention_context."""
        torch = self.torch
        T = mask.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool, device=mask.device).tril()
        allowed = causal[None, None] & mask.bool()[:, None, None, :]
        zero = torch.zeros((), dtype=dtype, device=mask.device)
        low = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=mask.device)
        return torch.where(allowed, zero, low)

    @staticmethod
    def run_layers(layers, x, bias):
        for layer in layers:
            out = layer(x, attention_mask=bias)
            x = out[0] if isinstance(out, (tuple, list)) else out  # tuples before transformers 5
        return x

    def input_adapter(self, ids, mask, bias):
        torch, dec = self.torch, self.dec
        x = dec.embed_tokens(ids)
        if getattr(dec, "project_in", None) is not None:
            x = dec.project_in(x)
        # Positions count real tokens (OPT's learned positions start at 2); called as a plain
        # nn.Embedding so the module's forward signature (it changed across versions) is moot.
        positions = (torch.cumsum(mask, 1) * mask - 1).long() + getattr(dec.embed_positions, "offset", 2)
        x = x + torch.nn.Embedding.forward(dec.embed_positions, positions)
        return self.run_layers(self.input_layers, x, bias)

    def backbone(self, a1, bias):
        return self.run_layers(self.backbone_layers, a1, bias)

    def output_adapter(self, a2, bias):
        dec = self.dec
        x = self.run_layers(self.output_layers, a2, bias)
        if getattr(dec, "final_layer_norm", None) is not None:
            x = dec.final_layer_norm(x)
        if getattr(dec, "project_out", None) is not None:
            x = dec.project_out(x)
        return self.model.lm_head(x)

    def adapter_parameters(self):
        dec, seen, out = self.dec, set(), []
        modules = [dec.embed_tokens, dec.embed_positions] + self.input_layers + self.output_layers
        for name in ("project_in", "final_layer_norm", "project_out"):
            if getattr(dec, name, None) is not None:
                modules.append(getattr(dec, name))
        modules.append(self.model.lm_head)  # tied to embed_tokens: kept once
        for m in modules:
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out


def lm_loss(torch, logits, labels):
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, V).float(), labels[:, 1:].reshape(-1), ignore_index=-100)


def make_batches(torch, shapes, vocab, seed, device):
    """Right-padded batches of random ids: row 0 full, the others 1/2 to all of T real tokens."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for B, T in shapes:
        ids = torch.randint(3, min(vocab, 8192), (B, T), generator=gen)
        lengths = torch.randint(max(1, T // 2), T + 1, (B,), generator=gen)
        lengths[0] = T
        mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
        labels = ids.masked_fill(mask == 0, -100)
        out.append(tuple(t.to(device) for t in (ids, mask, labels)))
    return out


def main(argv):
    args = parse_args(argv)
    try:
        import torch
    except ImportError as e:
        fail("python3 has no torch (%s)" % e)
    try:
        import transformers
    except ImportError as e:
        fail("python3 has no transformers (%s)" % e, torch=torch.__version__)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        fail("--device %s: torch.cuda.is_available() is false" % args.device, status=2)
    cuda = device.type == "cuda"
    # Full fp32 matmuls, as LibTorch's default (TF32 off) in gtune.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    t_load = time.perf_counter()
    model = build_model(args, torch, transformers).to(device)
    load_s = time.perf_counter() - t_load
    model.train()  # dropout is 0 (checked): train mode changes nothing but is what tuning uses
    split = Split(torch, model, args.n_in, args.n_out)
    for p in model.parameters():
        p.requires_grad_(False)
    adapters = split.adapter_parameters()
    for p in adapters:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(adapters, lr=args.lr, weight_decay=args.weight_decay)
    batches = make_batches(torch, args.shape_list, model.config.vocab_size, args.seed, device)

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    def step(ids, mask, labels):
        # Client: input adapter; a1 crosses the cut detached.
        bias_client = split.mask_bias(mask, torch.float32)
        a1 = split.input_adapter(ids, mask, bias_client)
        # Server: backbone from a received a1 (a leaf), its own mask.
        a1_server = a1.detach().requires_grad_(True)
        a2 = split.backbone(a1_server, split.mask_bias(mask, torch.float32))
        # Client: output adapter on the received a2, loss, g2.
        a2_client = a2.detach().requires_grad_(True)
        loss = lm_loss(torch, split.output_adapter(a2_client, bias_client), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # Server: g2 through the frozen backbone to g1.
        a2.backward(a2_client.grad)
        # Client: g1 through the input adapter, then the optimizer step.
        a1.backward(a1_server.grad)
        optimizer.step()
        return loss.item()

    check = None
    if not args.no_check:  # the split computes what the unsplit model computes (before training)
        with torch.no_grad():
            ids, mask, labels = batches[0]
            bias = split.mask_bias(mask, torch.float32)
            split_loss = lm_loss(torch, split.output_adapter(
                split.backbone(split.input_adapter(ids, mask, bias), bias), bias), labels).item()
            whole_loss = lm_loss(torch, model(input_ids=ids, attention_mask=mask).logits, labels).item()
        check = abs(split_loss - whole_loss)

    times, losses = [], []
    for r in range(args.warmup + args.rounds):
        total = 0.0
        for ids, mask, labels in batches:
            sync()
            t0 = time.perf_counter()
            losses.append(step(ids, mask, labels))
            sync()
            total += time.perf_counter() - t0
        if r >= args.warmup:
            times.append(total / len(batches))

    params = sum(p.numel() for p in model.parameters())  # each tensor once (tied head)
    print(json.dumps({
        "impl": "pytorch+transformers",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": args.model,
        "parameters": params,
        "trainable_parameters": sum(p.numel() for p in adapters),
        "device": str(device) + (" (%s)" % torch.cuda.get_device_name(device) if cuda else ""),
        "attn_implementation": getattr(model.config, "_attn_implementation", args.attn),
        "n_in": args.n_in,
        "n_out": args.n_out,
        "shapes": ["%dx%d" % s for s in args.shape_list],
        "warmup": args.warmup,
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "load_s": round(load_s, 3),
        "median_s_per_step": statistics.median(times),
        "min_s_per_step": min(times),
        "max_s_per_step": max(times),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "check_split_vs_whole_loss": check,
    }))
    if check is not None and check > 1e-3:
        print("hf_split_step: the split loss differs from the unsplit model's by %g" % check,
              file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
