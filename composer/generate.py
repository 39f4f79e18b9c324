"""Note-by-note generation under hard constraints: rhythm plans, masked nucleus draws, the loops.

Each step draws a duration from the rhythm network, then a pitch from the melody network given
that duration. The bar structure is enforced by masking, never by truncation: `rhythm_plan`
tells, for every number of ticks left, which durations keep the tune completable; END is
allowed exactly at the end and forced there. Random numbers are drawn up front from one seeded
numpy Generator, so the same seed and arguments give the same tune, whichever network runs
the steps (the numpy engine or the torch model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import cancel
from .encoding import END, N_SPECIAL, REST, Vocab
from .formfeatures import FormTracker
from .music import Meter

_CHUNK = 64  # steps of uniforms drawn at a time
_LN2 = math.log(2)


# Below this, sampling is already greedy; a smaller temperature would only overflow the scaled
# float32 logits (inf - inf = NaN), so it counts as this one.
MIN_TEMPERATURE = 1e-4


@dataclass
class RhythmPlan:
    """Allowed duration tokens for every number of ticks `r` left before the final barline.

    bias[r] is 0 for an allowed token and -inf otherwise. The position in the bar of a note
    started with r ticks left is (end_position - r) mod bar.
    """

    bias: np.ndarray  # float32 [r_max + 1, n_durations]
    reach: np.ndarray  # bool [r_max + 1]: r ticks can be filled exactly
    end_position: int


def rhythm_plan(vocab: Vocab, meter: Meter, end_position: int, r_max: int,
                barriers: tuple[int, ...] = ()) -> RhythmPlan:
    """Dynamic programme over the remaining ticks. A duration d started with r ticks left (at
    position pos) is allowed iff d <= r, r - d can itself be filled, the note crosses no
    barline unless it starts and ends on a beat (a tied-over beat, as folk tunes do), and it
    crosses none of `barriers` (ticks left where a note must end: where a part ends)."""
    bar, beat = meter.bar_ticks, meter.beat_ticks
    durs = np.array(vocab.durations, np.int64)
    n_tok = vocab.n_durations
    ok = np.zeros((r_max + 1, n_tok), bool)
    reach = np.zeros(r_max + 1, bool)
    ok[0, END] = reach[0] = True
    max_d = int(durs.max())
    period_from = None
    for r in range(1, r_max + 1):
        pos = (end_position - r) % bar
        fits = durs <= r
        rest = np.where(fits, r - durs, 0)
        cross = pos + durs > bar
        good = fits & reach[rest] & (~cross | ((pos % beat == 0) & ((pos + durs) % beat == 0)))
        for b in barriers:
            if r > b:
                good &= rest >= b
        ok[r, N_SPECIAL:] = good
        reach[r] = good.any()
        # once the last max_d + 1 rows repeat those one bar earlier, every later row does too
        if r >= max_d + 2 * bar + max(barriers, default=0) and np.array_equal(reach[r - max_d:r + 1],
                                                  reach[r - max_d - bar:r + 1 - bar]):
            period_from = r + 1
            break
    if period_from is not None:
        for r in range(period_from, r_max + 1, bar):
            n = min(bar, r_max + 1 - r)
            ok[r:r + n] = ok[r - bar:r - bar + n]
            reach[r:r + n] = reach[r - bar:r - bar + n]
    bias = np.where(ok, 0.0, -np.inf).astype(np.float32)
    return RhythmPlan(bias, reach, end_position)


def draw(z: np.ndarray, bias: np.ndarray, inv_t: float, top_p: float, u: np.ndarray
          ) -> np.ndarray:
    """One token per row from logits z [B, n]: temperature, additive mask, nucleus (top-p),
    then inverse-CDF sampling with the pre-drawn uniforms u [B] in [0, 1)."""
    x = z * inv_t
    x += bias
    x -= x.max(axis=1, keepdims=True)
    np.exp(x, out=x)
    rows = np.arange(len(x))
    if top_p < 1.0:
        order = np.argsort(x, axis=1, kind="stable")[:, ::-1]
        c = np.cumsum(x[rows[:, None], order], axis=1)
        k = (c < top_p * c[:, -1:]).sum(axis=1)  # the token that reaches top_p of the mass
        j = (c <= (u * c[rows, k])[:, None]).sum(axis=1)
        return order[rows, j]
    c = np.cumsum(x, axis=1)
    return (c <= u[:, None] * c[:, -1:]).sum(axis=1)


def draw_one(z: np.ndarray, bias: np.ndarray, inv_t: float, top_p: float, u: float,
              x: np.ndarray) -> int:
    """draw() for a single row z [n], using the work buffer x [n] (few numpy calls: this runs
    twice per note)."""
    if inv_t == 1.0:
        np.add(z, bias, out=x)
    else:
        np.multiply(z, inv_t, out=x)
        x += bias
    x -= x.max()
    np.exp(x, out=x)
    if top_p < 1.0:
        order = x.argsort(kind="stable")[::-1]
        c = x[order].cumsum()
        k = c.searchsorted(top_p * c[-1])
        return int(order[c.searchsorted(u * c[k], side="right")])
    c = x.cumsum()
    return int(c.searchsorted(u * c[-1], side="right"))


def bits(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """-log2 softmax(logits)[token] per row; logits [T, n], tokens [T]."""
    m = logits.max(axis=1)
    lse = np.log(np.exp(logits - m[:, None]).sum(axis=1)) + m
    return (lse - logits[np.arange(len(tokens)), tokens]) / _LN2


@dataclass
class Start:
    """Where generation begins, the same for every row: the current inputs and the ticks left."""

    dur_in: int
    pitch_in: int
    pos_in: int
    pos_out: int
    remaining: int
    state: object = None  # a primed one-row batch (see Composer._read), or None for a fresh start


def sample(net, begin: Start, plan: RhythmPlan, bar: int, ticks: np.ndarray,
           pitch_bias: np.ndarray, temperature: float, top_p: float, seed: int,
           tracker: FormTracker | None = None) -> list:
    """Sample every row of `net` (an engine.EngineBatch or a torchnet.StepBatch) from `begin`
    to the end of `plan`.

    ticks: ticks of each duration token (0 for specials); pitch_bias: additive mask over pitch
    tokens; tracker: the form inputs of a model that reads them (its layout's total is the
    whole tune's length, so the note drawn with r ticks left starts at total - r). Returns per
    row (duration tokens, pitch tokens, [(rhythm bits, pitch bits)] per note under the model
    itself, END bits).
    """
    gen = np.random.default_rng(seed)
    loop = _loop_one if net.rows == 1 else _loop_many
    inv_t = 1.0 / max(float(temperature), MIN_TEMPERATURE)
    return loop(net, begin, plan, bar, ticks, pitch_bias, inv_t, float(top_p), gen, tracker)


def _loop_one(net, begin: Start, plan: RhythmPlan, bar: int, ticks: np.ndarray,
              pitch_bias: np.ndarray, inv_t: float, top_p: float, gen: np.random.Generator,
              tracker: FormTracker | None) -> list:
    """The sampling loop for a single row, on Python ints (the latency-critical case)."""
    ticks, bias = ticks.tolist(), plan.bias
    last_bias = pitch_bias.copy()
    last_bias[REST] = -np.inf  # a tune ends on a note, not a rest
    xd = np.empty(len(bias[0]), np.float32)
    xp = np.empty(len(pitch_bias), np.float32)
    d, p, pos_in, pos_out, rem = (begin.dur_in, begin.pitch_in, begin.pos_in, begin.pos_out,
                                  begin.remaining)
    durs, pits, zr, zp = [], [], [], []
    u: list[float] = []
    form = onset = None
    closes = None if tracker is None or not tracker.closes else tracker.lay.closes
    total = 0 if tracker is None else tracker.lay.total
    while True:
        if not u:
            u = gen.random(2 * _CHUNK).tolist()[::-1]
            cancel.check()  # every _CHUNK notes: a cancelled request stops here
        if tracker is not None:
            onset = total - rem
            form = tracker.features_one(onset)
        z = net.rhythm(d, p, pos_in, pos_out, form)[0]
        zr.append(z.copy())
        d = draw_one(z, bias[rem], inv_t, top_p, u.pop(), xd)
        if d == END:
            break
        rem -= ticks[d]
        z = net.melody(d, None if closes is None else int(closes[total - rem]))[0]
        zp.append(z.copy())
        p = draw_one(z, pitch_bias if rem else last_bias, inv_t, top_p, u.pop(), xp)
        if tracker is not None:
            tracker.add_one(onset, d, ticks[d], p)
        durs.append(d)
        pits.append(p)
        pos_in, pos_out = pos_out, (pos_out + ticks[d]) % bar
    rbits = bits(np.stack(zr), np.array(durs + [END]))
    pbits = bits(np.stack(zp), np.array(pits)) if pits else np.zeros(0)
    return [(durs, pits, list(zip(rbits[:-1].tolist(), pbits.tolist())), float(rbits[-1]))]


def _loop_many(net, begin: Start, plan: RhythmPlan, bar: int, ticks: np.ndarray,
               pitch_bias: np.ndarray, inv_t: float, top_p: float, gen: np.random.Generator,
               tracker: FormTracker | None) -> list:
    """The sampling loop for a batch. Rows that reach END draw END until the batch is next
    compacted; compaction (when a sixteenth of the rows are done) keeps the matmuls busy with
    live rows only."""
    bias = plan.bias
    rows = net.rows
    closes = None if tracker is None or not tracker.closes else tracker.lay.closes
    total = 0 if tracker is None else tracker.lay.total
    live = np.arange(rows)  # original row of each batch row
    d_in = np.full(rows, begin.dur_in, np.int64)
    p_in = np.full(rows, begin.pitch_in, np.int64)
    pos_in = np.full(rows, begin.pos_in, np.int64)
    pos_out = np.full(rows, begin.pos_out, np.int64)
    rem = np.full(rows, begin.remaining, np.int64)
    done = np.zeros(rows, bool)
    log = []  # per step: (original rows, durations, pitches, rhythm bits, pitch bits)
    end_bits = np.zeros(rows)
    step = 0
    while True:
        k = step % _CHUNK
        if k == 0:
            u = gen.random((_CHUNK, 2, rows))
            cancel.check()
        form = None if tracker is None else tracker.features(total - rem)
        z = net.rhythm(d_in, p_in, pos_in, pos_out, form)
        d = draw(z, bias[rem], inv_t, top_p, u[k, 0, live])
        rb = bits(z, d)
        tick = ticks[d]
        after = rem - tick
        ending = (d == END) & ~done
        end_bits[live[ending]] = rb[ending]
        playing = ~done & ~ending
        p = np.full(len(live), REST)
        if playing.any():
            z = net.melody(d, None if closes is None else closes[np.minimum(total - after, total)])
            pb = pitch_bias
            last = (after == 0) & playing
            if last.any():  # a tune ends on a note, not a rest
                pb = np.broadcast_to(pitch_bias, z.shape).copy()
                pb[last, REST] = -np.inf
            p = draw(z, pb, inv_t, top_p, u[k, 1, live])
            log.append((live[playing], d[playing], p[playing], rb[playing],
                        bits(z, p)[playing]))
        if tracker is not None:
            tracker.add(total - rem, d, np.where(playing, tick, 0), p)
        done |= ending
        if done.all():
            break
        d_in, p_in, pos_in = d, p, pos_out
        pos_out = (pos_out + tick) % bar
        rem = after
        step += 1
        if done.sum() * 16 >= len(live):  # compact: keep the rows still playing
            keep = np.flatnonzero(~done)
            net = net.select(keep)
            tracker = None if tracker is None else tracker.select(keep)
            live, d_in, p_in, pos_in, pos_out, rem, done = (
                x[keep] for x in (live, d_in, p_in, pos_in, pos_out, rem, done))
    return [(d, p, s, float(end_bits[row])) for row, (d, p, s) in enumerate(by_row(log, rows))]


def by_row(log: list, rows: int) -> list[tuple[list[int], list[int], list[tuple[float, float]]]]:
    """A batch loop's log, one entry per step of (rows, durations, pitches, rhythm bits, pitch
    bits) [notes drawn], as each row's duration tokens, pitch tokens and bits per note."""
    if not log:
        return [([], [], []) for _ in range(rows)]
    who, d, p, rb, pb = (np.concatenate(x) for x in zip(*log))
    order = np.argsort(who, kind="stable")  # by row, then by step
    bounds = np.searchsorted(who[order], np.arange(rows + 1))
    d, p, rb, pb = (x[order].tolist() for x in (d, p, rb, pb))
    return [(d[a:b], p[a:b], list(zip(rb[a:b], pb[a:b])))
            for a, b in zip(bounds[:-1], bounds[1:])]


