"""Training throughput (notes/s) of the dual and joint models, on CPU and, if present, CUDA.

Runs the trainer's own step (forward, loss, backward, clipping, AdamW) on bucketed batches of
tunes: from a dataset file (--data), or synthetic tunes with the folk corpus's lengths and
vocabulary sizes. Prints one row per configuration.

  python benchmarks/train_speed.py                       # CPU (and CUDA when available)
  python benchmarks/train_speed.py --device cuda --batch-size 1024 --steps 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from composer.dataset import Dataset
from composer.encoding import Vocab
from composer.model import build_model
from composer.modelconfig import ModelConfig, count_params, match_joint, vocab_sizes
from composer.batches import Batches
from composer.trainstep import autocast_for, train_step


def synthetic_dataset(tunes: int, seed: int = 0) -> Dataset:
    """Random tunes shaped like the folk corpus (median 63 notes, 5% over 130; 27 durations,
    61 pitches)."""
    rng = np.random.default_rng(seed)
    vocab = Vocab(durations=list(range(3, 3 * 28, 3)), meters=["2/4", "3/4", "4/4", "6/8", "9/8"],
                  modes=["major", "minor", "dorian", "mixolydian"], styles=["a", "b", "c", "d"])
    lengths = np.clip(rng.lognormal(np.log(63), 0.45, tunes), 10, 600).astype(np.int64)
    n = int(lengths.sum())
    i16 = lambda a: np.asarray(a, np.int16)  # noqa: E731
    return Dataset(
        vocab=vocab, durations=i16(rng.integers(3, vocab.n_durations, n)),
        pitches=i16(rng.integers(2, vocab.n_pitches, n)), positions=i16(rng.integers(0, 96, n)),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        start=i16(np.zeros(tunes)), end=i16(np.zeros(tunes)), meter=i16(rng.integers(0, 5, tunes)),
        mode=i16(rng.integers(0, 4, tunes)), style=i16(rng.integers(0, 4, tunes)),
        type=i16(np.zeros(tunes)), forms=[None] * tunes,  # one part over all its bars
        tonic=np.zeros(tunes, np.int8), split=np.zeros(tunes, np.int8))


def measure(ds: Dataset, arch: str, device: torch.device, precision: str, batch_size: int,
            steps: int, hidden: int, cell: str) -> dict:
    v = ds.vocab
    cfg = ModelConfig(arch="dual", cell=cell, hidden=hidden, **vocab_sizes(v))
    if arch == "joint":
        cfg = match_joint(cfg)
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    amp = autocast_for(precision, device, cfg.hidden)
    data = Batches(ds, ds.indices("train"), window=512)
    plan = data.plan(batch_size, seed=0, epoch=0)
    warmup = 3
    plan = (plan * (1 + (steps + warmup) // len(plan)))[: steps + warmup]
    rates = []
    for i, items in enumerate(plan):
        t = time.perf_counter()
        batch = data.collate(items, device)
        out = train_step(model, opt, batch, amp, 1.0, 1e-3)
        events = out[2].item()  # syncs the device
        if i >= warmup:
            rates.append(events / (time.perf_counter() - t))
    padding = sum(len(b) * data.length[b].max() for b in plan) / sum(data.length[b].sum()
                                                                     for b in plan)
    return {"arch": arch, "hidden": cfg.hidden, "params": count_params(cfg), "device": str(device),
            "precision": "bf16" if amp is not __import__("contextlib").nullcontext else "fp32",
            "batch": batch_size, "notes/s": statistics.median(rates), "best": max(rates),
            "padding": padding}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="dataset file (default: synthetic tunes)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="auto: CPU, plus CUDA when available")
    ap.add_argument("--batch-size", type=int, help="tunes per batch (default 64 CPU, 1024 CUDA)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32", "both"])
    ap.add_argument("--arch", default="both", choices=["dual", "joint", "both"])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--cell", default="gru")
    ap.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = Dataset.load(args.data) if args.data else synthetic_dataset(4000)
    devices = {"cpu": ["cpu"], "cuda": ["cuda"],
               "auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])}[args.device]
    archs = ["dual", "joint"] if args.arch == "both" else [args.arch]
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    say = (lambda *_a, **_k: None) if args.json else print
    say(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else ""))
    say(f"{'arch':6} {'hidden':>6} {'params':>10} {'device':6} {'prec':5} {'batch':>6} "
          f"{'notes/s':>12} {'best':>12} {'padding':>8}")
    rows = []
    for dev in devices:
        for arch in archs:
            for prec in precisions:
                bs = args.batch_size or (1024 if dev == "cuda" else 64)
                r = measure(ds, arch, torch.device(dev), prec, bs, args.steps, args.hidden,
                            args.cell)
                rows.append(r)
                say(f"{r['arch']:6} {r['hidden']:>6} {r['params']:>10,} {dev:6} "
                    f"{r['precision']:5} {bs:>6} {r['notes/s']:>12,.0f} {r['best']:>12,.0f} "
                    f"{r['padding']:>8.3f}", flush=True)
    if args.json:
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                          "rows": rows}))


if __name__ == "__main__":
    main()
