"""Melody <-> parallel rhythm/pitch token streams, vocabularies, and the round trip between them."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .form import Form
from .music import MAX_BAR_TICKS, MAX_DURATION, Melody, Meter, MusicError, Note, nearest_shift

ENCODER_VERSION = 2
"""Bump when the meaning of a token or a stream changes; it keys the ingest cache."""

# Token ids shared by both streams. Duration ids 3.. are `Vocab.durations[id - 3]`;
# pitch ids 3.. are `Vocab.pitch_low + id - 3`.
PAD = 0
BOS = 1
END = 2  # duration stream only: the tune is over
REST = 2  # pitch stream only: no pitch sounds
N_SPECIAL = 3

DEFAULT_PITCH_LOW = 36  # C2, after transposition to tonic C
DEFAULT_PITCH_HIGH = 96  # C7
DEFAULT_MIN_DURATION_COUNT = 5


@dataclass
class Vocab:
    """Everything needed to turn tokens back into music, and the conditioning label sets."""

    durations: list[int]
    meters: list[str] = field(default_factory=lambda: ["4/4"])
    modes: list[str] = field(default_factory=lambda: ["major"])
    styles: list[str] = field(default_factory=lambda: ["default"])
    types: list[str] = field(default_factory=lambda: ["other"])
    pitch_low: int = DEFAULT_PITCH_LOW
    pitch_high: int = DEFAULT_PITCH_HIGH

    def __post_init__(self) -> None:
        self.durations = sorted(int(d) for d in self.durations)
        self._dur_index = {d: i + N_SPECIAL for i, d in enumerate(self.durations)}

    # sizes -------------------------------------------------------------------------------
    @property
    def n_durations(self) -> int:
        return len(self.durations) + N_SPECIAL

    @property
    def n_pitches(self) -> int:
        return self.pitch_high - self.pitch_low + 1 + N_SPECIAL

    @property
    def n_positions(self) -> int:
        return MAX_BAR_TICKS

    # tokens ------------------------------------------------------------------------------
    def duration_token(self, ticks: int) -> int:
        try:
            return self._dur_index[ticks]
        except KeyError:
            raise MusicError(f"duration {ticks} ticks is not in the vocabulary") from None

    def duration_ticks(self, token: int) -> int:
        if token < N_SPECIAL:
            raise MusicError(f"duration token {token} is a special token, not a duration")
        return self.durations[token - N_SPECIAL]

    def pitch_token(self, pitch: int | None) -> int:
        if pitch is None:
            return REST
        if not self.pitch_low <= pitch <= self.pitch_high:
            raise MusicError(f"pitch {pitch} is outside {self.pitch_low}..{self.pitch_high}")
        return pitch - self.pitch_low + N_SPECIAL

    def pitch_value(self, token: int) -> int | None:
        if token == REST:
            return None
        if token < N_SPECIAL:
            raise MusicError(f"pitch token {token} is a special token, not a pitch")
        return self.pitch_low + token - N_SPECIAL

    # labels ------------------------------------------------------------------------------
    def label_id(self, kind: str, value: str) -> int:
        """Index of a meter, mode, style or type label; MusicError listing the valid values."""
        values: list[str] = getattr(self, kind + "s")
        if value not in values:
            raise MusicError(f"unknown {kind} {value!r}; valid {kind}s: {', '.join(values)}")
        return values.index(value)

    # persistence -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Vocab":
        return cls(**{k: d[k] for k in ("durations", "meters", "modes", "styles", "types",
                                        "pitch_low", "pitch_high") if k in d})

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def build_duration_vocab(counts: Counter, min_count: int = DEFAULT_MIN_DURATION_COUNT) -> list[int]:
    """Durations (ticks) seen at least `min_count` times, up to four whole notes, ascending."""
    kept = sorted(d for d, c in counts.items() if c >= min_count and 0 < d <= MAX_DURATION)
    if not kept:
        raise MusicError("no duration occurs often enough to build a vocabulary")
    return kept


def snap_durations(durations: Sequence[int], allowed: Sequence[int], bar_ticks: int = 0,
                   start: int = 0) -> list[int]:
    """Replace durations not in `allowed` so that every note boundary outside the changed run,
    and every barline, stays exactly where it was.

    A run of out-of-vocabulary notes is re-timed by dynamic programming to allowed durations
    with the same total, minimising how far each onset moves; moving a note boundary that lies
    on a barline (given `bar_ticks` and the first note's position `start`) is not allowed, so
    the position-in-bar stream never drifts. If a run cannot be filled with
    the same number of notes, it grows by a neighbour at a time. Raises MusicError if even the
    whole tune cannot be expressed.
    """
    allowed_set = set(allowed)
    durs = [int(d) for d in durations]
    bad = [i for i, d in enumerate(durs) if d not in allowed_set]
    if not bad:
        return durs
    allowed_sorted = sorted(allowed_set)
    out = list(durs)
    i = 0
    while i < len(bad):
        lo = hi = bad[i]
        while i + 1 < len(bad) and bad[i + 1] == hi + 1:
            i += 1
            hi = bad[i]
        i += 1
        while True:
            origin = start + sum(out[:lo])
            fixed = [bool(bar_ticks) and (origin + t) % bar_ticks == 0
                     for t in np.cumsum(out[lo:hi + 1])]
            fitted = _fit_run(out[lo:hi + 1], allowed_sorted, fixed)
            if fitted is not None:
                out[lo:hi + 1] = fitted
                break
            if lo == 0 and hi == len(out) - 1:
                raise MusicError("rhythm cannot be expressed with the duration vocabulary")
            if hi + 1 < len(out) and (lo == 0 or (hi - lo) % 2 == 0):
                hi += 1
            else:
                lo -= 1
        # later runs may now overlap the widened one
        while i < len(bad) and bad[i] <= hi:
            i += 1
    return out


def _fit_run(durs: list[int], allowed: list[int], fixed: list[bool]) -> list[int] | None:
    """Allowed durations, as many as `durs`, with the same sum and onsets moved least;
    note ends marked `fixed` (barlines) may not move at all."""
    total = sum(durs)
    targets = np.cumsum(durs)
    n = len(durs)
    inf = float("inf")
    # cost[c] = least cost of reaching cumulative time c after k notes
    cost = {0: 0.0}
    back: list[dict[int, int]] = []
    for k in range(n):
        new: dict[int, float] = {}
        choice: dict[int, int] = {}
        remaining = n - k - 1
        for c, v in cost.items():
            for d in allowed:
                c2 = c + d
                if c2 + remaining * allowed[0] > total:
                    break
                if fixed[k] and c2 != targets[k]:
                    continue
                w = v + abs(c2 - targets[k])
                if w < new.get(c2, inf):
                    new[c2] = w
                    choice[c2] = d
        back.append(choice)
        cost = new
        if not cost:
            return None
    if total not in cost:
        return None
    result, c = [], total
    for k in range(n - 1, -1, -1):
        d = back[k][c]
        result.append(d)
        c -= d
    return result[::-1]


def fit_pitch_range(pitches: Sequence[int | None], low: int, high: int) -> list[int | None]:
    """Move the whole tune by octaves into low..high if it fits; else move single notes by octaves."""
    sounding = [p for p in pitches if p is not None]
    if not sounding:
        return list(pitches)
    lo, hi = min(sounding), max(sounding)
    if hi - lo <= high - low:
        shift = 0
        while lo + shift < low:
            shift += 12
        while hi + shift > high:
            shift -= 12
        if low <= lo + shift and hi + shift <= high:
            return [None if p is None else p + shift for p in pitches]
    out: list[int | None] = []
    for p in pitches:
        if p is not None:
            while p < low:
                p += 12
            while p > high:
                p -= 12
        out.append(p)
    return out


@dataclass
class EncodedTune:
    """One tune as parallel token streams (one entry per note) plus its conditioning labels.

    durations: duration token ids; pitches: pitch token ids; positions: ticks since the last
    barline at each note's onset. The tune is at tonic C; `tonic` records the original tonic.
    """

    durations: np.ndarray
    pitches: np.ndarray
    positions: np.ndarray
    meter: str
    mode: str
    style: str
    tonic: int
    start: int  # position in bar of the first note (== positions[0] when there are notes)
    end_position: int  # position in bar right after the last note (0: ends on a barline)
    tune_type: str = "other"
    form: Form | None = None  # the written form; None: one part over all the bars


def encode(melody: Melody, vocab: Vocab, snap: bool = True) -> EncodedTune:
    """Encode a melody (any key) into streams at tonic C.

    With snap=True, durations outside the vocabulary are snapped (bars kept exact) and pitches
    outside the range moved by octaves; with snap=False they raise MusicError.
    """
    at_c = melody.to_tonic(0)
    ticks = [n.duration for n in at_c.notes]
    if any(d <= 0 for d in ticks):
        raise MusicError("a note has zero or negative duration")
    if snap:
        ticks = snap_durations(ticks, vocab.durations, melody.meter.bar_ticks,
                               melody.start_position)
        pitches = fit_pitch_range([n.pitch for n in at_c.notes], vocab.pitch_low, vocab.pitch_high)
    else:
        pitches = [n.pitch for n in at_c.notes]
    bar = melody.meter.bar_ticks
    start = melody.start_position
    onsets = np.concatenate([[0], np.cumsum(ticks)[:-1]]) if ticks else np.zeros(0, np.int64)
    return EncodedTune(
        durations=np.array([vocab.duration_token(d) for d in ticks], np.int16),
        pitches=np.array([vocab.pitch_token(p) for p in pitches], np.int16),
        positions=((start + onsets) % bar).astype(np.int16),
        meter=str(melody.meter), mode=melody.mode, style=melody.style, tonic=melody.tonic,
        start=start, end_position=int((start + sum(ticks)) % bar),
        tune_type=melody.tune_type or "other", form=melody.form,
    )


def decode(enc: EncodedTune, vocab: Vocab, tonic: int | None = None, tempo: float = 120.0,
           title: str = "") -> Melody:
    """Turn streams back into a Melody, transposed to `tonic` (default: the original tonic)."""
    meter = Meter.parse(enc.meter)
    notes = [Note(vocab.pitch_value(int(p)), vocab.duration_ticks(int(d)))
             for d, p in zip(enc.durations, enc.pitches)]
    pickup = (meter.bar_ticks - enc.start) % meter.bar_ticks
    mel = Melody(notes=notes, meter=meter, tonic=0, mode=enc.mode, pickup=pickup, tempo=tempo,
                 title=title, style=enc.style, form=enc.form, tune_type=enc.tune_type)
    if tonic is None:  # undo encode's shift exactly (a tritone shift is ambiguous in direction)
        return mel.transpose(-nearest_shift(enc.tonic, 0))
    return mel.to_tonic(tonic)


def streams(durations: np.ndarray, pitches: np.ndarray, positions: np.ndarray,
            end_position: int) -> dict[str, np.ndarray]:
    """Model inputs and targets for one tune of n notes, each of length n + 1.

    Step 0 reads BOS and predicts the first note; step n reads the last note and predicts END.
      dur_in, pitch_in, pos_in:  the current note (BOS at step 0; pos_in[0] is the start position)
      dur_out, pitch_out:        the next note (END / PAD at the last step)
      pos_out:                   the position in the bar where the next note starts
    The melody network also reads dur_out and pos_out, so pitch is conditioned on rhythm.
    """
    n = len(durations)
    start = int(positions[0]) if n else int(end_position)
    dur = np.asarray(durations, np.int64)
    pit = np.asarray(pitches, np.int64)
    pos = np.asarray(positions, np.int64)
    return {
        "dur_in": np.concatenate([[BOS], dur]),
        "pitch_in": np.concatenate([[BOS], pit]),
        "pos_in": np.concatenate([[start], pos]),
        "dur_out": np.concatenate([dur, [END]]),
        "pitch_out": np.concatenate([pit, [PAD]]),
        "pos_out": np.concatenate([pos, [end_position]]),
    }


def melody_signature(melody: Melody) -> tuple:
    """Normalised note content (at tonic C, durations in ticks) used to find duplicate tunes."""
    at_c = melody.to_tonic(0)
    return tuple((n.pitch, n.duration) for n in at_c.notes)


def count_durations(melodies: Iterable[Melody]) -> Counter:
    return Counter(n.duration for m in melodies for n in m.notes)
