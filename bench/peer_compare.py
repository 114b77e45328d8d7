#!/usr/bin/python3
"""gtune's split step against the same step in plain PyTorch, interleaved, on the same batches.

Runs bench_split_step (variant A: client and server objects, every message encoded and decoded)
and bench/peer_split_step.py (the step as a Python trainer writes it) alternately, --pairs times
each, on the batches bench_split_step makes from WordNet (dumped once, read by the peer), and
prints each side's median seconds per step, the ratio peer / gtune per pair and its median, and
each process's peak RSS. --ablate adds gtune with run.packed_batches and/or
run.label_only_logits off, to show what each buys on its own (both off: the peer's computation).
--parties adds each party's peak RSS as its own process: gtune's variant C (the client in
bench_split_step's process, holding its adapters only, the server in a child process) and the
peer's --party client / --party server.

  /usr/bin/python3 bench/peer_compare.py --pairs 5 --rounds 5 --ablate
  /usr/bin/python3 bench/peer_compare.py --model opt-1.3b-random --train lora --batch 4 \\
      --max-len 128 --batches 2 --pairs 1 --rounds 1

Needs Debian's python3-torch (apt-get install python3-torch) and a release build
(scripts/build release bench_split_step).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("failed (%d): %s\n%s%s" % (out.returncode, " ".join(cmd), out.stdout[-2000:],
                                            out.stderr[-2000:]))
    return out.stdout


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=os.path.join(ROOT, "build/release/bench/bench_split_step"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/pretrained/opt-mini-gcide"))
    ap.add_argument("--pairs", type=int, default=5, help="alternations of gtune and the peer")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds of every batch per run")
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--synthetic", type=int, default=0,
                    help="random batches of this length (rows T/2..T real) instead of WordNet's")
    ap.add_argument("--train", default="full", choices=["full", "lora"],
                    help="the adapters both sides train: full, or LoRA on q_proj/v_proj")
    ap.add_argument("--ablate", action="store_true",
                    help="also gtune with packing and/or label-only logits off")
    ap.add_argument("--parties", action="store_true",
                    help="also each party's peak RSS in a process of its own, both sides")
    args = ap.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="peer_compare.")
    batches = os.path.join(tmp, "batches.safetensors")
    common = ["--model", args.model, "--bytes", "0", "--warmup", "1",
              "--rounds", str(args.rounds), "--batches", str(args.batches), "--batch",
              str(args.batch), "--max-len", str(args.max_len), "--threads", str(args.threads),
              "--train", args.train, "--synthetic", str(args.synthetic)]

    def gtune(packed=1, label_only=1, dump=False, variant="A"):
        out = os.path.join(tmp, "gtune.json")
        cmd = [args.bench] + common + ["--packed", str(packed), "--label-only", str(label_only),
                                       "--json", out, "--variants", variant]
        text = run(cmd + (["--dump-batches", batches] if dump else []))
        j = json.load(open(out))
        j["shapes_line"] = next((l for l in text.splitlines() if l.startswith("data:")), "")
        return j

    def peer(party="both"):
        cmd = ["/usr/bin/python3", os.path.join(ROOT, "bench/peer_split_step.py"), "--model",
               args.model, "--batches", batches, "--warmup", "1", "--rounds", str(args.rounds),
               "--threads", str(args.threads), "--train", args.train, "--party", party]
        return json.loads(run(cmd).strip().splitlines()[-1])

    first = gtune(dump=True)  # also makes the batches; counted as the first pair's gtune run
    print(first["shapes_line"])
    sides = {"gtune": [first], "peer": []}
    ablations = {"gtune packed only": (1, 0), "gtune label-only only": (0, 1),
                 "gtune both off": (0, 0)} if args.ablate else {}
    for name in ablations:
        sides[name] = []
    for i in range(args.pairs):
        if i > 0:
            sides["gtune"].append(gtune())
        sides["peer"].append(peer())
        for name, (packed, label_only) in ablations.items():
            sides[name].append(gtune(packed, label_only))
        g = sides["gtune"][-1]["median_s_per_step"]["A"]
        p = sides["peer"][-1]["median_s_per_step"]
        print("pair %d: gtune %.4f s/step, peer %.4f s/step, peer/gtune %.3f" % (i + 1, g, p, p / g),
              flush=True)
    p0 = sides["peer"][0]
    print("peer: %s, %d real tokens, %d labelled, threads %d" % (
        p0["impl"], p0["real_tokens"], p0["labelled_tokens"], p0["threads"]))
    # Same model, same batches, same start: the first step's loss must agree.
    print("first step's loss: gtune %.6f, peer %.6f" % (first["first_loss"]["A"], p0["first_loss"]))

    def secs(side, j):
        return j["median_s_per_step"]["A"] if side.startswith("gtune") else j["median_s_per_step"]

    summary = {}
    for side, runs in sides.items():
        s = [secs(side, j) for j in runs]
        rss = max(j["peak_rss_mb"] for j in runs)
        summary[side] = statistics.median(s)
        print("%-22s median %.4f s/step over %d runs (min %.4f, max %.4f); peak RSS %.0f MB" % (
            side, statistics.median(s), len(s), min(s), max(s), rss))
    ratios = [secs("peer", p) / secs("gtune", g) for p, g in zip(sides["peer"], sides["gtune"])]
    print("peer / gtune: median of per-pair ratios %.3f (min %.3f, max %.3f)" % (
        statistics.median(ratios), min(ratios), max(ratios)))
    for name in ablations:
        print("%s / gtune: %.3f" % (name, summary[name] / summary["gtune"]))
    if args.parties:
        c = gtune(variant="C")
        g_client, g_server = c["peak_rss_mb"], c["server_process_peak_rss_mb"]
        p_client, p_server = peer("client")["peak_rss_mb"], peer("server")["peak_rss_mb"]
        p_both = max(j["peak_rss_mb"] for j in sides["peer"])
        print("peak RSS per party, each its own process: gtune client %.0f MB, server %.0f MB; "
              "peer client %.0f MB, server %.0f MB (both in one process %.0f MB)" % (
                  g_client, g_server, p_client, p_server, p_both))
        print("client peak RSS gtune / peer: %.3f (against the peer holding both: %.3f)" % (
            g_client / p_client, g_client / p_both))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
