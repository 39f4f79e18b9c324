"""Infill and known-tune benchmark: how well infilled bars fit the bars after them, how fast,
and how well `similar` finds a corpus tune.

    python benchmarks/infill_quality.py [--model DIR] [--data data/folk.npz] [--tunes 200]
                                        [--candidates 128] [--split test] [--json]

Quality: --tunes tunes of the split with 16 bars or more; two bars in the middle of each are
blanked and filled three ways, and the bits/note of the fixed bars after the gap (the next
WINDOW_BARS, which weigh the candidates, and all of them) are compared: given the infilled bars, given a plain left-only continuation of
the same length (one candidate: nothing after the gap is read), and given the real bars (the
oracle). Target: the infill closes at least half the gap between continuation and oracle. The
join into the first fixed note (its interval, and the length of the note before it) is counted
as usual when real tunes of the meter show it at a barline at least 1% of the time.
Speed: 2 bars of 32-bar tunes with --candidates (target <= 250 ms p50). Look-ups: each
quality tune, and the same tune a fourth higher, looked up in the model's index (target:
found first at similarity > 0.9; <= 50 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from composer.dataset import Dataset  # noqa: E402
from composer.encoding import decode  # noqa: E402
from composer.infill import WINDOW_BARS, tune_bars  # noqa: E402
from composer.modelfiles import default_model_dir  # noqa: E402
from composer.music import MusicError  # noqa: E402
from composer.requests import SamplingOptions  # noqa: E402
from composer.sample import Composer  # noqa: E402
from composer.similar import SimilarIndex  # noqa: E402


def after_bits(melody, surprisal, first_fixed_bar: int, bars: int | None) -> tuple[float, int]:
    """Bits and notes of the fixed notes from bar `first_fixed_bar` on (`bars` of them, or all)."""
    total, n = 0.0, 0
    for t, (r, p) in zip(melody.onsets(), surprisal):
        b = melody.bar_of(t)
        if b >= first_fixed_bar and (bars is None or b < first_fixed_bar + bars):
            total, n = total + r + p, n + 1
    return total, n


def join(melody, gap_end_bar: int) -> tuple[int, int] | None:
    """(interval into the first note of bar `gap_end_bar`, length of the note before it)."""
    notes = list(zip(melody.onsets(), melody.notes))
    k = next((i for i, (t, _) in enumerate(notes) if melody.bar_of(t) >= gap_end_bar), None)
    if not k:
        return None
    before = [n.pitch for _, n in notes[:k] if n.pitch is not None]
    first = notes[k][1].pitch
    if not before or first is None:
        return None
    return first - before[-1], notes[k - 1][1].duration


def real_joins(tunes) -> dict[str, Counter]:
    """Per meter: how often each join occurs at the barlines of real tunes."""
    out: dict[str, Counter] = {}
    for m in tunes:
        for b in range(2, tune_bars(m) + 1):
            j = join(m, b)
            if j:
                out.setdefault(str(m.meter), Counter())[j] += 1
    return out


def usual(joins: dict[str, Counter], meter: str, j) -> bool:
    c = joins.get(meter, Counter())
    return j is not None and c[j] >= 0.01 * max(1, sum(c.values()))


def quality(composer: Composer, tunes: list, candidates: int, joins) -> dict:
    sums = {k: [0.0, 0, 0.0, 0] for k in ("infill", "continuation", "oracle")}
    usual_joins = Counter()
    done = 0
    for i, tune in enumerate(tunes):
        n = tune_bars(tune)
        gap = (n // 2 - 1, n // 2)
        try:
            filled = {
                "infill": composer.infill(tune, [gap], SamplingOptions(seed=i),
                                          candidates=candidates)[0],
                "continuation": composer.infill(tune, [gap], SamplingOptions(seed=i),
                                                candidates=1)[0],
            }
        except MusicError:  # a note held across the gap's edge: such a tune is left out
            continue
        oracle = composer.score(tune, style=tune.style)
        rows = {**{k: (c.melody, c.surprisal) for k, c in filled.items()},
                "oracle": (tune, [(x.rhythm_bits, x.pitch_bits) for x in oracle.notes])}
        for k, (m, s) in rows.items():
            w, wn = after_bits(m, s, gap[1] + 1, WINDOW_BARS)
            a, an = after_bits(m, s, gap[1] + 1, None)
            sums[k][0] += w
            sums[k][1] += wn
            sums[k][2] += a
            sums[k][3] += an
            usual_joins[k] += usual(joins, str(m.meter), join(m, gap[1] + 1))
        done += 1
    per = {k: {"window": v[0] / max(1, v[1]), "all_after": v[2] / max(1, v[3])}
           for k, v in sums.items()}
    closed = {w: (per["continuation"][w] - per["infill"][w]) /
              max(1e-9, per["continuation"][w] - per["oracle"][w]) for w in ("window", "all_after")}
    return {"tunes": done, "bits_per_note": per, "gap_closed": closed,
            "usual_join": {k: usual_joins[k] / max(1, done) for k in sums}}


def speed(composer: Composer, tunes: list, candidates: int) -> dict:
    times = []
    for i, tune in enumerate(tunes):
        n = tune_bars(tune)
        for first in range(n // 2 - 1, n):  # the first clean 2-bar gap from the middle
            try:
                t0 = time.perf_counter()
                composer.infill(tune, [(first, first + 1)], SamplingOptions(seed=i),
                                candidates=candidates)
                times.append(time.perf_counter() - t0)
                break
            except MusicError:
                continue
    return {"tunes": len(times), "p50_ms": statistics.median(times) * 1e3 if times else None,
            "max_ms": max(times) * 1e3 if times else None}


def lookups(index: SimilarIndex, tunes: list, titles: list[str]) -> dict:
    found, times = 0, []
    for tune, title in zip(tunes, titles):
        for q in (tune, tune.to_tonic((tune.tonic + 5) % 12)):
            t0 = time.perf_counter()
            best = index.nearest(q, 5)
            times.append(time.perf_counter() - t0)
            found += bool(best) and best[0].title == title and best[0].similarity > 0.9
    return {"lookups": len(times), "found_first": found / max(1, len(times)),
            "p50_ms": statistics.median(times) * 1e3, "max_ms": max(times) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model folder (default: the shipped model)")
    ap.add_argument("--data", default=str(HERE.parent / "data" / "folk.npz"))
    ap.add_argument("--tunes", type=int, default=200)
    ap.add_argument("--candidates", type=int, default=128)
    ap.add_argument("--split", default="test")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    composer = Composer.load(args.model)
    ds = Dataset.load(args.data)
    idx = [int(i) for i in ds.indices(args.split)]
    melodies = {i: decode(ds.tune(i), ds.vocab) for i in idx}
    for i, m in melodies.items():
        m.title = ds.tunes[i].get("title", "")
    long = [i for i in idx if tune_bars(melodies[i]) >= 16][:args.tunes]
    joins = real_joins([decode(ds.tune(int(i)), ds.vocab) for i in ds.indices("train")[:3000]])
    report = {"quality": quality(composer, [melodies[i] for i in long], args.candidates, joins),
              "speed": speed(composer, [melodies[i] for i in idx if tune_bars(melodies[i]) >= 32][:20],
                             args.candidates)}
    index = SimilarIndex.load(args.model or default_model_dir())
    if index is not None:
        report["lookups"] = lookups(index, [melodies[i] for i in long],
                                    [ds.tunes[i].get("title", "") for i in long])
    if args.json:
        print(json.dumps(report))
        return
    q = report["quality"]
    print(f"infill quality, {q['tunes']} {args.split} tunes, 2 bars blanked in the middle:")
    for k, v in q["bits_per_note"].items():
        print(f"  {k:13s} next {WINDOW_BARS} bars {v['window']:.3f} bits/note, all after "
              f"{v['all_after']:.3f}; usual join {q['usual_join'][k]:.0%}")
    print(f"  gap closed: next {WINDOW_BARS} bars {q['gap_closed']['window']:.0%}, all after "
          f"{q['gap_closed']['all_after']:.0%} (target >= 50%)")
    s = report["speed"]
    print(f"speed: 2 bars of {s['tunes']} 32-bar tunes, K={args.candidates}: p50 "
          f"{s['p50_ms']:.0f} ms, max {s['max_ms']:.0f} ms (target p50 <= 250 ms)")
    if "lookups" in report:
        lk = report["lookups"]
        print(f"look-ups: {lk['lookups']} (each tune and a fourth higher): found first at > 0.9 "
              f"{lk['found_first']:.0%}; p50 {lk['p50_ms']:.2f} ms, max {lk['max_ms']:.1f} ms")


if __name__ == "__main__":
    main()
