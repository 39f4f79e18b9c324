"""Infilling: new notes for chosen bars of a tune, every other note kept exactly.

The model is causal, so a gap is filled by importance resampling: K candidate gaps are drawn in
one batch after the notes before the gap, each is weighed by the probability the model then
gives the fixed notes after it (up to WINDOW_BARS bars, or the next gap), and the answer is
drawn in proportion to those weights. As K grows this draws from the model's distribution of
the gap given both sides. Gaps are filled left to right, each after the ones before it."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from .formfeatures import tune_ticks
from .gapfill import Fixed, fill_gap, resample
from .generate import Start
from .modelchoices import MAX_TITLE
from .modelconfig import reads_closes
from .music import Melody, MusicError
from .requests import Composition, SamplingOptions

DEFAULT_CANDIDATES = 128
MAX_CANDIDATES = 512
MAX_ALTERNATIVES = 8
WINDOW_BARS = 8  # fixed bars after a gap that weigh its candidates (4 closed less of the gap)


def tune_bars(melody: Melody) -> int:
    """Bars after the pickup, a short last bar included (bar 0 is the pickup, as `score`
    numbers them)."""
    return melody.bar_of(melody.total_ticks - 1) if melody.total_ticks > melody.pickup else 0


def parse_bars(text: str, bars: int) -> list[tuple[int, int]]:
    """Bar ranges such as '5-6' or '3,7-8' (first and last bar, both included) in a tune of
    `bars` bars, sorted; refused when a range is malformed, empty, outside the tune, overlaps
    another, or when they cover every bar."""
    ranges = []
    for part in str(text).replace(" ", "").split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise MusicError(f"bars {text!r}: write bar numbers and ranges such as 5-6 or 3,7-8",
                             field="bars")
        ranges.append((int(m.group(1)), int(m.group(2) or m.group(1))))
    return check_ranges(ranges, bars)


def _named(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def check_ranges(ranges: list[tuple[int, int]], bars: int) -> list[tuple[int, int]]:
    """Bar ranges (first, last) in a tune of `bars` bars, sorted; refused when one is empty,
    outside the tune or overlaps another, or when they cover every bar."""
    for first, last in ranges:
        if last < first:
            raise MusicError(f"bars {_named(first, last)}: the range is empty (its last bar "
                             "comes before its first)", field="bars")
        if first < 1 or last > bars:
            raise MusicError(f"bars {_named(first, last)}: the tune has bars 1 to {bars}",
                             field="bars")
    ranges = sorted(ranges)
    for (a0, a1), (b0, b1) in zip(ranges, ranges[1:]):
        if b0 <= a1:
            raise MusicError(f"bars {_named(a0, a1)} and {_named(b0, b1)} overlap", field="bars")
    if sum(b - a + 1 for a, b in ranges) >= bars:
        raise MusicError(f"bars {','.join(_named(a, b) for a, b in ranges)}: that is every bar "
                         "of the tune; compose a new one instead", field="bars")
    return ranges


def infill(composer, melody: Melody, bars: list[tuple[int, int]],
           sampling: SamplingOptions | None = None, count: int = 1,
           candidates: int = DEFAULT_CANDIDATES) -> list[Composition]:
    """`count` versions of `melody` with new notes in each range of `bars` (as parse_bars
    gives them), each gap drawn from `candidates` candidates; the best of `best_of` resampled
    candidates (fewest bits over the gap and the fixed notes after it) is kept."""
    opts = sampling or SamplingOptions()
    opts.validate()
    if not 1 <= int(count) <= MAX_ALTERNATIVES:
        raise MusicError(f"count must be in 1..{MAX_ALTERNATIVES} for an infill, got {count}",
                         field="count")
    if not opts.best_of <= int(candidates) <= MAX_CANDIDATES:
        raise MusicError(f"candidates must be in {opts.best_of}..{MAX_CANDIDATES}, got "
                         f"{candidates}", field="candidates")
    if not melody.notes:
        raise MusicError("the tune has no notes")
    bars = check_ranges(bars, tune_bars(melody))
    # the tune's type as _fragment resolves it, without encoding the tune for it
    choices = composer.choices
    opts = choices.sampling(opts, choices.tune_type(None, melody.tune_type,
                                                    choices.meter(str(melody.meter))))
    seed = opts.seed_or_new()
    out = []
    for alt in range(count):
        tune, spans, head = melody, [], None
        for g, (first, last) in enumerate(bars):
            gap_seed = int(np.random.SeedSequence([seed, alt, g]).generate_state(1)[0])
            later = bars[g + 1][0] if g + 1 < len(bars) else None
            tune, span, read = _fill(composer, tune, first, last, later, opts, candidates,
                                     gap_seed)
            spans.append(span)
            head = head or read
        out.append(_composition(composer, tune, spans, head, opts, seed, count, alt))
    return out


def _bar_tick(melody: Melody, bar: int) -> int:
    """The tick, from the first note, at which bar `bar` starts (bar 1 after the pickup)."""
    return min(melody.pickup + (bar - 1) * melody.meter.bar_ticks, melody.total_ticks)


def _encoded(composer, tune: Melody) -> tuple:
    enc, meter, mode, style, kind = composer._fragment(tune, None, None)
    if [n.duration for n in tune.notes] != composer._ticks[enc.durations].tolist():
        raise MusicError("the tune has note lengths the model cannot write exactly; infill "
                         "keeps every other note as it is, so it needs them as they are")
    return enc, meter, composer.choices.ids(meter, mode, style, kind)


def _fill(composer, tune: Melody, first: int, last: int, later: int | None,
          opts: SamplingOptions, candidates: int, seed: int
          ) -> tuple[Melody, tuple[int, int], tuple]:
    """The tune with bars first..last drawn anew; the notes [a, b) that are new; and the read
    of the notes before the gap (rhythm bits, pitch bits, the state after them, how many)."""
    enc, meter, labels = _encoded(composer, tune)
    bar, start = meter.bar_ticks, enc.start
    total = tune_ticks(enc, composer.vocab)
    onsets = tune.onsets() + [total]
    t0, t1 = _bar_tick(tune, first), _bar_tick(tune, last + 1)
    for t, b in ((t0, first), (t1, last + 1)):
        if t not in onsets:
            raise MusicError(f"a note is held across the start of bar {b}; choose bars whose "
                             "edges fall between notes", field="bars")
    i0, i1 = onsets.index(t0), onsets.index(t1)
    window_end = min(t1 + WINDOW_BARS * bar, _bar_tick(tune, later) if later else total)
    i2 = i1 + sum(1 for t in onsets[i1:-1] if t < window_end)
    form = composer._written_form(enc, total, meter)
    lay = composer._layout(form, meter, start, total)
    shift, pitch_bias = composer._fragment_pitches(tune, enc, opts)
    rhythm, pitch, state, s = composer._read(enc, form, total, labels, i0)
    begin = Start(int(s["dur_in"][i0]), int(s["pitch_in"][i0]), int(s["pos_in"][i0]),
                  (start + t0) % bar, t1 - t0, state)
    plan = composer._plan(meter, (start + t1) % bar, t1 - t0, lay, end=t1)
    rows = np.zeros(candidates, np.int64)
    tracker = composer._tracker(lay, enc, notes=i0)
    fixed = Fixed(enc.durations[i1:i2].astype(np.int64), enc.pitches[i1:i2].astype(np.int64),
                  np.array(onsets[i1:i2], np.int64))
    cands = fill_gap(state.select(rows), begin, plan, bar, composer._ticks, pitch_bias,
                     opts.temperature, opts.top_p, seed, t1, fixed,
                     None if tracker is None else tracker.select(rows),
                     lay.closes if reads_closes(composer.cfg) else None)
    drawn = [cands[i] for i in resample(cands, opts.best_of, seed + 1)]
    best = min(drawn, key=lambda c: sum(r + p for r, p in c.surprisal) + c.fixed_bits)
    new = composer._notes(best.durations, best.pitches, shift)
    notes = list(tune.notes[:i0]) + new + list(tune.notes[i1:])
    return replace(tune, notes=notes), (i0, i0 + len(new)), (rhythm, pitch, state, i0)


def _composition(composer, tune: Melody, spans: list[tuple[int, int]], head: tuple,
                 opts: SamplingOptions, seed: int, count: int, alt: int) -> Composition:
    """The infilled tune with every note's surprisal: the notes before the first gap as read
    then (they have not changed), the rest read on from there."""
    enc, meter, labels = _encoded(composer, tune)
    total = tune_ticks(enc, composer.vocab)
    n = len(enc.durations)
    head_rhythm, head_pitch, state, i0 = head
    rhythm, pitch, _, _ = composer._read(enc, composer._written_form(enc, total, meter), total,
                                         labels, n + 1, state, i0)
    rhythm = np.concatenate([head_rhythm, rhythm])
    pitch = np.concatenate([head_pitch, pitch])
    surprisal = [(float(r), float(p)) for r, p in zip(rhythm[:n], pitch)]
    bits = (sum(r + p for r, p in surprisal) + float(rhythm[n])) / (n + 1)
    if count > 1:
        tune = replace(tune, title=f"{tune.title} ({alt + 1} of {count})"[:MAX_TITLE])
    return Composition(tune, surprisal, bits, seed, opts.temperature, new_notes=spans)
