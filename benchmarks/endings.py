"""Endings benchmark: how far the model's own bars carry it from the tonic.

    python benchmarks/endings.py [--model DIR] [--data data/folk.npz] [--type reel]
                                 [--bars 1,4,8,16] [--versions 4] [--splits valid,test] [--json]

The last N bars of each real tune of a type (valid and test splits; tunes that go back at
their written end left out) are drawn anew by the model after the real bars before them, with
the tune's own form, key, meter and style (`composer infill` with a single candidate: plain
sampling, nothing after the gap to weigh it). The share of versions that end on the tonic,
beside the real tunes' share, tells whether a shortfall in composed tunes comes from the
closing bars themselves (small N) or from the bars the model wrote before them (large N).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from composer.dataset import Dataset  # noqa: E402
from composer.encoding import decode  # noqa: E402
from composer.infill import infill, tune_bars  # noqa: E402
from composer.music import MusicError  # noqa: E402
from composer.requests import SamplingOptions  # noqa: E402
from composer.sample import Composer  # noqa: E402


def run(args: argparse.Namespace) -> dict:
    composer = Composer.load(args.model)
    ds = Dataset.load(args.data)
    tunes = []
    for split in args.splits:
        for i in ds.indices(split):
            i = int(i)
            if ds.vocab.types[ds.type[i]] != args.type:
                continue
            m = decode(ds.tune(i), ds.vocab)
            if m.form is not None and not m.form.da_capo:
                m.style, m.tune_type = ds.tunes[i].get("style", ""), args.type
                tunes.append(m)
    rows = []
    for n in args.bars:
        generated, real, refused = [], [], 0
        for k, m in enumerate(tunes):
            bars = tune_bars(m)
            if bars <= n:
                continue
            try:
                versions = infill(composer, m, [(bars - n + 1, bars)],
                                  SamplingOptions(seed=args.seed + k), count=args.versions,
                                  candidates=1)
            except MusicError:  # a note held over the gap's edge
                refused += 1
                continue
            generated += [v.melody.ends_on_tonic() for v in versions]
            real.append(m.ends_on_tonic())
        rows.append({"bars": n, "tunes": len(real), "refused": refused, "versions": len(generated),
                     "generated": sum(generated) / max(1, len(generated)),
                     "real": sum(real) / max(1, len(real))})
    return {"model": str(args.model or "models/folk"), "type": args.type, "splits": args.splits,
            "seed": args.seed, "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--data", default=str(HERE.parent / "data" / "folk.npz"))
    p.add_argument("--type", default="reel")
    p.add_argument("--bars", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8, 16])
    p.add_argument("--versions", type=int, default=4, help="versions drawn per tune")
    p.add_argument("--splits", type=lambda s: s.split(","), default=["valid", "test"])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    report = run(args)
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.type}: the last N bars drawn anew after the real bars before them "
          f"({', '.join(args.splits)} splits, {args.versions} versions a tune)")
    print(f"{'N bars':>7} {'tunes':>6} {'ends on tonic':>14} {'real':>6}")
    for r in report["rows"]:
        print(f"{r['bars']:>7} {r['tunes']:>6} {r['generated']:>14.3f} {r['real']:>6.3f}")


if __name__ == "__main__":
    main()
