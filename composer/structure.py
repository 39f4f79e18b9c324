"""Form measures of tunes, generated against real: cadences, repetition, phrases, near-copies.

Every measure reads the written form (each repeated part once, as in the dataset):
  tonic_ending     the last sounding note is the tonic (not measured where the written end
                   goes back, D.C. or D.S.: such a tune ends elsewhere)
  bar_repeat       share of full bars identical (onsets, durations, pitches) to an earlier bar
  window_recur     share of 8-note (interval, duration) windows that occur twice or more
  phrase_sim       best difflib ratio of bars 1-4 with a later 4-bar phrase (bars 5-8, 9-12, ..),
                   notes as (onset in the phrase, duration, pitch)
  repeat_signs     the tune is written with repeat signs
  cadence          share of part ends (each ending too) on the tonic or the dominant
  closing_echo     the last 4 bars follow the 4 before them note for note up to the tune's
                   last note, so the close can only copy a close the tune already made
                   (not measured under 8 full bars, nor where the written end goes back)
and `nearest` finds a tune's closest relative in a corpus (at tonic C), flagging near-copies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .form import similarity
from .music import Melody

MEASURES = ("tonic_ending", "bar_repeat", "window_recur", "phrase_sim", "repeat_signs", "cadence",
            "closing_echo")
WINDOW = 8
NEAR_COPY = 0.9


def _bars(m: Melody) -> list[tuple]:
    """Each full bar's notes as (position, duration, pitch), the pickup bar left out."""
    bar, start = m.meter.bar_ticks, m.start_position
    groups: dict[int, list] = {}
    for n, t in zip(m.notes, m.onsets()):
        groups.setdefault((start + t) // bar, []).append(((start + t) % bar, n.duration, n.pitch))
    first = 1 if start else 0
    return [tuple(groups.get(g, ())) for g in range(first, max(groups, default=-1) + 1)]


def measure(m: Melody) -> dict[str, float]:
    """The form measures of one tune (see the module docstring)."""
    bars = _bars(m)
    seen: set = set()
    repeats = 0
    for b in bars:
        repeats += b in seen
        seen.add(b)
    items, prev = [], None
    for n in m.notes:
        items.append(("r", n.duration) if n.pitch is None else (
            None if prev is None else n.pitch - prev, n.duration))
        prev = n.pitch if n.pitch is not None else prev
    windows = [tuple(items[i:i + WINDOW]) for i in range(len(items) - WINDOW + 1)]
    counts = Counter(windows)
    phrases = [_phrase(bars[i:i + 4]) for i in range(0, len(bars) - 3, 4)]
    phrase_sim = max((similarity(phrases[0], p) for p in phrases[1:]), default=0.0)
    tonic, dominant = m.tonic % 12, (m.tonic + 7) % 12
    ends = [p for p in m.part_ends() if p is not None]
    goes_back = m.form is not None and m.form.da_capo
    last, before = bars[-4:], bars[-8:-4]
    return {
        "tonic_ending": float("nan") if goes_back else float(m.ends_on_tonic()),
        "bar_repeat": repeats / max(1, len(bars)),
        "window_recur": sum(counts[w] > 1 for w in windows) / max(1, len(windows)),
        "phrase_sim": phrase_sim,
        "repeat_signs": float(m.form is not None and m.form.has_repeats),
        "cadence": sum(p % 12 in (tonic, dominant) for p in ends) / max(1, len(ends)),
        "closing_echo": (float("nan") if goes_back or len(bars) < 8 else
                         float(last[:3] == before[:3]
                               and last[3][:-1] == before[3][:len(last[3]) - 1])),
    }


def _mean(values: list[float]) -> float:
    """The mean of the values measured (nan where none was)."""
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def _phrase(bars: Sequence[tuple]) -> list[tuple]:
    out = []
    for k, b in enumerate(bars):
        out += [(k, pos, d, p) for pos, d, p in b]
    return out


def summarize(tunes: Sequence[Melody]) -> dict[str, float]:
    """Mean of each measure over the tunes (and how many there were)."""
    rows = [measure(m) for m in tunes]
    out = {k: _mean([r[k] for r in rows]) for k in MEASURES}
    out["tunes"] = len(rows)
    return out


# --- near-copies -----------------------------------------------------------------------------

def _signature(m: Melody) -> list[tuple]:
    """Notes at tonic C as (pitch, duration): what copies are judged by, in any key."""
    return [(n.pitch, n.duration) for n in m.to_tonic(0).notes]


def _grams(sig: list[tuple], n: int = 4) -> set:
    return {tuple(sig[i:i + n]) for i in range(len(sig) - n + 1)}


class CopyIndex:
    """Tunes of a corpus, to find the one nearest a given tune (at tonic C)."""

    def __init__(self, tunes: Sequence[Melody], names: Sequence[str], shortlist: int = 20):
        self.sigs = [_signature(m) for m in tunes]
        self.grams = [_grams(s) for s in self.sigs]
        self.names = list(names)
        self.shortlist = shortlist

    def nearest(self, m: Melody) -> tuple[str, float]:
        """(name, difflib ratio) of the most similar tune: the best of the few that share the
        most 4-note grams with it."""
        sig = _signature(m)
        grams = _grams(sig)
        overlap = np.array([len(grams & g) / max(1, len(grams | g)) for g in self.grams])
        best = ("", 0.0)
        for i in np.argsort(-overlap)[:self.shortlist]:
            score = similarity(sig, self.sigs[i])
            if score > best[1]:
                best = (self.names[i], score)
        return best
