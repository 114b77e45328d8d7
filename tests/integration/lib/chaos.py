#!/usr/bin/env python3
"""Chaos: every party of a two-phase plan (offline, then online) as its own node process,
each killed with SIGKILL at a seeded random point and started again with the same command;
the run must end as if nothing happened.

Parties: a server (tapped by the attacker), an emulator builder, an attacker, a scheduler and
three clients. Each is killed once per seed: the builder while a client downloads its emulator,
the others when the run has reported a random number of steps (read from the scheduler's
checkpoint). After the run every client's adapters equal `gtune simulate`'s of the same plan
byte for byte, and the results (each step's loss, evaluations, training bytes up and down)
are equal; bytes of steps begun again after a lost server are counted apart
(totals.retried_step_bytes) and printed.

usage: chaos.py GTUNE SRC [--seeds 1,2,3] [--keep]
"""
import argparse
import filecmp
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CLIENTS = 3
STEPS = 8  # per phase
ROLES = ["server", "builder", "attacker", "scheduler"] + [f"client{k}" for k in range(CLIENTS)]


def overrides(src):
    sets = {
        "scheduler.clients": CLIENTS,
        "scheduler.control": "",
        "phase.0.strategy": "offline",
        "phase.0.steps": STEPS,
        "phase.1.strategy": "online",
        "phase.1.steps": STEPS,
        "training.batch": 4,
        "data.train_examples": CLIENTS * STEPS * 4,
        "data.valid_examples": 8,
        "evaluation.generation_examples": 0,
        "emulator.chunk_bytes": 4096,  # a download long enough to be cut
        "attacker.enabled": "true",
        "attacker.attacks": '["embedding_inversion"]',
        "attacker.every": 4,
        "run.checkpoint_every": 2,
        "network.reconnect_seconds": 120,
    }
    args = ["--config", os.path.join(src, "config/examples/plan.toml"), "--quiet", "--metrics", "0"]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    return args


