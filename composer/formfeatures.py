"""The model's form inputs: where the next note stands in the form, and what it can look back at.

Every step of the model predicts one note (or END) that starts at tick T of the written tune.
Its form inputs, all categorical:
  phrase_bar   bar of T within its phrase (0..7, 8 for the pickup bar)
  part_bar     bar within its part, in one playing (0..15, 16 for the pickup bar)
  part_left    bars left in the part after this one (0..15, 16 for the pickup bar)
  tune_left    written bars left in the tune after this one (0..31, 32 for the pickup bar)
  part_index   part number (0..3, later parts share 3)
  role         the part's kind (new, repeat or variation of an earlier part) * 6
               + played twice * 3 + ending (0 body, 1 first, 2 second)
and two look-backs, one phrase back (the same bar of the previous phrase) and one part back
(the same bar of the part this one repeats or varies, else of the previous part), each as
  *_pitch      pitch token sounding at the same place there (0: nothing to look back at)
  *_dur        its duration token if a note starts exactly there, LOOK_SOUNDING if one is
               only sounding there (0: nothing to look back at)
  *_match      0 nothing to look back at, 1 the phrase has left it and its last note missed,
               2 every note of the phrase so far has matched it (same pitch, same duration,
               same place), 3 the phrase has left it but its last note matched: a varied
               phrase that has come back (in training tunes the next note matches half the
               time then, one time in twelve after a miss)
A part's last bar has no phrase look-back, and the tune's last bar none at all: a close there
answers only to the closes before it, which were weaker (a phrase's, an earlier part's). A
model that read them copied the half cadence of a phrase, or an A part's close on the
dominant, into the tune's last bar (a fifth of its reels closed on the phrase before's
close, against 7% of real reels).
The melody network, which knows the next note's duration, also reads
  closes       what the note ends: 0 nothing, 1 a phrase, 2 a part or an ending, 3 the tune
               (the written end of a tune that goes back, D.C. or D.S., closes only a part)
`form_streams` computes them for a whole tune at once (training, scoring, priming);
`FormTracker` computes the same values note by note for a batch of tunes being sampled.
A test holds the two to the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .form import Form, bars_after_pickup
from .music import Meter

FORM_KEYS = ("phrase_bar", "part_bar", "part_left", "tune_left", "part_index", "role",
             "back_phrase_pitch", "back_phrase_dur", "back_phrase_match",
             "back_part_pitch", "back_part_dur", "back_part_match")
_CAPS = {"phrase_bar": 8, "part_bar": 16, "part_left": 16, "tune_left": 32, "part_index": 4}
CLOSES_KEY = "closes"
CLOSES_SIZE = 4
LOOK_NONE = 0
LOOK_SOUNDING = 1


def feature_sizes(n_pitches: int, n_durations: int) -> dict[str, int]:
    """Number of values of each form input."""
    sizes = {k: c + 1 for k, c in _CAPS.items()}
    sizes["part_index"] = _CAPS["part_index"]
    sizes["role"] = 18
    for back in ("phrase", "part"):
        sizes[f"back_{back}_pitch"] = n_pitches
        sizes[f"back_{back}_dur"] = n_durations
        sizes[f"back_{back}_match"] = 4
    return sizes


@dataclass
class Layout:
    """Per bar of the tune's grid (the pickup bar first, if any): its form inputs, its phrase,
    and the bars its two look-backs read (-1: none)."""

    bar: int  # ticks per bar
    start: int  # position in the bar of the first note
    total: int  # ticks of the whole written tune
    features: np.ndarray  # int64 [bars, 6]
    phrase: np.ndarray  # int64 [bars], non-decreasing
    back: np.ndarray  # int64 [2, bars]: phrase look-back bar, part look-back bar
    jumps: tuple[int, ...] = ()  # ticks where the music jumps when played (part and ending ends)
    closes: np.ndarray | None = None  # int64 [total + 1]: what a note ending at each tick closes

    @classmethod
    def of(cls, form: Form, bar: int, start: int, total: int) -> "Layout":
        first = 1 if start else 0
        written = form.layout()
        grid = max(first + len(written), -(-(start + total) // bar))
        feats = np.zeros((grid, 6), np.int64)
        phrase = np.full(grid, -1, np.int64)
        back = np.full((2, grid), -1, np.int64)
        parts = form.parts
        by_phrase: dict[tuple[int, int], int] = {}
        by_part: dict[tuple[int, int, int], int] = {}
        for w, wb in enumerate(written):
            g = w + first
            by_phrase.setdefault((wb.phrase, wb.phrase_bar), g)
            by_part.setdefault((wb.part, wb.bar, wb.ending == 2), g)
        if first:
            feats[0] = (_CAPS["phrase_bar"], _CAPS["part_bar"], _CAPS["part_left"],
                        _CAPS["tune_left"], 0, _role(parts[0], 0))
        for w, wb in enumerate(written):
            g, p = w + first, parts[wb.part]
            last = len(written) - 1 - w
            part_left = max(p.bars - 1 - wb.bar, 0)
            feats[g] = (min(wb.phrase_bar, 7), min(wb.bar, 15), min(part_left, 15),
                        min(last, 31), min(wb.part, 3), _role(p, wb.ending))
            phrase[g] = wb.phrase
            if part_left > 0:  # a part's closing bar: no phrase look-back
                back[0, g] = by_phrase.get((wb.phrase - 1, wb.phrase_bar), -1)
            src = p.source if p.source is not None else wb.part - 1
            if src >= 0 and last > 0:  # the tune's closing bar: no part look-back either
                second = wb.ending == 2
                back[1, g] = by_part.get((src, wb.bar, second), by_part.get((src, wb.bar, False), -1))
        for g in range(max(1, first + len(written)), grid):  # past the form: as its last bar
            feats[g], phrase[g] = feats[g - 1], phrase[g - 1]
        jumps, w = [], first
        for p in parts:
            if p.ending:
                jumps += [w + p.bars - p.ending, w + p.bars]
            w += p.written
            jumps.append(w)
        jumps = tuple(sorted({g * bar - start for g in jumps if 0 < g * bar - start < total}))
        closes = np.zeros(total + 1, np.int64)
        for g in range(1, grid):
            if phrase[g] != phrase[g - 1] and 0 < g * bar - start < total:
                closes[g * bar - start] = 1
        closes[list(jumps)] = 2
        closes[total] = 2 if form.da_capo else 3  # a D.C. tune ends elsewhere when played
        return cls(bar, start, total, feats, phrase, back, jumps, closes)

    @cached_property
    def lists(self) -> tuple[list, list, list]:
        """features, phrase and back as Python lists, for the one-row sampling loop."""
        return self.features.tolist(), self.phrase.tolist(), self.back.tolist()

    def bar_of(self, t: np.ndarray) -> np.ndarray:
        """Grid bar of ticks `t` (the end of the tune counts as its last bar)."""
        return np.minimum((self.start + t) // self.bar, len(self.phrase) - 1)

    def source(self, t: np.ndarray, g: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Look-back k's tick for ticks t in bars g, and whether there is one."""
        h = self.back[k, g]
        valid = (h >= 0) & (t < self.total)
        return np.where(valid, t + (h - g) * self.bar, 0), valid


