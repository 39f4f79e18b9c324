"""Run every benchmark in benchmarks/, each bounded in time, and print one table of the key numbers.

    python benchmarks/run.py [--quick] [--only NAME ...] [--json]

Each benchmark runs as its own process with small sizes and a time limit, and reports through
its --json output. The table names the machine (cores, CPU, load average) and the torch version,
since every number depends on them. --quick ingests one collection instead of the whole default
corpus (a cold ingest of all five takes about 4 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
QUICK_CORPUS = "music21:airdsAirs"
FOLK = HERE.parent / "data" / "folk.npz"  # the built dataset, if there is one


@dataclass
class Bench:
    """One benchmark script: its arguments, its time limit, and how to read its report."""

    name: str
    script: str
    args: list[str]
    timeout: float
    rows: Callable[[dict], list[tuple[str, str, str]]]  # report -> (measure, value, target)
    note: str = ""
    report: dict | None = field(default=None, repr=False)


def _num(x: float, unit: str = "", digits: int = 0) -> str:
    return f"{x:,.{digits}f}{unit}"


def ingest_rows(r: dict) -> list[tuple[str, str, str]]:
    out = []
    for row in r["rows"]:
        case = row["case"].replace("default corpus", "default corpus (5 collections)")
        out.append((f"{case}: {row['files']:,} files, {row['kept']:,} tunes kept",
                    f"{row['seconds']:.1f} s, {row['rate']}", row["target"]))
    return out


def train_rows(r: dict) -> list[tuple[str, str, str]]:
    return [(f"training, {x['arch']} 2 x {x['hidden']} GRU, batch {x['batch']} tunes, "
             f"{x['precision']}, {x['device']}", _num(x["notes/s"], " notes/s"), "")
            for x in r["rows"]]


def sample_rows(r: dict) -> list[tuple[str, str, str]]:
    lat, thr = r["latency"], r["throughput"]
    rows = [(f"compose latency, {r['bars']} bars of {r['meter']}, one tune (p50), numpy engine",
             _num(lat["p50_ms"], " ms", 1), "<= 15 ms")]
    if "latency_naive" in r:
        rows.append(("the same on the torch path (the torch model's own steps)",
                     _num(r["latency_naive"]["p50_ms"], " ms", 1)
                     + f" ({r['latency_naive']['p50_ms'] / lat['p50_ms']:.1f}x the engine's)", ""))
    value = _num(thr["notes_per_s"], " notes/s")
    if "efficiency" in thr:
        value += (f", {100 * thr['efficiency']:.0f}% of the matmul bound "
                  f"({_num(thr['bound_notes_per_s'])})")
    rows.append((f"batch throughput, {thr['count']} tunes at once", value, ">= 80% of bound"))
    if "cli" in r:
        rows.append(("`composer compose -o x.mid` wall time incl. start-up (p50)",
                     _num(r["cli"]["p50_s"], " s", 2), "<= 0.5 s"))
    return rows


def api_rows(r: dict) -> list[tuple[str, str, str]]:
    rss = r.get("peak_rss_mib_largest_process")
    return [(f"API: {r['requests']} composes ({r['bars']} bars), {r['clients']} clients, "
             f"{r['processes']} processes x {r['workers']} threads, {r['engine']} engine",
             f"{r['requests_per_s']:.1f} req/s, p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, "
             f"{r['errors']} errors" + (f", RSS {rss:.0f} MiB per process" if rss else ""),
             ">= 60 req/s, p99 <= 250 ms, <= 150 MB" if r["engine"] != "torch" else "")]


def abuse_rows(r: dict) -> list[tuple[str, str, str]]:
    a, o, c, d = r["abandoned"], r["overload"], r["connections"], r["determinism"]
    return [
        ("API: an 8-bar compose after 18 clients left 64-bar best-of-16 composes; server CPU "
         "from 1 to 3 s after they left",
         f"{a['light_compose_s']:.2f} s ({a['light_attempts']} tries, {a['light_status']}); "
         f"{a['cpu_s_in_the_2_s_after_that']:.2f} s CPU",
         "< 1 s; stops within 1 s"),
        ("API overload: 32 clients of 64-bar best-of-16 composes: admitted p99; 503 p50/p99; "
         "Retry-After estimate within 2x of the wait; health p99",
         f"{o['admitted_p99_s']:.2f} s ({o['admitted']} admitted); {o['refused_p50_ms']:.0f}/"
         f"{o['refused_p99_ms']:.0f} ms ({o['refused']}); {o['retry_estimate_within_2x']:.0%}; "
         f"{o['health_p99_ms']:.0f} ms", "<= 3 s; <= 50 ms; ; < 100 ms"),
        (f"API: {c['connections']} idle and slow-header connections: closed; slowest close; "
         "an 8-bar compose meanwhile (p50)",
         f"{c['closed']}; {c['slowest_close_s']:.1f} s; {c['compose_p50_ms']:.0f} ms",
         "all; <= 11 s; < 200 ms"),
        ("API: the same seeded request 40 times, then after a restart: distinct answers",
         f"{d['distinct']} of {d['answers']}", "1"),
    ]


def infill_rows(r: dict) -> list[tuple[str, str, str]]:
    q, s, lk = r["quality"], r["speed"], r.get("lookups")
    bits = q["bits_per_note"]
    rows = [(f"infill: bits/note of the fixed bars after a 2-bar gap ({q['tunes']} test tunes): "
             "infill, left-only continuation, real bars; share of the gap closed",
             f"{bits['infill']['all_after']:.3f}, {bits['continuation']['all_after']:.3f}, "
             f"{bits['oracle']['all_after']:.3f}; {q['gap_closed']['all_after']:.0%}", ">= 50%"),
            (f"infill: 2 bars of a 32-bar tune, K = 128 (p50 of {s['tunes']})",
             f"{s['p50_ms']:.0f} ms", "<= 250 ms")]
    if lk:
        rows.append((f"similar: {lk['lookups']} look-ups of corpus tunes (and transposed): found "
                     "first at > 0.9; time p50 / max", f"{lk['found_first']:.0%}; "
                     f"{lk['p50_ms']:.2f} / {lk['max_ms']:.1f} ms", "100%; <= 50 ms"))
    return rows


def markov_rows(r: dict) -> list[tuple[str, str, str]]:
    return [(f"Markov baseline, {r['notes']:,} synthetic notes: fit + order choice, evaluate",
             f"{r['fit_seconds']:.1f} s, {r['evaluate_seconds']:.1f} s", "")]


def formats_rows(r: dict) -> list[tuple[str, str, str]]:
    ms = {(x["writer"], x["notes"]): x["ms_per_call"] for x in r["rows"]}
    return [("writing a 64-note tune: MIDI, ABC, JSON",
             f"{ms[('midi', 64)]:.2f} / {ms[('abc', 64)]:.2f} / {ms[('json', 64)]:.2f} ms",
             "MIDI < 2 ms")]


def structure_rows(r: dict) -> list[tuple[str, str, str]]:
    out = []
    for x in r["rows"]:
        g, real = x["generated"], x["real"]
        ratio = lambda k: g[k] / real[k] if real[k] else float("nan")  # noqa: E731
        out.append((f"form of {int(g['tunes'])} generated {x['type']}s ({x['meter']} {x['form']}) "
                    f"against {int(real['tunes'])} real: tonic endings; bar repetition, 8-note "
                    "windows, phrase similarity as a share of real; near-copies",
                    f"{g['tonic_ending']:.0%}; {ratio('bar_repeat'):.2f}x, {ratio('window_recur'):.2f}x, "
                    f"{ratio('phrase_sim'):.2f}x; {x['near_copies']:.0%}",
                    ">= 75%; 0.6-1.6x, 0.5-1.6x, >= 0.85x; <= 1%"))
    return out


def endings_rows(r: dict) -> list[tuple[str, str, str]]:
    return [(f"{r['type']}s ending on the tonic with their last N bars drawn anew after the real "
             f"bars, N = {', '.join(str(x['bars']) for x in r['rows'])} (real)",
             " / ".join(f"{x['generated']:.0%}" for x in r["rows"])
             + f" ({r['rows'][0]['real']:.0%})", "as real")]


def benches(quick: bool, cores: int) -> list[Bench]:
    corpus = ["--sources", QUICK_CORPUS] if quick else []
    return [
        Bench("ingest", "ingest.py", ["--workers", str(cores), "--midi-files", "500", *corpus],
              900, ingest_rows, note=f"cold ingest of {QUICK_CORPUS} only" if quick else ""),
        Bench("train", "train_speed.py", ["--arch", "dual", "--steps", "20", "--device", "cpu",
                                          *(["--data", str(FOLK)] if FOLK.is_file() else [])],
              300, train_rows, note="" if FOLK.is_file() else "training on synthetic tunes"),
        Bench("sample", "sample_speed.py", ["--bars", "32", "--runs", "20", "--count", "64"], 300,
              sample_rows),
        *(Bench(name, "api_load.py", ["--requests", "300", "--clients", "8", "--bars", "16",
                                      "--processes", "2", "--engine", engine], 300, api_rows)
          for name, engine in (("api", "numpy"), ("api-torch", "torch"))),
        Bench("abuse", "api_abuse.py", ["--seconds", "10"], 300, abuse_rows),
        Bench("markov", "markov_speed.py", ["--notes", "1000000"], 300, markov_rows),
        Bench("formats", "formats_speed.py", ["--repeat", "100"], 120, formats_rows),
        *([Bench("infill", "infill_quality.py", ["--tunes", "60", "--data", str(FOLK)], 600,
                 infill_rows)] if FOLK.is_file() else []),
        *([Bench("structure", "structure.py", ["--samples", "40", "--types", "reel,jig,hornpipe",
                                               "--data", str(FOLK)], 600, structure_rows)]
          if FOLK.is_file() else []),
        *([Bench("endings", "endings.py", ["--type", "reel", "--bars", "1,8", "--data", str(FOLK)],
                 600, endings_rows)] if FOLK.is_file() else []),
    ]


def run(bench: Bench) -> tuple[dict | None, str]:
    """The benchmark's JSON report, or None and why there is none."""
    cmd = [sys.executable, str(HERE / bench.script), *bench.args, "--json"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=bench.timeout,
                              cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return None, f"stopped after its {bench.timeout:.0f} s limit"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"failed (exit {proc.returncode}): {tail[:120]}"
    try:
        return json.loads(lines[-1]), ""
    except json.JSONDecodeError:
        return None, "failed: its --json output is not one line of JSON"


def machine() -> dict:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": cpu, "torch": torch.__version__,
            "python": platform.python_version(), "load_average": round(os.getloadavg()[0], 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help=f"cold-ingest {QUICK_CORPUS} instead of the whole default corpus")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="run only these: ingest train sample api api-torch abuse markov formats infill "
                         "structure endings")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    info = machine()
    chosen = [b for b in benches(args.quick, info["cores"] or 1)
              if not args.only or b.name in args.only]
    rows, seconds = [], {}
    for bench in chosen:
        print(f"running {bench.script} {' '.join(bench.args)} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        bench.report, problem = run(bench)
        seconds[bench.name] = round(time.perf_counter() - t0, 1)
        if bench.report is None:
            rows.append((bench.script, problem, ""))
            continue
        rows += bench.rows(bench.report)
    info["load_average_end"] = round(os.getloadavg()[0], 1)
    if args.json:
        print(json.dumps({"machine": info, "seconds": seconds,
                          "reports": {b.name: b.report for b in chosen},
                          "rows": [dict(zip(("measure", "value", "target"), r)) for r in rows]}))
        return
    print(f"machine: {info['cores']} cores ({info['cpu']}), torch {info['torch']}, "
          f"Python {info['python']}, load average {info['load_average']} at the start and "
          f"{info['load_average_end']} at the end")
    for b in chosen:
        if b.note:
            print(f"note: {b.note}")
    print()
    print("| measure | result | target |")
    print("|---|---|---|")
    for measure, value, target in rows:
        print(f"| {measure} | {value} | {target} |")
    print(f"\n({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())})")


if __name__ == "__main__":
    main()
