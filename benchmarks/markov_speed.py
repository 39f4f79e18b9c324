"""Time the Markov n-gram baseline: fit (with order selection on valid) and test evaluation.

usage: python benchmarks/markov_speed.py [DATASET.npz | --notes N] [--json]
Without a dataset file it builds a synthetic one of N notes (default 1,000,000) whose notes
follow a random second-order chain, so contexts repeat the way real tunes' do.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from composer.dataset import Dataset
from composer.encoding import N_SPECIAL, Vocab
from composer.markov import MarkovModel


def synthetic(notes: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    vocab = Vocab(durations=[3, 4, 6, 8, 9, 12, 16, 18, 24, 36, 48, 72, 96], meters=["4/4"])
    lens = rng.integers(40, 200, size=notes // 100)
    lens = lens[: np.searchsorted(np.cumsum(lens), notes) + 1]
    n = int(lens.sum())
    nd, npch = len(vocab.durations), vocab.pitch_high - vocab.pitch_low + 1
    # next note from a table indexed by the two previous notes' classes, plus noise
    table = rng.integers(0, nd * npch, size=(64, 64, 4))
    cls = np.zeros(n, np.int64)
    ev = np.zeros(n, np.int64)
    for i in range(2, n):  # a plain loop is fine for a one-off build
        ev[i] = table[cls[i - 1], cls[i - 2], rng.integers(4)] if rng.random() < 0.8 else (
            rng.integers(nd * npch))
        cls[i] = ev[i] % 64
    d, p = ev // npch + N_SPECIAL, ev % npch + N_SPECIAL
    split = rng.choice(3, size=len(lens), p=[0.8, 0.1, 0.1])
    z = lambda k: np.zeros(k, np.int16)  # noqa: E731
    return Dataset(vocab=vocab, durations=d.astype(np.int16), pitches=p.astype(np.int16),
                   positions=z(n), offsets=np.concatenate([[0], np.cumsum(lens)]),
                   start=z(len(lens)), end=z(len(lens)), meter=z(len(lens)), mode=z(len(lens)),
                   style=z(len(lens)), type=z(len(lens)), forms=[None] * len(lens),
                   tonic=np.zeros(len(lens), np.int8),
                   split=split.astype(np.int8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?")
    ap.add_argument("--notes", type=int, default=1_000_000)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ds = Dataset.load(args.dataset) if args.dataset else synthetic(args.notes)
    t1 = time.perf_counter()
    model = MarkovModel.fit(ds)
    t2 = time.perf_counter()
    res = model.evaluate(ds, "test")
    t3 = time.perf_counter()
    if args.json:
        print(json.dumps({"notes": ds.n_notes, "tunes": len(ds), "build_seconds": t1 - t0,
                          "fit_seconds": t2 - t1, "order": model.order,
                          "evaluate_seconds": t3 - t2, "test_notes": res["notes"],
                          "bits_per_note": res["bits_per_note"]}))
        return
    print(f"dataset: {ds.n_notes:,} notes, {len(ds):,} tunes ({t1 - t0:.1f} s to load/build)")
    print(f"fit + order selection on valid: {t2 - t1:.2f} s (chosen order {model.order})")
    print(f"evaluate test ({res['notes']:,} notes): {t3 - t2:.2f} s")
    print(f"test bits/note {res['bits_per_note']:.3f} (rhythm {res['rhythm_bits']:.3f}, "
          f"pitch {res['pitch_bits']:.3f}); duration acc {res['duration_accuracy']:.3f}, "
          f"pitch acc {res['pitch_accuracy']:.3f}")


if __name__ == "__main__":
    main()