def _match(missed: np.ndarray, last_good: np.ndarray) -> np.ndarray:
    """*_match where there is a look-back, from the notes of the phrase that missed it so far
    and whether the last note matched it."""
    return np.where(missed == 0, 2, np.where(last_good, 3, 1))


def _role(part, ending: int) -> int:
    return part.kind * 6 + int(part.repeat) * 3 + ending


def tune_ticks(enc, vocab) -> int:
    """Length in ticks of an encoded tune."""
    return int(sum(vocab.durations[int(d) - 3] for d in enc.durations))


def tune_form(enc, vocab, total: int | None = None) -> Form:
    """An encoded tune's form, or one part over all its bars where it has none."""
    if enc.form is not None:
        return enc.form
    bar = Meter.parse(enc.meter).bar_ticks
    total = tune_ticks(enc, vocab) if total is None else total
    return Form.through(max(1, bars_after_pickup(enc.start, total, bar)))


def form_streams(enc, vocab, form: Form | None = None, total: int | None = None
                 ) -> dict[str, np.ndarray]:
    """The form inputs of every step of an encoded tune (n notes: n + 1 steps, the last
    predicting END), as int64 arrays keyed by FORM_KEYS. `form` and `total` (ticks) default
    to the tune's own; a fragment being continued passes those of the whole tune to be."""
    dur_ticks = np.array([0] * 3 + list(vocab.durations), np.int64)[np.asarray(enc.durations, np.int64)]
    onsets = np.concatenate([[0], np.cumsum(dur_ticks)]).astype(np.int64)
    total = int(onsets[-1]) if total is None else int(total)
    bar = Meter.parse(enc.meter).bar_ticks
    lay = Layout.of(form or tune_form(enc, vocab, total), bar, enc.start, total)
    return steps_features(lay, onsets, np.asarray(enc.durations, np.int64),
                          np.asarray(enc.pitches, np.int64))


