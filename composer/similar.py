"""Is this a known tune? An index of the tunes a model was built from, and look-ups in it.

Tunes are compared by what survives a change of key: each note as (interval from the previous
sounding note, duration), rests included. A tune's shingles are its runs of SHINGLE such notes,
hashed; the similarity of two tunes is the Jaccard index of their shingle sets (1 for the same
tune in any key). A bar agrees with a bar of another tune when both have the same rhythm and the
same intervals inside the bar.

The index file (`similar.npz` in the model folder, no pickle): `hashes` uint32 [postings],
sorted, with `tunes` int32 [postings], the tune each posting is from; `sizes` int32 [tunes], the
number of distinct shingles of each tune; `bar_hashes` uint32 with `bar_offsets` int64
[tunes + 1], the hashes of each tune's distinct bars; and `meta`, a JSON list of {title, style, source, number}."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import write_atomic
from .music import Melody, Meter, bar_number

INDEX_FILE = "similar.npz"
SHINGLE = 4  # notes in a shingle
REST_STEP = 99  # the "interval" of a rest
_MULT = np.uint64(0x9E3779B97F4A7C15)


def note_codes(pitches: list[int | None], durations: list[int]) -> np.ndarray:
    """One int64 per note: its interval from the previous sounding note (REST_STEP for a rest)
    and its duration in ticks."""
    codes, last = [], None
    for p, d in zip(pitches, durations):
        step = REST_STEP if p is None else (0 if last is None else max(-63, min(63, p - last)))
        codes.append((step + 128) * 4096 + min(int(d), 4095))
        last = p if p is not None else last
    return np.array(codes, np.int64)


def shingles(codes: np.ndarray) -> np.ndarray:
    """The distinct hashed runs of SHINGLE notes of a tune (all its notes if fewer), uint32."""
    if len(codes) == 0:
        return np.zeros(0, np.uint32)
    n = max(1, len(codes) - SHINGLE + 1)
    h = np.zeros(n, np.uint64)
    with np.errstate(over="ignore"):
        for k in range(min(SHINGLE, len(codes))):
            h = (h + codes[k:k + n].astype(np.uint64)) * _MULT
    return np.unique((h >> np.uint64(32)).astype(np.uint32))


def bar_hashes(codes: np.ndarray, onsets: list[int], start: int, bar: int) -> dict[int, int]:
    """{bar number: hash} of a tune's bars, numbered as `score` numbers them (0: a pickup, 1:
    the first full bar); a bar's hash covers its notes' durations, positions and intervals, the
    first note's interval from the bar before left out."""
    groups: dict[int, list[int]] = {}
    for c, t in zip(codes.tolist(), onsets):
        number = bar_number(t, start, bar)
        groups.setdefault(number, []).append(
            ((c % 4096) if number not in groups else c) * 1024 + (start + t) % bar)
    return {b: hash(tuple(notes)) & 0xFFFFFFFF for b, notes in groups.items()}


def melody_features(m: Melody) -> tuple[np.ndarray, dict[int, int]]:
    """A melody's shingles and bar hashes."""
    codes = note_codes([n.pitch for n in m.notes], [n.duration for n in m.notes])
    return shingles(codes), bar_hashes(codes, m.onsets(), m.start_position, m.meter.bar_ticks)


@dataclass
class Match:
    """A known tune like the one asked about: similarity (0..1), and the bars of the asked
    tune that it has too (bar 0 is a pickup)."""

    title: str
    style: str
    source: str
    similarity: float
    bars: list[int]

    def to_dict(self) -> dict:
        return {"title": self.title, "style": self.style, "source": self.source,
                "similarity": round(self.similarity, 3), "bars": bar_ranges(self.bars)}