class Node:
    """One party's process, started again on the same port after a kill."""

    def __init__(self, gtune, common, tmp, name, role, extra, listens):
        self.gtune, self.common, self.tmp = gtune, common, tmp
        self.name, self.role, self.extra, self.listens = name, role, extra, listens
        self.port, self.proc, self.starts = 0, None, 0

    def start(self):
        self.starts += 1
        # --wait: a node started again while a peer of its restarts too waits for it.
        cmd = [self.gtune, "node", "--role", self.role, "--wait", "120"] + self.common + \
            self.extra()
        port_file = os.path.join(self.tmp, self.name + ".port")
        if self.listens:
            if os.path.exists(port_file):
                os.remove(port_file)
            cmd += ["--listen", f"127.0.0.1:{self.port}", "--port-file", port_file]
        log = open(os.path.join(self.tmp, f"{self.name}.{self.starts}.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        if self.listens:
            wait_until(120, f"{self.name} to listen", lambda: os.path.getsize(port_file) > 0
                       if os.path.exists(port_file) else False, self)
            self.port = int(open(port_file).read())

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def alive(self):
        return self.proc.poll() is None


def wait_until(seconds, what, ok, node=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if ok():
            return
        if node is not None and not node.alive():
            raise SystemExit(f"FAIL: {node.name} exited with {node.proc.returncode} "
                             f"waiting for {what}")
        time.sleep(0.05)
    raise SystemExit(f"FAIL: timed out after {seconds}s waiting for {what}")


def steps_reported(ckpt):
    try:
        return json.load(open(os.path.join(ckpt, "scheduler.json")))["steps_reported"]
    except (OSError, ValueError, KeyError):
        return 0


def downloading(tmp):
    return bool(glob.glob(os.path.join(tmp, "client*", "transfers", "*", "*.part")))


def run_seed(gtune, src, common, ref, tmp, seed):
    nodes = {}
    try:
        chaos_run(gtune, src, common, ref, tmp, seed, nodes)
    finally:  # whatever happened, no node outlives the test
        for n in nodes.values():
            if n.proc is not None and n.alive():
                n.kill()


def chaos_run(gtune, src, common, ref, tmp, seed, nodes):
    os.makedirs(tmp)
    ckpt = os.path.join(tmp, "ckpt")

    def node(name, role, extra, listens):
        nodes[name] = Node(gtune, common, tmp, name, role, extra, listens)
        return nodes[name]

    at = lambda n: f"127.0.0.1:{nodes[n].port}"
    node("attacker", "attacker", lambda: ["--out", os.path.join(tmp, "attacker")], True).start()
    node("server", "server", lambda: ["--attacker", at("attacker"),
                                      "--out", os.path.join(tmp, "server")], True).start()
    node("builder", "builder", lambda: ["--out", os.path.join(tmp, "builder")], True).start()
    node("scheduler", "scheduler", lambda: ["--attacker", at("attacker"),
                                            "--set", f"run.checkpoint_dir={ckpt}",
                                            "--out", os.path.join(tmp, "scheduler")], True).start()
    for k in range(CLIENTS):
        node(f"client{k}", "client",
             lambda k=k: ["--connect", at("server"), "--builder", at("builder"),
                          "--scheduler", at("scheduler"), "--shard", str(k),
                          "--set", f"run.checkpoint_dir={ckpt}",
                          "--out", os.path.join(tmp, f"client{k}")], False).start()

    # The kill points: the builder during a download, the others at a random number of steps.
    rng = random.Random(seed)
    total = 2 * STEPS * CLIENTS
    points = {r: rng.randint(1, total - 2) for r in ROLES if r != "builder"}
    killed = {}
    builder_delay = rng.uniform(0.0, 0.3)
    download_seen = None
    done = lambda: not nodes["scheduler"].alive() and all(
        not nodes[f"client{k}"].alive() for k in range(CLIENTS))
    deadline = time.time() + 600
    while not done():
        if time.time() > deadline:
            raise SystemExit("FAIL: the run did not end within 600 s")
        progress = steps_reported(ckpt)
        if "builder" not in killed:
            if download_seen is None and downloading(tmp):
                download_seen = time.time()
            if download_seen is not None and time.time() - download_seen >= builder_delay:
                killed["builder"] = f"{builder_delay:.2f} s into a download"
                nodes["builder"].kill()
                nodes["builder"].start()
        for role, point in sorted(points.items(), key=lambda x: x[1]):
            if role in killed or progress < point:
                continue
            n = nodes[role]
            if not n.alive():  # it ended already (a client after the run)
                killed[role] = f"after the end (step {point})"
                continue
            killed[role] = f"at {progress} steps reported"
            n.kill()
            n.start()
        time.sleep(0.05)
    for name in ["scheduler"] + [f"client{k}" for k in range(CLIENTS)]:
        code = nodes[name].proc.returncode
        if code != 0:
            raise SystemExit(f"FAIL: seed {seed}: {name} exited with {code} "
                             f"(logs in {tmp})")
    for name in ["server", "builder", "attacker"]:
        if nodes[name].alive():
            nodes[name].proc.send_signal(signal.SIGTERM)
    for name in ["server", "builder", "attacker"]:
        try:
            nodes[name].proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            nodes[name].kill()

    # The same adapters and results as the uninterrupted run.
    names = [c["client"] for c in json.load(open(os.path.join(ref, "results.json")))["clients"]]
    for k, name in enumerate(names):
        got = os.path.join(tmp, f"client{k}", "adapters.safetensors")
        if not filecmp.cmp(os.path.join(ref, f"adapters-{name}.safetensors"), got, shallow=False):
            raise SystemExit(f"FAIL: seed {seed}: client {name}'s adapters differ from gtune "
                             f"simulate's (logs in {tmp})")
        plugged = os.path.join(tmp, "server", f"plugged-{name}.safetensors")
        if not filecmp.cmp(os.path.join(ref, f"plugged-{name}.safetensors"), plugged,
                           shallow=False):
            raise SystemExit(f"FAIL: seed {seed}: the server's plugged adapters of {name} differ")
    r = json.load(open(os.path.join(ref, "results.json")))
    g = json.load(open(os.path.join(tmp, "scheduler", "results.json")))
    assert [c["client"] for c in g["clients"]] == names, [c["client"] for c in g["clients"]]
    for rc, gc in zip(r["clients"], g["clients"]):
        who = f"seed {seed}: client {gc['client']}"
        assert [s["step"] for s in gc["steps"]] == list(range(1, 2 * STEPS + 1)), who
        assert [s["loss"] for s in gc["steps"]] == [s["loss"] for s in rc["steps"]], \
            f"{who}: losses differ"
        assert [(e["step"], e["loss"]) for e in gc["evals"]] == \
            [(e["step"], e["loss"]) for e in rc["evals"]], f"{who}: evaluations differ"
        for key in ("step_bytes_up", "step_bytes_down"):
            assert gc["totals"][key] == rc["totals"][key], \
                f"{who}: {key} {gc['totals'][key]} vs {rc['totals'][key]}"
        assert [s["bytes"] for s in gc["steps"]] == [s["bytes"] for s in rc["steps"]], \
            f"{who}: bytes of some step differ"
    retried = g["totals"].get("retried_step_bytes", 0)
    kills = ", ".join(f"{r} {killed.get(r, 'not killed (the run ended first)')}" for r in ROLES)
    print(f"seed {seed}: equal to the uninterrupted run; killed {kills}; "
          f"{retried} bytes of steps begun again", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gtune")
    ap.add_argument("src")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    common = overrides(a.src)
    tmp = tempfile.mkdtemp(prefix="gt_chaos_")
    ok = False
    try:
        ref = os.path.join(tmp, "ref")
        code = subprocess.call([a.gtune, "simulate"] + common + ["--out", ref],
                               stdout=open(os.path.join(tmp, "ref.log"), "w"),
                               stderr=subprocess.STDOUT)
        if code != 0:
            raise SystemExit(f"FAIL: the reference simulation exited with {code}")
        for seed in (int(s) for s in a.seeds.split(",")):
            run_seed(a.gtune, a.src, common, ref, os.path.join(tmp, f"seed{seed}"), seed)
        ok = True
    finally:
        if a.keep or not ok:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
