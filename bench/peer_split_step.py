#!/usr/bin/python3
"""The split fine-tuning step of bench/bench_split_step.cpp (variant A), written in plain PyTorch.

The CPU peer of issue 16: what a Python trainer computes for the same step, waste included. No
transformers here (Debian has none): OPT is written out below as transformers' OPT code computes it
(eager attention: q scaled, q k^T + additive causal/padding mask, softmax in float32; pre-LN
blocks; learned positions from the mask with offset 2; LM head tied to the token embedding), and
the step is bench/hf_split_step.py's: input adapter -> a1 (detached at the cut) -> backbone -> a2
(detached) -> output adapter -> every position's logits -> mean next-token cross-entropy ->
backward to a2 -> g2 -> backward through the frozen backbone -> g1 -> backward through the input
adapter -> AdamW on the adapters.

Batches: --batches FILE, the very batches bench_split_step steps on (its --dump-batches), or
random ones of --shapes. Models: a checkpoint directory (model.safetensors, F16/BF16/F32 on disk,
computed in fp32 like gtune) or opt-1.3b-random (OPT-1.3B's shape, random weights).
Prints one line of JSON: median seconds per step and the process's peak RSS.

--party client|server measures one party's memory as its own process would hold it: the client
holds the adapters' layers only and the backbone is the identity (its a2 is its a1: the same
client work and tensors), the server holds the backbone only and steps it on random a1 and g2.

  /usr/bin/python3 bench/peer_split_step.py --model models/pretrained/opt-mini-gcide \\
      --batches /tmp/batches.safetensors --rounds 10

Needs Debian's python3-torch (apt-get install python3-torch; run with /usr/bin/python3).
"""

import argparse
import json
import resource
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

OPT_1P3B = dict(hidden_size=2048, ffn_dim=8192, num_hidden_layers=24, num_attention_heads=32,
                vocab_size=50272, max_position_embeddings=2048, word_embed_proj_dim=2048,
                do_layer_norm_before=True, activation_function="relu", enable_bias=True)
RANDOM_MODEL = "opt-1.3b-random"
POSITION_OFFSET = 2


def read_safetensors(path):
    """{name: float32 tensor} (F16, BF16 and F32 on disk)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        raw, shape, dtype = data[lo:hi], info["shape"], info["dtype"]
        if dtype == "F32":
            t = torch.from_numpy(np.frombuffer(raw, np.float32).copy())
        elif dtype == "F16":
            t = torch.from_numpy(np.frombuffer(raw, np.float16).astype(np.float32))
        elif dtype == "BF16":
            t = torch.from_numpy(np.frombuffer(raw, np.int16).copy()).view(torch.bfloat16).float()
        elif dtype == "I64":
            t = torch.from_numpy(np.frombuffer(raw, np.int64).copy())
        else:
            raise SystemExit("%s: tensor %s has dtype %s, not F16/BF16/F32/I64" % (path, name, dtype))
        out[name] = t.reshape(shape)
    return out


class LoraLinear(nn.Linear):
    """nn.Linear, plus PEFT's LoRA when enabled: y = W x + b + (alpha / r) B A x, B = 0 at start."""

    def __init__(self, *args):
        super().__init__(*args)
        self.lora_A = self.lora_B = None

    def enable_lora(self, rank, alpha):
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=5 ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank))
        self.lora_scale = alpha / rank

    def forward(self, x):
        y = super().forward(x)
        if self.lora_A is not None:
            y = y + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.lora_scale
        return y