def bar_ranges(bars: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7'."""
    out, i = [], 0
    while i < len(bars):
        j = i
        while j + 1 < len(bars) and bars[j + 1] == bars[j] + 1:
            j += 1
        out.append(str(bars[i]) if i == j else f"{bars[i]}-{bars[j]}")
        i = j + 1
    return ", ".join(out)


class SimilarIndex:
    """The index of a model's corpus; `nearest` looks a tune up."""

    def __init__(self, arrays: dict[str, np.ndarray], meta: list[dict]) -> None:
        self.hashes, self.tunes = arrays["hashes"], arrays["tunes"]
        self.sizes = arrays["sizes"]
        self.bar_hashes, self.bar_offsets = arrays["bar_hashes"], arrays["bar_offsets"]
        self.meta = meta

    @classmethod
    def load(cls, model_dir: str | Path) -> SimilarIndex | None:
        """The index in a model folder, or None if it has none."""
        path = Path(model_dir) / INDEX_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "meta"}
            meta = json.loads(str(z["meta"]))
        return cls(arrays, meta)

    def __len__(self) -> int:
        return len(self.sizes)

    def nearest(self, melody: Melody, count: int = 5) -> list[Match]:
        """The `count` most similar known tunes, most similar first."""
        q, q_bars = melody_features(melody)
        if len(q) == 0:
            return []
        lo = np.searchsorted(self.hashes, q, side="left")
        hi = np.searchsorted(self.hashes, q, side="right")
        hits = [self.tunes[a:b] for a, b in zip(lo.tolist(), hi.tolist()) if b > a]
        if not hits:
            return []
        shared = np.bincount(np.concatenate(hits), minlength=len(self.sizes))
        sim = shared / np.maximum(1, self.sizes + len(q) - shared)
        top = np.argsort(-sim, kind="stable")[:count]
        out = []
        for i in top.tolist():
            if sim[i] <= 0:
                break
            theirs = set(self.bar_hashes[self.bar_offsets[i]:self.bar_offsets[i + 1]].tolist())
            agree = sorted(b for b, h in q_bars.items() if h in theirs)
            m = self.meta[i]
            out.append(Match(m.get("title", ""), m.get("style", ""), m.get("source", ""),
                             float(sim[i]), agree))
        return out


def build_index(dataset, out_dir: str | Path) -> Path:
    """Write the index of every tune of `dataset` (all splits) into `out_dir`; its path."""
    v = dataset.vocab
    ticks = np.array([0] * 3 + list(v.durations), np.int64)
    all_h, all_t, sizes, bars, bar_off, meta = [], [], [], [], [0], []
    for i in range(len(dataset)):
        enc = dataset.tune(i)
        durs = ticks[np.asarray(enc.durations, np.int64)]
        pitches = [v.pitch_value(int(t)) for t in enc.pitches]
        codes = note_codes(pitches, durs.tolist())
        h = shingles(codes)
        all_h.append(h)
        all_t.append(np.full(len(h), i, np.int32))
        sizes.append(len(h))
        onsets = np.concatenate([[0], np.cumsum(durs)[:-1]]).tolist() if len(durs) else []
        bars.extend(bar_hashes(codes, onsets, enc.start, Meter.parse(enc.meter).bar_ticks).values())
        bar_off.append(len(bars))
        t = dataset.tunes[i] if i < len(dataset.tunes) else {}
        meta.append({"title": t.get("title", ""), "style": enc.style,
                     "source": f"{t.get('source', '')}#{t.get('number', '')}".strip("#")})
    h, tunes = np.concatenate(all_h), np.concatenate(all_t)
    order = np.argsort(h, kind="stable")
    arrays = {"hashes": h[order], "tunes": tunes[order], "sizes": np.array(sizes, np.int32),
              "bar_hashes": np.array(bars, np.uint32), "bar_offsets": np.array(bar_off, np.int64),
              "meta": np.array(json.dumps(meta, ensure_ascii=False))}
    path = Path(out_dir) / INDEX_FILE
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_atomic(path, buf.getvalue())
    return path
