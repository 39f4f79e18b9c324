"""The dataset file: encoded tunes as flat numpy arrays plus JSON metadata, in one .npz.

Layout (all arrays, no pickle; load with allow_pickle=False):
  durations  int16 [notes]   duration token ids, all tunes concatenated
  pitches    int16 [notes]   pitch token ids
  positions  int16 [notes]   ticks since the last barline at each onset
  offsets    int64 [tunes+1] tune i is notes offsets[i]:offsets[i+1]
  start      int16 [tunes]   position in bar of the first note
  end        int16 [tunes]   position in bar after the last note
  meter, mode, style, type  int16 [tunes]  indices into the vocabulary's label lists
  tonic      int8  [tunes]   original tonic pitch class (tunes are stored at tonic C)
  split      int8  [tunes]   0 train, 1 valid, 2 test
  vocab      str   JSON of encoding.Vocab
  tunes      str   JSON list, one object per tune: title, source, number, style, meter, mode, key,
                   type, form (letters)
  forms      str   JSON list, one written form per tune (form.Form.to_dict)
  info       str   JSON: encoder version, ingest summary
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .encoding import EncodedTune, Vocab, streams
from .files import write_atomic
from .form import Form, TuneShape, form_stats
from .formfeatures import form_streams, tune_form
from .music import Meter

SPLITS = ("train", "valid", "test")


class DatasetError(ValueError):
    """A dataset file that is missing, truncated or not in this format."""


@dataclass
class Dataset:
    """All tunes of a dataset file, with per-tune accessors."""

    vocab: Vocab
    durations: np.ndarray
    pitches: np.ndarray
    positions: np.ndarray
    offsets: np.ndarray
    start: np.ndarray
    end: np.ndarray
    meter: np.ndarray
    mode: np.ndarray
    style: np.ndarray
    type: np.ndarray
    tonic: np.ndarray
    split: np.ndarray
    forms: list[Form] = field(default_factory=list)
    tunes: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_notes(self) -> int:
        return int(self.offsets[-1])

    def indices(self, split: str = "all") -> np.ndarray:
        """Tune indices of one split ('train', 'valid', 'test') or of 'all'."""
        if split == "all":
            return np.arange(len(self))
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}, all")
        return np.flatnonzero(self.split == SPLITS.index(split))

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def tune(self, i: int) -> EncodedTune:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        v = self.vocab
        return EncodedTune(
            durations=self.durations[a:b], pitches=self.pitches[a:b], positions=self.positions[a:b],
            meter=v.meters[self.meter[i]], mode=v.modes[self.mode[i]], style=v.styles[self.style[i]],
            tonic=int(self.tonic[i]), start=int(self.start[i]), end_position=int(self.end[i]),
            tune_type=v.types[self.type[i]], form=self.forms[i],
        )

    def streams(self, i: int) -> dict[str, np.ndarray]:
        """Model inputs/targets for tune i (see encoding.streams) plus its label ids."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        s = streams(self.durations[a:b], self.pitches[a:b], self.positions[a:b], int(self.end[i]))
        s.update(form_streams(self.tune(i), self.vocab))
        s["meter"], s["mode"], s["style"] = int(self.meter[i]), int(self.mode[i]), int(self.style[i])
        s["type"] = int(self.type[i])
        return s

    # construction ---------------------------------------------------------------------------
    @classmethod
    def from_tunes(cls, encoded: list[EncodedTune], vocab: Vocab, split: list[int],
                   tunes: list[dict] | None = None, info: dict | None = None) -> "Dataset":
        lengths = [len(e.durations) for e in encoded]
        cat = (lambda attr: np.concatenate([getattr(e, attr) for e in encoded]).astype(np.int16)
               if encoded else np.zeros(0, np.int16))
        return cls(
            vocab=vocab,
            durations=cat("durations"), pitches=cat("pitches"), positions=cat("positions"),
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            start=np.array([e.start for e in encoded], np.int16),
            end=np.array([e.end_position for e in encoded], np.int16),
            meter=np.array([vocab.label_id("meter", e.meter) for e in encoded], np.int16),
            mode=np.array([vocab.label_id("mode", e.mode) for e in encoded], np.int16),
            style=np.array([vocab.label_id("style", e.style) for e in encoded], np.int16),
            type=np.array([vocab.label_id("type", e.tune_type) for e in encoded], np.int16),
            tonic=np.array([e.tonic for e in encoded], np.int8),
            split=np.array(split, np.int8),
            forms=[tune_form(e, vocab) for e in encoded],
            tunes=list(tunes or [{} for _ in encoded]), info=dict(info or {}),
        )

    # persistence ----------------------------------------------------------------------------
    _ARRAYS = ("durations", "pitches", "positions", "offsets", "start", "end", "meter", "mode",
               "style", "type", "tonic", "split")

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically: a temp file in the same folder, then rename."""
        buf = io.BytesIO()
        np.savez_compressed(
            buf, **{k: getattr(self, k) for k in self._ARRAYS},
            vocab=np.array(self.vocab.to_json()), tunes=np.array(json.dumps(self.tunes)),
            forms=np.array(json.dumps([f.to_dict() for f in self.forms])),
            info=np.array(json.dumps(self.info)))
        write_atomic(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Dataset":
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"dataset file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in cls._ARRAYS}
                vocab = Vocab.from_dict(json.loads(str(z["vocab"])))
                tunes = json.loads(str(z["tunes"]))
                forms = [Form.from_dict(f) for f in json.loads(str(z["forms"]))]
                info = json.loads(str(z["info"]))
        except Exception as e:  # zipfile, KeyError, ValueError, JSON errors all mean "bad file"
            raise DatasetError(f"{path} is not a readable composer dataset ({e}); "
                               "ingest it again with this version") from None
        return cls(vocab=vocab, tunes=tunes, forms=forms, info=info, **arrays)


def type_forms(ds: Dataset) -> dict[str, dict]:
    """What the training tunes of each type are like: usual meter, form, pickup and style
    (form.form_stats); composing reads it from the checkpoint."""
    v = ds.vocab
    shapes = []
    for i in ds.indices("train"):
        meter = v.meters[ds.meter[i]]
        bar = Meter.parse(meter).bar_ticks
        shapes.append(TuneShape(v.types[ds.type[i]], meter, ds.forms[i],
                                (bar - int(ds.start[i])) % bar, v.styles[ds.style[i]]))
    return form_stats(shapes)


def style_counts(ds: Dataset) -> dict[str, int]:
    """Training tunes per style label; the sampler's default style is the most common one."""
    counts = np.bincount(ds.style[ds.indices("train")], minlength=len(ds.vocab.styles))
    return {name: int(c) for name, c in zip(ds.vocab.styles, counts)}