def steps_features(lay: Layout, onsets: np.ndarray, durs: np.ndarray, pitches: np.ndarray
                   ) -> dict[str, np.ndarray]:
    """form_streams on a layout: onsets [n + 1] (the last is the end of the notes given),
    duration and pitch tokens [n]."""
    n = len(durs)
    t = onsets.copy()
    t[n] = lay.total if n == 0 or onsets[n] >= lay.total else onsets[n]
    g = lay.bar_of(t)
    out = {k: lay.features[g, i] for i, k in enumerate(FORM_KEYS[:6])}
    ends = np.minimum(onsets[1:], lay.total)
    out[CLOSES_KEY] = np.concatenate([lay.closes[ends], [0]])  # the END step closes nothing
    ph = lay.phrase[g]
    seg = np.searchsorted(ph[:n], ph, side="left")  # first note of each step's phrase
    for k, name in enumerate(("phrase", "part")):
        src, valid = lay.source(t, g, k)
        j = np.clip(np.searchsorted(onsets[:n], src, side="right") - 1, 0, max(n - 1, 0))
        if n:
            pitch = np.where(valid, pitches[j], LOOK_NONE)
            dur = np.where(valid, np.where(onsets[j] == src, durs[j], LOOK_SOUNDING), LOOK_NONE)
            good = valid[:n] & (pitch[:n] == pitches) & (dur[:n] == durs)
        else:
            pitch = dur = np.zeros(1, np.int64)
            good = np.zeros(0, bool)
        bad = np.concatenate([[0], np.cumsum(~good)])
        count = bad[np.arange(n + 1)] - bad[np.minimum(seg, n)]
        out[f"back_{name}_pitch"], out[f"back_{name}_dur"] = pitch, dur
        last_good = np.concatenate([[False], good])  # step i: did note i - 1 match?
        out[f"back_{name}_match"] = np.where(valid, _match(count, last_good), 0)
    return {k: np.asarray(v, np.int64) for k, v in out.items()}


