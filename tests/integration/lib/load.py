#!/usr/bin/env python3
"""Load: N client nodes (default 16) train against one server node at once.

Each client k runs a short online run of its own (run.name c<k>, training.seed k). First
every client runs alone against the server, one after another: its adapters and losses are
the reference, and the alone runs give one client's throughput. Then all N start at once.
Checked: every client finishes (exit 0), its adapters equal its run alone byte for byte and
its losses are the same; the server's sessions return to 0; its RSS and open file
descriptors after the load are within bounds of their idle values before it (what the load
left behind), and its peak RSS during the load is printed. Printed: steps/s across all
clients at once against one client alone.

usage: load.py GTUNE SRC [--clients 16] [--steps 6] [--rss-growth-mb 150] [--fd-growth 8]
               [--keep] [--summary FILE]
"""
import argparse
import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def status(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def sessions(metrics_port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
    for line in text.decode().splitlines():
        if line.startswith("gtune_sessions "):
            return float(line.split()[1])
    return -1


def wait_until(seconds, what, ok):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if ok():
            return
        time.sleep(0.1)
    raise SystemExit(f"FAIL: timed out after {seconds}s waiting for {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gtune")
    ap.add_argument("src")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rss-growth-mb", type=float, default=150)
    ap.add_argument("--fd-growth", type=int, default=8)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--summary")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="gt_load_")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    common = ["--config", os.path.join(a.src, "tests/integration/online-plain.toml"),
              "--set", f"training.steps={a.steps}", "--set", "training.batch=4",
              "--set", f"data.train_examples={4 * a.steps}", "--set", "data.valid_examples=8",
              "--set", "run.threads=1", "--set", "scheduler.control=",
              "--set", f"server.max_sessions={a.clients + 4}", "--quiet"]
    server = None
    clients = []  # every client process started, killed at the end if still running
    ok = False
    try:
        port_file = os.path.join(tmp, "server.port")
        metrics_port_file = os.path.join(tmp, "metrics.port")
        server = subprocess.Popen(
            [a.gtune, "node", "--role", "server", "--listen", "127.0.0.1:0",
             "--port-file", port_file, "--metrics", "127.0.0.1:0"] + common,
            stdout=open(os.path.join(tmp, "server.out"), "w"),
            stderr=open(os.path.join(tmp, "server.err"), "w"), env=env)
        wait_until(120, "the server", lambda: os.path.exists(port_file)
                   and os.path.getsize(port_file) > 0)
        port = int(open(port_file).read())
        metrics_url = lambda: re.search(r"metrics +http://127\.0\.0\.1:(\d+)/",
                                        open(os.path.join(tmp, "server.out")).read())
        wait_until(30, "the metrics address", lambda: metrics_url() is not None)
        metrics_port = int(metrics_url().group(1))
        time.sleep(1)
        idle_rss, idle_fds = status(server.pid, "VmRSS"), fds(server.pid)

        def client(k, where):
            clients.append(subprocess.Popen(
                [a.gtune, "node", "--role", "client", "--connect", f"127.0.0.1:{port}",
                 "--set", f"run.name=c{k:02d}", "--set", f"training.seed={k}", "--metrics", "0",
                 "--out", os.path.join(tmp, where, f"c{k:02d}")] + common,
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(tmp, f"{where}-c{k:02d}.err"), "w"), env=env))
            return clients[-1]

        to_s = lambda s: time.mktime(time.strptime(s[:19], "%Y-%m-%d %H:%M:%S")) + float(s[19:])

        def training_span(where, k):
            """When client k's training began (its held-out loss before step 1) and ended
            (after its last step), from its log: model loading is not counted."""
            first = last = None
            for line in open(os.path.join(tmp, f"{where}-c{k:02d}.err")):
                if "after 0 steps" in line:
                    first = to_s(line[1:24])
                if f"after {a.steps} steps" in line:
                    last = to_s(line[1:24])
            return first, last

        # Alone, one after another.
        alone_wall = 0.0
        for k in range(a.clients):
            t = time.time()
            p = client(k, "alone")
            if p.wait() != 0:
                raise SystemExit(f"FAIL: client c{k:02d} alone exited with {p.returncode}")
            alone_wall += time.time() - t
        alone_steps_s = a.clients * a.steps / sum(
            last - first for first, last in (training_span("alone", k) for k in range(a.clients)))

        # All at once, sampling the server.
        peak = {"rss": 0, "fds": 0, "sessions": 0}
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak["rss"] = max(peak["rss"], status(server.pid, "VmRSS"))
                peak["fds"] = max(peak["fds"], fds(server.pid))
                try:
                    peak["sessions"] = max(peak["sessions"], sessions(metrics_port))
                except OSError:
                    pass
                time.sleep(0.2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t = time.time()
        procs = [client(k, "together") for k in range(a.clients)]
        codes = [p.wait() for p in procs]
        together_wall = time.time() - t
        stop.set()
        sampler.join()
        failed = [f"c{k:02d} ({c})" for k, c in enumerate(codes) if c != 0]
        if failed:
            raise SystemExit(f"FAIL: clients exited non-zero under load: {', '.join(failed)}")
        # Steps/s across clients: all steps over the time from the first client's start of training
        # to the last one's end, against the same for one client alone.
        spans = [training_span("together", k) for k in range(a.clients)]
        span = max(last for _, last in spans) - min(first for first, _ in spans)
        together_steps_s = a.clients * a.steps / span

        for k in range(a.clients):
            name = f"c{k:02d}"
            same = filecmp.cmp(os.path.join(tmp, "alone", name, "adapters.safetensors"),
                               os.path.join(tmp, "together", name, "adapters.safetensors"),
                               shallow=False)
            if not same:
                raise SystemExit(f"FAIL: {name}'s adapters under load differ from its run alone")
            la, lt = (
                [s["loss"] for s in json.load(open(os.path.join(tmp, w, name, "results.json")))
                 ["clients"][0]["steps"]] for w in ("alone", "together"))
            if la != lt:
                raise SystemExit(f"FAIL: {name}'s losses under load differ: {lt} vs {la}")

        wait_until(60, "the server's sessions to close", lambda: sessions(metrics_port) == 0)
        time.sleep(2)
        after_rss, after_fds = status(server.pid, "VmRSS"), fds(server.pid)
        growth_mb = (after_rss - idle_rss) / 1024
        summary = (
            f"{a.clients} clients x {a.steps} steps (online, opt-mini, batch 4): all finished, "
            f"each equal to its run alone\n"
            f"throughput: {together_steps_s:.2f} steps/s across {a.clients} clients at once, "
            f"{alone_steps_s:.2f} steps/s for one client alone "
            f"({together_steps_s / alone_steps_s:.2f}x); wall {together_wall:.1f} s at once, "
            f"{alone_wall:.1f} s one after another (model loading included)\n"
            f"server RSS: idle {idle_rss / 1024:.0f} MB, peak {peak['rss'] / 1024:.0f} MB under "
            f"load ({peak['sessions']:.0f} sessions at most), {after_rss / 1024:.0f} MB idle "
            f"after ({growth_mb:+.0f} MB)\n"
            f"server fds: idle {idle_fds}, peak {peak['fds']}, {after_fds} idle after\n")
        print(summary, end="", flush=True)
        if a.summary:
            open(a.summary, "w").write(summary)
        if growth_mb > a.rss_growth_mb:
            raise SystemExit(f"FAIL: the server kept {growth_mb:.0f} MB after the load "
                             f"(limit {a.rss_growth_mb})")
        if after_fds - idle_fds > a.fd_growth:
            raise SystemExit(f"FAIL: the server kept {after_fds - idle_fds} more fds after the "
                             f"load (limit {a.fd_growth})")
        server.send_signal(signal.SIGTERM)
        if server.wait(timeout=60) != 0:
            raise SystemExit(f"FAIL: the server exited with {server.returncode} on SIGTERM")
        ok = True
    finally:
        for p in clients + ([server] if server is not None else []):
            if p.poll() is None:
                p.kill()
        if a.keep or not ok:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
