"""Load test of the web API: a real `composer serve` on loopback, N concurrent clients composing.

usage: python benchmarks/api_load.py [--model DIR] [--requests 400] [--clients 8] [--bars 16]
                                     [--workers 2] [--processes 1] [--engine auto] [--json]
It starts the server, waits for /api/health, sends a bounded number of 16-bar compose requests
from concurrent keep-alive clients, then stops the server and prints requests/s, p50, p99,
errors, and the server's peak resident memory (summed, and per process). Targets: >= 50 req/s, p99 <= 250 ms, 0 errors.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """A process and all its descendants (Linux /proc)."""
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for task in Path(f"/proc/{pids[i]}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
        i += 1
    return pids


def peak_rss_mb(pid: int) -> list[float]:
    """Peak resident memory (VmHWM) of the server and each of its worker processes, in MiB."""
    out = []
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out.append(int(line.split()[1]) / 1024)
        except OSError:
            pass
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by the server and its worker processes."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / hz
        except (OSError, IndexError, ValueError):
            pass
    return total


def client_transport(i: int) -> httpx.HTTPTransport:
    """Client i's connections, from an address of its own (127.0.0.x), as separate users'
    would come: the server gives each address a share of its work."""
    return httpx.HTTPTransport(local_address=f"127.0.{1 + i // 250}.{1 + i % 250}")


def start_server(args, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "composer", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(args.workers), "--processes", str(args.processes),
           "--queue", str(max(args.clients * 2, 16)), "--engine", args.engine, *extra]
    if args.model:
        cmd += ["--model", args.model]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    sys.exit("server did not become healthy in 120 s")


def run_load(base: str, body: dict, total: int, clients: int) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    left = [total]

    def client(i: int) -> None:
        with httpx.Client(base_url=base, timeout=30, transport=client_transport(i)) as c:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                t = time.perf_counter()
                try:
                    r = c.post("/api/compose", json=body)
                    ok = r.status_code == 200 and r.json().get("notes")
                    problem = None if ok else f"{r.status_code} {r.text[:120]}"
                except httpx.HTTPError as e:
                    problem = f"{type(e).__name__}: {e}"
                dt = time.perf_counter() - t
                with lock:
                    latencies.append(dt)
                    if problem:
                        errors.append(problem)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return latencies, errors, time.perf_counter() - t0


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs)) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model folder (default: the shipped model)")
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--bars", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2, help="server generation threads per process")
    ap.add_argument("--processes", type=int, default=1, help="server processes")
    ap.add_argument("--engine", default="auto",
                    help="what runs the model in the server: auto, numpy or torch")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    proc, base = start_server(args)
    try:
        body = {"bars": args.bars}
        _, errs, _ = run_load(base, body, 2 * args.clients, args.clients)
        if errs:
            sys.exit(f"warm-up failed: {errs[0]}")
        svg = httpx.post(f"{base}/api/compose", json=body, timeout=30).json().get("svg")
        cpu0 = cpu_seconds(proc.pid)
        lat, errors, wall = run_load(base, body, args.requests, args.clients)
        cpu_ms = 1000 * (cpu_seconds(proc.pid) - cpu0) / max(1, len(lat))
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    model = args.model or "shipped default (models/folk)"
    ok = len(lat) / wall >= 50 and percentile(lat, 99) <= 0.25 and not errors
    if args.json:
        print(json.dumps({
            "model": model, "engine": args.engine, "processes": args.processes, "workers": args.workers,
            "clients": args.clients, "bars": args.bars, "requests": len(lat),
            "requests_per_s": len(lat) / wall, "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * percentile(lat, 99), "max_ms": 1000 * max(lat),
            "errors": len(errors), "server_cpu_ms_per_request": cpu_ms, "peak_rss_mib": sum(rss),
            "peak_rss_mib_largest_process": max(rss, default=None),
            "cores": os.cpu_count(), "load_average": os.getloadavg()[0], "targets_met": ok}))
        return
    print(f"model: {model}   engine: {args.engine}   "
          f"server: {args.processes} process(es) x {args.workers} threads   "
          f"clients: {args.clients}   "
          f"bars: {args.bars}   notation: {'svg' if svg else 'none'}")
    print(f"{'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7} "
          f"{'server CPU ms/req':>18} {'peak RSS MiB':>13}")
    print(f"{len(lat):>9} {len(lat) / wall:>8.1f} {1000 * statistics.median(lat):>8.1f} "
          f"{1000 * percentile(lat, 99):>8.1f} {1000 * max(lat):>8.1f} {len(errors):>7} "
          f"{cpu_ms:>18.1f} {sum(rss):>13.1f}")
    print(f"peak RSS per process (MiB): {', '.join(f'{x:.0f}' for x in rss)}")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    if errors:
        print(f"first error: {errors[0]}")
    print("targets (>= 50 req/s, p99 <= 250 ms, 0 errors):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