class FormTracker:
    """The form inputs of a batch of tunes being sampled, one step at a time.

    features(t) gives the inputs of the step that predicts the notes starting at ticks t
    [rows]; add() records the notes then drawn. Keeps, per row, the pitch and duration token
    at every tick written so far (uint8: both vocabularies are far below 256 tokens)."""

    def __init__(self, lay: Layout, rows: int, closes: bool = False):
        self.lay = lay
        self.rows = rows
        self.closes = closes  # the model also reads what each note closes (lay.closes)
        self.pitch = np.zeros((rows, lay.total + 1), np.uint8)
        self.dur = np.zeros((rows, lay.total + 1), np.uint8)
        self.bad = np.zeros((rows, 2), np.int64)  # notes of the current phrase that missed
        self.good = np.zeros((rows, 2), bool)  # whether the last note added matched
        self.phrase = np.full(rows, -2, np.int64)  # phrase of the last note added
        self.last: tuple = ()

    def select(self, rows: np.ndarray) -> "FormTracker":
        new = FormTracker.__new__(FormTracker)
        new.lay, new.rows, new.closes = self.lay, len(rows), self.closes
        new.pitch, new.dur, new.bad, new.good, new.phrase = (
            x[rows] for x in (self.pitch, self.dur, self.bad, self.good, self.phrase))
        new.last = tuple(x[rows] for x in self.last) if self.last else ()
        return new

    def features(self, t: np.ndarray) -> np.ndarray:
        """[rows, len(FORM_KEYS)] inputs for notes starting at ticks t [rows]."""
        lay, rows = self.lay, np.arange(self.rows)
        g = lay.bar_of(t)
        ph = lay.phrase[g]
        cols = [lay.features[g]]
        looks = []
        for k in range(2):
            src, valid = lay.source(t, g, k)
            pitch = np.where(valid, self.pitch[rows, src], LOOK_NONE)
            dur = np.where(valid, self.dur[rows, src], LOOK_NONE)
            count = np.where(ph == self.phrase, self.bad[:, k], 0)
            match = np.where(valid, _match(count, self.good[:, k]), 0)
            cols.append(np.stack([pitch, dur, match], 1))
            looks.append((pitch, dur, valid))
        self.last = (ph, *looks[0], *looks[1])
        return np.concatenate(cols, 1).astype(np.int64)

    # --- one row on Python ints: the sampler's latency-critical case ------------------------
    def features_one(self, t: int) -> np.ndarray:
        """features() of row 0 at tick t, as [1, len(FORM_KEYS)]; the tracker must have 1 row."""
        lay = self.lay
        feats, phrases, back = lay.lists
        g = min((lay.start + t) // lay.bar, len(phrases) - 1)
        ph = phrases[g]
        row = list(feats[g])
        same = ph == int(self.phrase[0])
        last = [ph]
        for k in range(2):
            h = back[k][g]
            if h >= 0 and t < lay.total:
                src = t + (h - g) * lay.bar
                pitch, dur = int(self.pitch[0, src]), int(self.dur[0, src])
                match = 2 if not (same and self.bad[0, k]) else 3 if self.good[0, k] else 1
                row += (pitch, dur, match)
                last += (pitch, dur, True)
            else:
                row += (LOOK_NONE, LOOK_NONE, 0)
                last += (LOOK_NONE, LOOK_NONE, False)
        self.last = tuple(last)
        return np.array([row], np.int64)

    def add_one(self, t: int, dur_tok: int, dur_ticks: int, pitch: int) -> None:
        """add() of one note to row 0, after features_one(t)."""
        ph, p0, d0, v0, p1, d1, v1 = self.last
        if ph != self.phrase[0]:
            self.bad[0] = 0
            self.phrase[0] = ph
        for k, (p, d, v) in enumerate(((p0, d0, v0), (p1, d1, v1))):
            good = bool(v and p == pitch and d == dur_tok)
            self.good[0, k] = good
            self.bad[0, k] += not good
        total = self.lay.total
        if dur_ticks:
            self.pitch[0, t:min(t + dur_ticks, total + 1)] = pitch
            self.dur[0, t:min(t + dur_ticks, total + 1)] = LOOK_SOUNDING
        self.dur[0, min(t, total)] = dur_tok

    def add(self, t: np.ndarray, dur_tok: np.ndarray, dur_ticks: np.ndarray, pitch: np.ndarray
            ) -> None:
        """Record the notes drawn after features(t): onsets t, tokens and lengths [rows]."""
        ph, p0, d0, v0, p1, d1, v1 = self.last
        new = ph != self.phrase
        self.bad[new] = 0
        self.phrase = ph
        for k, (p, d, v) in enumerate(((p0, d0, v0), (p1, d1, v1))):
            good = v & (p == pitch) & (d == dur_tok)
            self.good[:, k] = good
            self.bad[:, k] += ~good
        span = int(dur_ticks.max()) if len(dur_ticks) else 0
        if span:
            cols = t[:, None] + np.arange(span)[None]
            inside = np.arange(span)[None] < dur_ticks[:, None]
            r = np.broadcast_to(np.arange(self.rows)[:, None], cols.shape)[inside]
            c = np.minimum(cols[inside], self.lay.total)
            self.pitch[r, c] = np.broadcast_to(pitch[:, None], cols.shape)[inside]
            self.dur[r, c] = LOOK_SOUNDING
            self.dur[np.arange(self.rows), np.minimum(t, self.lay.total)] = dur_tok