class Attention(nn.Module):
    def __init__(self, c, heads, bias):
        super().__init__()
        self.heads, self.head_dim = heads, c // heads
        self.scaling = self.head_dim ** -0.5
        self.q_proj, self.k_proj = LoraLinear(c, c, bias), LoraLinear(c, c, bias)
        self.v_proj, self.out_proj = LoraLinear(c, c, bias), LoraLinear(c, c, bias)

    def forward(self, x, mask_bias):
        B, T, C = x.shape
        heads = lambda t: t.view(B, T, self.heads, self.head_dim).transpose(1, 2)
        q, k, v = heads(self.q_proj(x) * self.scaling), heads(self.k_proj(x)), heads(self.v_proj(x))
        w = torch.matmul(q, k.transpose(2, 3)) + mask_bias
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        return self.out_proj(torch.matmul(w, v).transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c, bias = cfg["hidden_size"], cfg.get("enable_bias", True)
        if not cfg.get("do_layer_norm_before", True) or cfg.get("activation_function") != "relu":
            raise SystemExit("peer_split_step: only pre-LN OPT with relu (the embedded model, 1.3B)")
        self.self_attn = Attention(c, cfg["num_attention_heads"], bias)
        self.self_attn_layer_norm = nn.LayerNorm(c)
        self.fc1, self.fc2 = nn.Linear(c, cfg["ffn_dim"], bias), nn.Linear(cfg["ffn_dim"], c, bias)
        self.final_layer_norm = nn.LayerNorm(c)

    def forward(self, x, mask_bias):
        x = x + self.self_attn(self.self_attn_layer_norm(x), mask_bias)
        return x + self.fc2(F.relu(self.fc1(self.final_layer_norm(x))))


class Opt(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if cfg.get("word_embed_proj_dim", cfg["hidden_size"]) != cfg["hidden_size"]:
            raise SystemExit("peer_split_step: project_in/out (OPT-350m) is not written here")
        c = cfg["hidden_size"]
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], c)
        self.embed_positions = nn.Embedding(cfg["max_position_embeddings"] + POSITION_OFFSET, c)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.final_layer_norm = nn.LayerNorm(c)

    def load(self, tensors, layers=None):
        """layers: {checkpoint layer index: this model's} for a party holding some layers only."""
        own = dict(self.named_parameters())
        for name, t in tensors.items():
            key = name[len("model.decoder."):] if name.startswith("model.decoder.") else name
            if key == "lm_head.weight":
                continue  # tied to the token embedding
            if layers is not None and key.startswith("layers."):
                index, rest = key[len("layers."):].split(".", 1)
                if int(index) not in layers:
                    continue  # another party's layer
                key = "layers.%d.%s" % (layers[int(index)], rest)
            if key not in own or own[key].shape != t.shape:
                raise SystemExit("peer_split_step: unexpected tensor %s %s" % (name, list(t.shape)))
            own[key].data.copy_(t)
            del own[key]
        if own:
            raise SystemExit("peer_split_step: the checkpoint lacks %s" % sorted(own)[:5])

    # The cut, as gtune's Segments and bench/hf_split_step.py's Split.
    def input_adapter(self, ids, mask, bias, n_in):
        positions = torch.cumsum(mask, 1) * mask - 1 + POSITION_OFFSET
        x = self.embed_tokens(ids) + self.embed_positions(positions)
        for layer in self.layers[:n_in]:
            x = layer(x, bias)
        return x

    def backbone(self, a1, bias, n_in, n_out):
        for layer in self.layers[n_in:len(self.layers) - n_out]:
            a1 = layer(a1, bias)
        return a1

    def output_adapter(self, a2, bias, n_out):
        for layer in self.layers[len(self.layers) - n_out:]:
            a2 = layer(a2, bias)
        return F.linear(self.final_layer_norm(a2), self.embed_tokens.weight)  # (B, T, V)

    def adapter_parameters(self, n_in, n_out, lora=None):
        """Full: every adapter parameter. lora=(rank, alpha): LoRA factors on the adapters' q_proj
        and v_proj (gtune's model.lora_targets default), only they train."""
        L = len(self.layers)
        layers = list(self.layers[:n_in]) + list(self.layers[L - n_out:])
        if lora:
            out = []
            for layer in layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.v_proj):
                    proj.enable_lora(*lora)
                    out += [proj.lora_A, proj.lora_B]
            return out
        mods = [self.embed_tokens, self.embed_positions, self.final_layer_norm] + layers
        return [p for m in mods for p in m.parameters()]


def mask_bias(mask):
    """(B, 1, T, T) additive causal + padding mask, as transformers' eager OPT."""
    T = mask.shape[1]
    allowed = torch.ones(T, T, dtype=torch.bool).tril()[None, None] & mask.bool()[:, None, None, :]
    return torch.zeros(()).masked_fill(~allowed, torch.finfo(torch.float32).min)


def lm_loss(logits, labels):
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), labels[:, 1:].reshape(-1),
                           ignore_index=-100)


