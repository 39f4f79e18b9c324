"""A dataset in a model's vocabulary: tunes whose labels, durations or pitches the model does
not know are mapped to the nearest ones it does, or left out, and counted (for evaluating a
model on data it was not built from)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .dataset import Dataset
from .encoding import EncodedTune, Vocab, decode, encode
from .music import Meter, MusicError


@dataclass
class Conformed:
    """A dataset split re-expressed in a model's vocabulary, and what had to change."""

    dataset: Dataset
    indices: np.ndarray
    snapped_notes: int = 0  # notes whose duration or pitch moved to the nearest known value
    snapped_tunes: int = 0
    skipped_tunes: int = 0  # tunes no snapping could express (counted, not evaluated)
    unknown_labels: dict = field(default_factory=dict)  # {"style": {"reels": 12}, ...}

    def report(self) -> dict:
        return {"snapped_notes": self.snapped_notes, "snapped_tunes": self.snapped_tunes,
                "skipped_tunes": self.skipped_tunes, "unknown_labels": self.unknown_labels}


def default_label(values: list[str], kind: str) -> str:
    """The label used when a tune's own is unknown: 'default'/'major'/'4/4' if known, else the
    first."""
    preferred = {"style": "default", "mode": "major", "meter": "4/4", "type": "other"}[kind]
    return preferred if preferred in values else values[0]


def map_label(values: list[str], kind: str, value: str) -> str:
    """`value` if it is one of `values` (a vocabulary's meters, modes or styles); else the
    closest one (for a meter: the nearest bar length, then the same beat) or the default."""
    if value in values:
        return value
    if kind == "meter":
        try:
            m = Meter.parse(value)
            known = [Meter.parse(v) for v in values]
        except MusicError:
            return default_label(values, kind)
        return str(min(known, key=lambda k: (abs(k.bar_ticks - m.bar_ticks),
                                             k.beat_ticks != m.beat_ticks, str(k))))
    return default_label(values, kind)


def conform(ds: Dataset, vocab: Vocab, indices: np.ndarray, default_style: str | None = None
            ) -> Conformed:
    """The tunes `indices` of `ds` in `vocab`: durations snapped (bars kept), pitches moved by
    octaves into range, unknown meter/mode/style labels mapped (see map_label; an unknown
    style becomes `default_style`, as in sampling). The same dataset comes back untouched
    when the vocabularies agree."""
    if ds.vocab.to_dict() == vocab.to_dict():
        return Conformed(ds, np.asarray(indices))
    out = Conformed(ds, np.zeros(0, np.int64))
    encoded: list[EncodedTune] = []
    for i in indices:
        enc = ds.tune(int(i))
        own = {"meter": enc.meter, "mode": enc.mode, "style": enc.style, "type": enc.tune_type}
        labels = {k: map_label(getattr(vocab, k + "s"), k, v) for k, v in own.items()}
        if default_style and enc.style not in vocab.styles:
            labels["style"] = default_style
        for k, v in labels.items():
            if v != own[k]:
                seen = out.unknown_labels.setdefault(k, {})
                seen[own[k]] = seen.get(own[k], 0) + 1
        try:
            mel = decode(enc, ds.vocab)
            new = encode(replace(mel, mode=labels["mode"], style=labels["style"],
                                 tune_type=labels["type"]), vocab)
        except MusicError:
            out.skipped_tunes += 1
            continue
        new.meter = labels["meter"]  # positions follow the real meter; only the label maps
        old = [(ds.vocab.duration_ticks(int(d)), ds.vocab.pitch_value(int(p)))
               for d, p in zip(enc.durations, enc.pitches)]
        moved = sum(a != (vocab.duration_ticks(int(d)), vocab.pitch_value(int(p)))
                    for a, d, p in zip(old, new.durations, new.pitches))
        out.snapped_notes += moved
        out.snapped_tunes += moved > 0
        encoded.append(new)
    out.dataset = Dataset.from_tunes(encoded, vocab, [0] * len(encoded))
    out.indices = np.arange(len(encoded))
    return out
