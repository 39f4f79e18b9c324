"""Hold out one whole collection: a dataset without it (to train on) and one of only it.

    python tools/holdout.py --data data/folk.npz --style ryansMammoth \
        --train data/folk-no-ryans.npz --held data/ryans.npz

Both come from one ingest, so a tune that two collections share (deduplicated there, the
first copy kept) is never on both sides. The train file keeps its train/valid/test split; the
held-out file has every tune in its test split. Labels that only the held-out tunes use (their
style, a type or meter only they have) are dropped from the train file's vocabulary, so a
model trained on it reads those tunes with its default style and nearest labels, as it would
a user's tune from a collection it has never seen.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from composer.dataset import Dataset  # noqa: E402
from composer.encoding import Vocab  # noqa: E402


def subset(ds: Dataset, keep: list[int], vocab: Vocab, split: list[int] | None = None) -> Dataset:
    encoded = [ds.tune(i) for i in keep]
    return Dataset.from_tunes(encoded, vocab, split if split is not None else [int(ds.split[i]) for i in keep],
                              tunes=[ds.tunes[i] for i in keep], info=dict(ds.info))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--style", required=True, help="the collection (style label) to hold out")
    p.add_argument("--train", required=True, help="output: the dataset without it")
    p.add_argument("--held", required=True, help="output: the dataset of only it")
    args = p.parse_args()
    ds = Dataset.load(args.data)
    v = ds.vocab
    if args.style not in v.styles:
        raise SystemExit(f"error: no style {args.style!r} in {args.data}; styles: {', '.join(v.styles)}")
    held = [i for i in range(len(ds)) if v.styles[ds.style[i]] == args.style]
    rest = [i for i in range(len(ds)) if v.styles[ds.style[i]] != args.style]
    used = lambda kind, ids: [x for k, x in enumerate(getattr(v, kind)) if k in {int(ids[i]) for i in rest}]  # noqa: E731
    train_vocab = Vocab.from_dict({**v.to_dict(), "meters": used("meters", ds.meter),
                                   "modes": used("modes", ds.mode), "styles": used("styles", ds.style),
                                   "types": used("types", ds.type)})
    subset(ds, rest, train_vocab).save(args.train)
    subset(ds, held, v, split=[2] * len(held)).save(args.held)
    print(f"{args.train}: {len(rest)} tunes; {args.held}: {len(held)} tunes of {args.style}")


if __name__ == "__main__":
    main()
