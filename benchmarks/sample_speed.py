"""Sampler speed: one-tune latency (the numpy engine, and the torch model's own steps beside it),
batched throughput against the matmul bound, CLI wall time.

    python benchmarks/sample_speed.py [--model DIR | --random] [--threads 1] [--runs 30]

Without --model it uses the shipped model if there is one, else (or with --random) a
default-size dual model (2 x 256 GRU per network) with random weights whose duration head
favours eighth notes, so a tune has a realistic number of notes. Prints one table; --json
prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from composer.checkpoint import LoadedModel, load_model, save_model
from composer.modelfiles import default_model_dir
from composer.encoding import Vocab
from composer.engine import Engine
from composer.model import build_model
from composer.modelconfig import ModelConfig, vocab_sizes
from composer.music import MODES
from composer.sample import ComposeRequest, Composer, SamplingOptions

FOLK_DURATIONS = [3, 4, 6, 8, 9, 12, 16, 18, 24, 30, 32, 36, 42, 48, 60, 64, 72, 84, 96, 120, 144,
                  192]
FOLK_METERS = ["2/2", "2/4", "3/2", "3/4", "3/8", "4/4", "6/8", "9/8", "12/8"]


def random_model() -> LoadedModel:
    """A default-size dual model with random weights and a folk-like vocabulary."""
    torch.manual_seed(0)
    vocab = Vocab(durations=FOLK_DURATIONS, meters=FOLK_METERS, modes=list(MODES),
                  styles=["essen", "oneills", "ryans", "nottingham", "other"])
    cfg = ModelConfig(**vocab_sizes(vocab))
    model = build_model(cfg).eval()
    with torch.no_grad():  # about 8 notes a bar in 4/4, as in reels
        model.dur_head.bias[vocab.duration_token(12)] += 4.0
        model.dur_head.bias[vocab.duration_token(24)] += 2.0
    return LoadedModel(model, cfg, vocab, {})


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q))


def latency(composer: Composer, bars: int, meter: str, runs: int) -> dict:
    times, notes = [], []
    for seed in range(runs + 3):
        req = ComposeRequest(bars=bars, meter=meter, key="D", sampling=SamplingOptions(seed=seed))
        t0 = time.perf_counter()
        comp = composer.compose(req)
        dt = time.perf_counter() - t0
        if seed >= 3:  # warm-up: first-use allocations and the rhythm table
            times.append(dt)
            notes.append(len(comp.melody.notes))
    p50 = percentile(times, 50)
    return {"p50_ms": p50 * 1e3, "p90_ms": percentile(times, 90) * 1e3,
            "notes": statistics.mean(notes), "us_per_note": p50 / statistics.mean(notes) * 1e6}


def _matmul_seconds(engine: Engine, rows: int, reps: int = 30) -> float:
    """Seconds for one step's matmuls alone (every layer's stacked product) at `rows` rows."""
    mats = engine.rhythm.mats + engine.melody.mats
    xs = [np.random.default_rng(0).standard_normal((rows, w.shape[0])).astype(np.float32)
          for w in mats]
    outs = [np.empty((rows, w.shape[1]), np.float32) for w in mats]
    for _ in range(5):
        for w, x, o in zip(mats, xs, outs):
            np.matmul(x, w, out=o)
    t0 = time.perf_counter()
    for _ in range(reps):
        for w, x, o in zip(mats, xs, outs):
            np.matmul(x, w, out=o)
    return (time.perf_counter() - t0) / reps


def throughput(composer: Composer, bars: int, meter: str, count: int) -> dict:
    """Notes/s of compose_many(count), against two matmul bounds measured in the same run:
    `bound` keeps all `count` rows busy every step (count notes per step of full-size
    matmuls); `same_sizes` replays the matmuls of the actual run, one step per note of the
    longest tune, each with as many rows as tunes still unfinished at that step."""
    req = ComposeRequest(bars=bars, meter=meter, key="D", sampling=SamplingOptions(seed=0))
    composer.compose_many(req, count)
    best, lengths = float("inf"), []
    for seed in range(3):
        req.sampling.seed = seed
        t0 = time.perf_counter()
        comps = composer.compose_many(req, count)
        dt = time.perf_counter() - t0
        if dt < best:
            best, lengths = dt, [len(c.melody.notes) for c in comps]
    notes = sum(lengths)
    out = {"count": count, "notes": notes, "seconds": best, "notes_per_s": notes / best,
           "shortest": min(lengths), "longest": max(lengths)}
    engine = composer.net
    if isinstance(engine, Engine):
        per_step = _matmul_seconds(engine, count)
        lengths_np = np.array(lengths)
        live = [int((lengths_np >= s).sum()) for s in range(max(lengths) + 1)]
        cost = {m: _matmul_seconds(engine, m, reps=10) for m in sorted(set(live))}
        same = sum(cost[m] for m in live)
        out.update(matmul_us_per_step=per_step * 1e6, bound_notes_per_s=count / per_step,
                   efficiency=notes / best / (count / per_step),
                   same_sizes_seconds=same, efficiency_same_sizes=same / best)
    return out


def agreement(engine: Composer, torch_path: Composer, tunes: int, same_of: int) -> dict:
    """Both paths on the same seeds (16 bars of 4/4): how many of the first `same_of` tunes are
    note for note the same, and the mean bits/note (under each path's own model) of `tunes`."""
    same, bits = 0, {"engine": [], "torch": []}
    for seed in range(tunes):
        req = lambda: ComposeRequest(bars=16, meter="4/4", key="D",  # noqa: E731
                                     sampling=SamplingOptions(seed=seed))
        a, b = engine.compose(req()), torch_path.compose(req())
        bits["engine"].append(a.bits_per_note)
        bits["torch"].append(b.bits_per_note)
        if seed < same_of:
            same += [(n.pitch, n.duration) for n in a.melody.notes] == \
                [(n.pitch, n.duration) for n in b.melody.notes]
    out = {"same": same, "of": min(same_of, tunes), "tunes": tunes}
    for k, xs in bits.items():
        out[f"bits_{k}"] = statistics.mean(xs)
        out[f"bits_{k}_se"] = statistics.stdev(xs) / len(xs) ** 0.5
    return out


def cli_wall(model_dir: str, bars: int, runs: int = 5) -> dict:
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            cmd = [sys.executable, "-m", "composer", "compose", "--model", model_dir, "--bars",
                   str(bars), "--seed", str(i), "-o", str(Path(tmp) / "x.mid")]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
    return {"p50_s": percentile(times, 50), "min_s": min(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model folder (default: the shipped model, else random)")
    ap.add_argument("--random", action="store_true", help="use random weights of the default size")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--bars", type=int, default=32)
    ap.add_argument("--meter", default="4/4")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1, as the CLI and the server use)")
    ap.add_argument("--skip-naive", action="store_true", help="skip the eager reference")
    ap.add_argument("--skip-cli", action="store_true", help="skip the command-line wall time")
    ap.add_argument("--agree", type=int, default=200, metavar="N",
                    help="tunes composed on both paths for the agreement check (0: skip)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model_dir = args.model
    if model_dir is None and not args.random:
        try:
            shipped = default_model_dir()
        except ModuleNotFoundError:  # a source tree that is not installed
            shipped = None
        model_dir = str(shipped) if shipped and (shipped / "config.json").is_file() else None
    tmp = None
    if model_dir:
        loaded, source = load_model(model_dir), model_dir
    else:
        loaded, source = random_model(), "random weights, default size"
        tmp = tempfile.TemporaryDirectory()
        model_dir = tmp.name
        save_model(model_dir, loaded.model, loaded.cfg, loaded.vocab)
    composer = Composer.load(model_dir)  # the numpy engine
    cfg = loaded.cfg
    report = {"model": source, "size": f"{cfg.arch} {cfg.layers}x{cfg.hidden} {cfg.cell}",
              "threads": torch.get_num_threads(), "bars": args.bars, "meter": args.meter}
    report["latency"] = latency(composer, args.bars, args.meter, args.runs)
    if not args.skip_naive:
        naive = Composer(loaded)  # the torch model's own rhythm_step / melody_step
        report["latency_naive"] = latency(naive, args.bars, args.meter, max(5, args.runs // 5))
        if args.agree:
            report["agreement"] = agreement(composer, naive, args.agree, min(100, args.agree))
    report["throughput"] = throughput(composer, args.bars, args.meter, args.count)
    if not args.skip_cli:
        report["cli"] = cli_wall(model_dir, args.bars)
    if tmp is not None:
        tmp.cleanup()
    if args.json:
        print(json.dumps(report))
        return
    lat, thr = report["latency"], report["throughput"]
    print(f"model: {report['model']} ({report['size']}), torch threads {report['threads']}")
    print(f"compose {args.bars} bars of {args.meter}, one tune (target p50 <= 15 ms):")
    print(f"  engine  p50 {lat['p50_ms']:7.2f} ms  p90 {lat['p90_ms']:7.2f} ms  "
          f"{lat['notes']:.0f} notes  {lat['us_per_note']:.1f} us/note")
    if "latency_naive" in report:
        nv = report["latency_naive"]
        print(f"  torch   p50 {nv['p50_ms']:7.2f} ms  p90 {nv['p90_ms']:7.2f} ms  "
              f"{nv['notes']:.0f} notes  {nv['us_per_note']:.1f} us/note")
    if "agreement" in report:
        ag = report["agreement"]
        print(f"both paths, same seeds, 16 bars: {ag['same']} of {ag['of']} tunes note for note "
              f"the same; bits/note of {ag['tunes']} tunes: engine {ag['bits_engine']:.3f} "
              f"+- {ag['bits_engine_se']:.3f}, torch {ag['bits_torch']:.3f} "
              f"+- {ag['bits_torch_se']:.3f}")
    print(f"batch of {thr['count']} (target >= 80% of the matmul bound):")
    print(f"  {thr['notes_per_s']:,.0f} notes/s ({thr['notes']} notes in {thr['seconds']:.3f} s; "
          f"tunes of {thr['shortest']} to {thr['longest']} notes)")
    if "bound_notes_per_s" in thr:
        print(f"  matmul bound, {thr['count']} rows every step: "
              f"{thr['bound_notes_per_s']:,.0f} notes/s ({thr['matmul_us_per_step']:.0f} us/step)"
              f" -> {thr['efficiency']:.0%}")
        print(f"  the same matmuls as the run, alone: {thr['same_sizes_seconds']:.3f} s "
              f"-> {thr['efficiency_same_sizes']:.0%}")
    if "cli" in report:
        print(f"composer compose -o x.mid, wall incl. start and load (target <= 0.5 s): "
              f"p50 {report['cli']['p50_s']:.2f} s, min {report['cli']['min_s']:.2f} s")


if __name__ == "__main__":
    main()