def load_batches(args, vocab):
    if args.batches:
        t = read_safetensors(args.batches)
        n = len([k for k in t if k.endswith(".input_ids")])
        if n == 0:
            raise SystemExit("%s: no batch_N.input_ids tensors" % args.batches)
        return [tuple(t["batch_%d.%s" % (i, k)].long() for k in ("input_ids", "attention_mask", "labels"))
                for i in range(n)]
    gen = torch.Generator().manual_seed(args.seed)
    out = []
    for s in args.shapes.split(","):
        B, T = (int(x) for x in s.lower().split("x"))
        ids = torch.randint(3, vocab, (B, T), generator=gen)
        lengths = torch.randint(max(1, T // 2), T + 1, (B,), generator=gen)
        lengths[0] = T
        mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
        out.append((ids, mask, ids.masked_fill(mask == 0, -100)))
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/pretrained/opt-mini-gcide")
    ap.add_argument("--batches", default="", help="safetensors from bench_split_step --dump-batches")
    ap.add_argument("--shapes", default="8x24,8x25,8x64,8x30", help="random batches when no --batches")
    ap.add_argument("--n-in", type=int, default=1)
    ap.add_argument("--n-out", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", default="full", choices=["full", "lora"])
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--lora-alpha", type=float, default=16.0)
    ap.add_argument("--party", default="both", choices=["both", "client", "server"],
                    help="hold and step one party's layers only (its peak RSS)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    if args.model == RANDOM_MODEL:
        cfg = dict(OPT_1P3B)
    else:
        with open(args.model + "/config.json") as f:
            cfg = json.load(f)
    L = cfg["num_hidden_layers"]
    if args.n_in < 0 or args.n_out < 0 or args.n_in + args.n_out >= L:
        raise SystemExit("n_in + n_out must leave the backbone at least one of %d layers" % L)
    kept = list(range(L))  # the checkpoint's layers this process holds
    if args.party == "client":
        kept = kept[:args.n_in] + kept[L - args.n_out:]
    elif args.party == "server":
        kept = kept[args.n_in:L - args.n_out]
    cfg = dict(cfg, num_hidden_layers=len(kept))
    model = Opt(cfg)
    if args.model == RANDOM_MODEL:
        # HF's init, N(0, 0.02) weights, each tensor from a generator of its own as gtune's
        # make_decoder draws them (same order of tensors): both sides start from the same model.
        for position, (name, p) in enumerate(model.named_parameters()):
            gen = torch.Generator().manual_seed(args.seed * 1000003 + position)
            with torch.no_grad():
                if p.dim() > 1:
                    p.normal_(0.0, 0.02, generator=gen)
                elif name.endswith("norm.weight"):
                    p.fill_(1.0)
                else:
                    p.zero_()
    else:
        model.load(read_safetensors(args.model + "/model.safetensors"),
                   {k: i for i, k in enumerate(kept)})
    n_in, n_out = args.n_in, args.n_out
    if args.party == "server":
        n_in, n_out = 0, 0  # every layer it holds is the backbone
    for p in model.parameters():
        p.requires_grad_(False)
    lora = (args.lora_rank, args.lora_alpha) if args.train == "lora" else None
    adapters = [] if args.party == "server" else model.adapter_parameters(n_in, n_out, lora)
    for p in adapters:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(adapters, lr=args.lr, weight_decay=0.0) if adapters else None
    batches = load_batches(args, cfg["vocab_size"])
    gen = torch.Generator().manual_seed(args.seed)

    def server_step(ids, mask, labels):
        """The server's part: backbone forward on a1, backward of g2 to g1 (random a1, g2)."""
        B, T = ids.shape
        a1 = torch.randn(B, T, cfg["hidden_size"], generator=gen).requires_grad_(True)
        a2 = model.backbone(a1, mask_bias(mask), 0, 0)
        a2.backward(torch.randn(a2.shape, generator=gen))
        return 0.0

    def step(ids, mask, labels):
        if args.party == "server":
            return server_step(ids, mask, labels)
        bias_client = mask_bias(mask)
        a1 = model.input_adapter(ids, mask, bias_client, n_in)
        a1_server = a1.detach().requires_grad_(True)
        a2 = model.backbone(a1_server, mask_bias(mask), n_in, n_out)  # the identity for --party client
        a2_client = a2.detach().requires_grad_(True)
        loss = lm_loss(model.output_adapter(a2_client, bias_client, n_out), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        a2.backward(a2_client.grad)
        a1.backward(a1_server.grad)
        optimizer.step()
        return loss.item()

    times, losses = [], []
    for r in range(args.warmup + args.rounds):
        total = 0.0
        for ids, mask, labels in batches:
            t0 = time.perf_counter()
            losses.append(step(ids, mask, labels))
            total += time.perf_counter() - t0
        if r >= args.warmup:
            times.append(total / len(batches))
    print(json.dumps({
        "impl": "python+pytorch (plain OPT, eager attention)",
        "torch": torch.__version__,
        "model": args.model,
        "shapes": ["%dx%d" % tuple(b[0].shape) for b in batches],
        "real_tokens": int(sum(int(b[1].sum()) for b in batches)),
        "labelled_tokens": int(sum(int(b[2][:, 1:].ne(-100).sum()) for b in batches)),
        "threads": torch.get_num_threads(),
        "train": args.train,
        "party": args.party,
        "trainable_parameters": sum(p.numel() for p in adapters),
        "rounds": args.rounds,
        "median_s_per_step": statistics.median(times),
        "min_s_per_step": min(times),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
