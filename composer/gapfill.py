"""Filling a gap between fixed notes: every row of a batch draws its own notes for the gap
(exactly its length, with the rhythm plan) and then reads the fixed notes after it, so that each
candidate gap is weighed by how likely it makes what follows. One loop does both, so the gap
is never read twice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import cancel
from .generate import MIN_TEMPERATURE, RhythmPlan, Start, bits, by_row, draw

_COMPACT = 8  # compact the batch when an eighth of its rows are done


@dataclass
class Fixed:
    """The fixed notes read after a gap: duration and pitch tokens [n], and their onsets in
    ticks from the start of the tune [n]."""

    durations: np.ndarray
    pitches: np.ndarray
    onsets: np.ndarray


@dataclass
class Candidate:
    """One row's gap: its tokens, (rhythm bits, pitch bits) per gap note under the model, and
    the bits of the fixed notes after it given this gap."""

    durations: list[int]
    pitches: list[int]
    surprisal: list[tuple[float, float]]
    fixed_bits: float


def fill_gap(net, begin: Start, plan: RhythmPlan, bar: int, ticks: np.ndarray,
             pitch_bias: np.ndarray, temperature: float, top_p: float, seed: int, gap_end: int,
             fixed: Fixed, tracker=None, closes: np.ndarray | None = None) -> list[Candidate]:
    """Draw a gap of `begin.remaining` ticks ending at tick `gap_end` on every row of `net`
    (an engine batch primed with the notes before the gap), then read `fixed`.

    ticks: ticks of each duration token; pitch_bias: additive mask over pitch tokens; tracker:
    the rows' form inputs (a FormTracker that has read the notes before the gap) for a model
    that reads them; closes: what a note ending at each tick closes, for a model that reads it.
    """
    gen = np.random.default_rng(seed)
    inv_t = 1.0 / max(float(temperature), MIN_TEMPERATURE)
    rows, n_fixed = net.rows, len(fixed.durations)
    total = None if closes is None else len(closes) - 1
    live = np.arange(rows)
    d_in = np.full(rows, begin.dur_in, np.int64)
    p_in = np.full(rows, begin.pitch_in, np.int64)
    pos_in = np.full(rows, begin.pos_in, np.int64)
    pos_out = np.full(rows, begin.pos_out, np.int64)
    rem = np.full(rows, begin.remaining, np.int64)  # ticks of the gap still to draw
    j = np.zeros(rows, np.int64)  # fixed notes read, once the gap is drawn
    fixed_bits = np.zeros(rows)
    log = []  # per step: (original rows, durations, pitches, rhythm bits, pitch bits) of gap notes
    fd, fp = np.append(fixed.durations, 0), np.append(fixed.pitches, 0)
    fo = np.append(fixed.onsets, gap_end)
    while len(live):
        cancel.check()
        drawing = rem > 0
        k = np.minimum(j, n_fixed)
        onset = np.where(drawing, gap_end - rem, fo[k])
        form = None if tracker is None else tracker.features(onset)
        z = net.rhythm(d_in, p_in, pos_in, pos_out, form)
        u = gen.random((2, len(live)))
        d = np.where(drawing, draw(z, plan.bias[np.maximum(rem, 0)], inv_t, top_p, u[0]), fd[k])
        rb = bits(z, d)
        tick = ticks[d]
        zp = net.melody(d, None if closes is None else closes[np.minimum(onset + tick, total)])
        p = np.where(drawing, draw(zp, np.broadcast_to(pitch_bias, zp.shape), inv_t, top_p, u[1]),
                     fp[k])
        pb = bits(zp, p)
        if drawing.any():
            log.append((live[drawing], d[drawing], p[drawing], rb[drawing], pb[drawing]))
        reading = ~drawing & (j < n_fixed)
        fixed_bits[live[reading]] += rb[reading] + pb[reading]
        if tracker is not None:
            tracker.add(onset, d, tick, p)
        rem = np.where(drawing, rem - tick, rem)
        j = np.where(reading, j + 1, j)
        d_in, p_in, pos_in, pos_out = d, p, pos_out, (pos_out + tick) % bar
        done = (rem <= 0) & (j >= n_fixed)
        if done.sum() * _COMPACT >= len(live):  # keep the rows still working
            keep = np.flatnonzero(~done)
            net = net.select(keep)
            tracker = None if tracker is None else tracker.select(keep)
            live, d_in, p_in, pos_in, pos_out, rem, j = (
                x[keep] for x in (live, d_in, p_in, pos_in, pos_out, rem, j))
    return _candidates(log, fixed_bits, rows)


def _candidates(log: list, fixed_bits: np.ndarray, rows: int) -> list[Candidate]:
    return [Candidate(d, p, s, float(fixed_bits[r])) for r, (d, p, s) in enumerate(by_row(log, rows))]


def resample(candidates: list[Candidate], count: int, seed: int) -> list[int]:
    """`count` distinct candidates drawn in proportion to the probability they give the fixed
    notes after the gap (importance resampling, without replacement: Gumbel top-k)."""
    logw = -np.array([c.fixed_bits for c in candidates]) * np.log(2)
    keys = logw + np.random.default_rng(seed).gumbel(size=len(logw))
    return np.argsort(-keys, kind="stable")[:count].tolist()
