"""The web API under abuse: a real `composer serve` on loopback, with the shipped model.

usage: python benchmarks/api_abuse.py [--model DIR] [--only abandoned overload connections
                                       determinism] [--connections 1000] [--seconds 15] [--json]

- abandoned: 18 clients post 64-bar best-of-16 composes and leave after 0.3 s; then an 8-bar
  compose is timed until answered (a 503 is retried after its Retry-After), and the server's
  CPU is watched after the clients left.
  Targets: the compose under 1 s; the CPU stops within 1 s.
- overload: 32 clients, each from its own address, post 64-bar best-of-16 composes for
  `--seconds`, waiting what a 503's `retry_after_s` says (times 0.5 to 1.5, as jitter) before
  trying again; health is polled meanwhile.
  Targets: admitted p99 <= 3 s; 503s within 50 ms, their estimate within a factor of 2 of the
  wait until the server next admitted a request; health p99 < 100 ms.
- connections: `--connections` connections open and send nothing or a header line a second;
  a normal client composes 8 bars meanwhile. Targets: each closed within its timeout (10 s)
  plus 1 s; the compose p50 < 200 ms.
- determinism: the same seeded request 40 times, then again after a restart.
  Target: all 80 answers byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import selectors
import socket
import threading
import time

import httpx
from api_load import client_transport, cpu_seconds, percentile, start_server

HEAVY = {"bars": 64, "best_of": 16}
LIGHT = {"bars": 8, "seed": 1}


def stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except Exception:
        proc.kill()


def abandoned(args) -> dict:
    proc, base = start_server(args)
    try:
        def leave_early(i: int) -> None:
            with httpx.Client(base_url=base, timeout=0.3, transport=client_transport(i)) as c:
                try:
                    c.post("/api/compose", json=HEAVY)
                except httpx.HTTPError:
                    pass

        threads = [threading.Thread(target=leave_early, args=(i,)) for i in range(18)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        left = time.monotonic()
        cpu_left = cpu_seconds(proc.pid)
        with httpx.Client(base_url=base, timeout=30, transport=client_transport(100)) as c:
            t0 = time.perf_counter()
            for attempt in range(1, 4):  # a 503 (the server not yet aware that they left) is
                r = c.post("/api/compose", json=LIGHT)  # retried after its Retry-After
                if r.status_code != 503:
                    break
                time.sleep(r.json()["retry_after_s"])
            light = time.perf_counter() - t0
        time.sleep(max(0.0, left + 1.0 - time.monotonic()))
        cpu_1s = cpu_seconds(proc.pid)
        time.sleep(2.0)
        cpu_3s = cpu_seconds(proc.pid)
        return {"light_compose_s": round(light, 3), "light_status": r.status_code,
                "light_attempts": attempt,
                "cpu_s_in_first_second_after": round(cpu_1s - cpu_left, 2),
                "cpu_s_in_the_2_s_after_that": round(cpu_3s - cpu_1s, 2),
                "ok": light < 1.0 and r.status_code == 200 and cpu_3s - cpu_1s < 0.2}
    finally:
        stop(proc)


def overload(args) -> dict:
    proc, base = start_server(args, tuple(args.extra))
    admitted, refused, health, errors = [], [], [], []  # (sent, seconds) / (sent, s, estimate)
    end = time.monotonic() + args.seconds
    lock = threading.Lock()

    def client(i: int) -> None:
        jitter = random.Random(i)
        with httpx.Client(base_url=base, timeout=60, transport=client_transport(i)) as c:
            while time.monotonic() < end:
                sent = time.monotonic()
                try:
                    r = c.post("/api/compose", json=HEAVY)
                except httpx.HTTPError as e:
                    errors.append(type(e).__name__)
                    continue
                took = time.monotonic() - sent
                with lock:
                    if r.status_code == 200:
                        admitted.append((sent, took))
                    elif r.status_code == 503:
                        refused.append((sent, took, r.json()["retry_after_s"]))
                    else:
                        errors.append(str(r.status_code))
                if r.status_code == 503:  # as a polite client does: the wait, with jitter
                    time.sleep(r.json()["retry_after_s"] * jitter.uniform(0.5, 1.5))

    def poll_health() -> None:
        with httpx.Client(base_url=base, timeout=10, transport=client_transport(200)) as c:
            while time.monotonic() < end:
                t0 = time.perf_counter()
                c.get("/api/health")
                health.append(time.perf_counter() - t0)
                time.sleep(0.05)

    try:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
        threads.append(threading.Thread(target=poll_health))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop(proc)
    starts = sorted(s for s, _ in admitted)
    ratios = []
    for sent, took, estimate in refused:
        nxt = next((s for s in starts if s > sent + took), None)
        if nxt is not None:
            ratios.append(estimate / max(1e-3, nxt - sent))
    within = sum(0.5 <= r <= 2 for r in ratios) / max(1, len(ratios))
    out = {"admitted": len(admitted), "refused": len(refused), "errors": len(errors),
           "admitted_p50_s": round(percentile([t for _, t in admitted], 50), 2) if admitted else None,
           "admitted_p99_s": round(percentile([t for _, t in admitted], 99), 2) if admitted else None,
           "refused_p50_ms": round(percentile([t for _, t, _ in refused], 50) * 1e3, 1)
           if refused else None,
           "refused_p99_ms": round(percentile([t for _, t, _ in refused], 99) * 1e3, 1)
           if refused else None,
           "retry_estimate_within_2x": round(within, 2),
           "retry_estimate_ratio_p50": round(percentile(ratios, 50), 2) if ratios else None,
           "health_p99_ms": round(percentile(health, 99) * 1e3, 1)}
    out["ok"] = bool(admitted) and not errors and out["admitted_p99_s"] <= 3 and (
        not refused or out["refused_p99_ms"] <= 50) and out["health_p99_ms"] < 100
    return out


def connections(args) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.connections + 256)), hard))
    proc, base = start_server(args)
    port = int(base.rsplit(":", 1)[1])
    sel = selectors.DefaultSelector()
    socks, opened, closed = [], {}, {}
    try:
        for i in range(args.connections):
            s = socket.create_connection(("127.0.0.1", port))
            s.setblocking(False)
            if i % 2:  # the slow-header half
                s.send(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n")
            sel.register(s, selectors.EVENT_READ, i)
            socks.append(s)
            opened[i] = time.monotonic()
        latencies = []
        stop_at = time.monotonic() + 13
        last_drip = time.monotonic()
        with httpx.Client(base_url=base, timeout=30, transport=client_transport(300)) as c:
            while time.monotonic() < stop_at and len(closed) < len(socks):
                if len(latencies) < 20:
                    t0 = time.perf_counter()
                    r = c.post("/api/compose", json=LIGHT)
                    if r.status_code == 200:
                        latencies.append(time.perf_counter() - t0)
                for key, _ in sel.select(timeout=0.05):
                    try:
                        data = key.fileobj.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        closed[key.data] = time.monotonic() - opened[key.data]
                        sel.unregister(key.fileobj)
                if time.monotonic() - last_drip >= 1:  # one more header line a second
                    last_drip = time.monotonic()
                    for i, s in enumerate(socks):
                        if i % 2 and i not in closed:
                            try:
                                s.send(b"X-Slow: 1\r\n")
                            except OSError:
                                pass
    finally:
        for s in socks:
            s.close()
        stop(proc)
    worst = max(closed.values()) if closed else None
    out = {"connections": len(socks), "closed": len(closed),
           "slowest_close_s": round(worst, 2) if worst else None,
           "compose_p50_ms": round(percentile(latencies, 50) * 1e3, 1) if latencies else None,
           "composes": len(latencies)}
    out["ok"] = len(closed) == len(socks) and worst <= 11 and bool(latencies) and (
        out["compose_p50_ms"] < 200)
    return out


def determinism(args) -> dict:
    digests = []
    for _ in range(2):  # a restart between the two rounds
        proc, base = start_server(args)
        try:
            with httpx.Client(base_url=base, timeout=30) as c:
                for _ in range(40):
                    r = c.post("/api/compose", json={"bars": 16, "seed": 7})
                    digests.append(hashlib.sha256(r.content).hexdigest())
        finally:
            stop(proc)
    return {"answers": len(digests), "distinct": len(set(digests)), "ok": len(set(digests)) == 1}


CASES = {"abandoned": abandoned, "overload": overload, "connections": connections,
         "determinism": determinism}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model folder (default: the shipped model)")
    ap.add_argument("--only", nargs="+", choices=sorted(CASES), default=list(CASES))
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=15.0, help="length of the overload")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--extra", nargs="*", default=[])
    args = ap.parse_args()
    args.workers, args.processes, args.clients, args.engine = 2, 1, 8, "auto"
    report = {}
    for name in args.only:
        report[name] = CASES[name](args)
        if not args.json:
            print(f"{name}: {json.dumps(report[name])}", flush=True)
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
