"""What a caller asks of the composer and what it gets back: requests, limits and reports."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .music import Melody, MusicError, pitch_name

DEFAULT_METER = "4/4"  # of a tune whose type says none

# The temperature of a tune type the model was not calibrated for (`composer calibrate`): a little
# sharper than the corpus, so that tunes repeat and cadence more.
DEFAULT_TEMPERATURE = 0.9
# The temperatures `composer calibrate` tries for each type; a type the model learnt from few
# tunes may need a sharp draw to repeat and close as its real tunes do.
CALIBRATION_TEMPERATURES = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05)

LIMITS = {"bars": (1, 256), "count": (1, 256), "best_of": (1, 64), "temperature": (0.0, 10.0),
          "top_p": (0.0, 1.0), "pitch": (0, 127), "tempo": (1.0, 1000.0)}


@dataclass
class SamplingOptions:
    """How to draw notes: temperature and nucleus mass apply to both networks; low/high bound the
    MIDI pitches of the output (in the output key); seed None draws a fresh one; temperature
    None takes the model's for the tune type (ModelChoices.temperature)."""

    temperature: float | None = None
    top_p: float = 0.95
    seed: int | None = None
    best_of: int = 1
    low: int = 55
    high: int = 88

    def seed_or_new(self) -> int:
        """The seed to draw with: the one given, else a fresh one (reported with the tune)."""
        return int(self.seed) if self.seed is not None else secrets.randbelow(2**31)

    def validate(self) -> None:
        t0, t1 = LIMITS["temperature"]
        if self.temperature is not None and not (
                isinstance(self.temperature, (int, float)) and t0 < self.temperature <= t1):
            raise MusicError(f"temperature must be > {t0:g} and <= {t1:g}, got {self.temperature}",
                             field="temperature")
        if not (isinstance(self.top_p, (int, float)) and 0.0 < self.top_p <= 1.0):
            raise MusicError(f"top_p must be > 0 and <= 1, got {self.top_p}", field="top_p")
        b0, b1 = LIMITS["best_of"]
        if not b0 <= int(self.best_of) <= b1:
            raise MusicError(f"best_of must be in {b0}..{b1}, got {self.best_of}", field="best_of")
        p0, p1 = LIMITS["pitch"]
        for name in ("low", "high"):
            if not p0 <= int(getattr(self, name)) <= p1:
                raise MusicError(f"{name} pitch must be a MIDI number in {p0}..{p1}, "
                                 f"got {getattr(self, name)}", field=name)
        if self.low > self.high:
            raise MusicError(f"low pitch {self.low} is above high pitch {self.high}", field="low")
        if self.seed is not None and not 0 <= int(self.seed) < 2**63:
            raise MusicError(f"seed must be in 0..2^63-1, got {self.seed}", field="seed")


@dataclass
class ComposeRequest:
    """A new tune of `meter` in `key` `mode`: `bars` complete bars through-composed, or the
    parts of `form`, or of the usual form of `tune_type`. `pickup` (ticks, 0 = none) starts
    the tune with an anacrusis and shortens the last bar to match. What is left None comes
    from the tune type as the corpus has it (style, pickup) or from the model's defaults."""

    bars: int | None = None  # None: the form's bars, else 16
    meter: str | None = None  # None: the tune type's usual meter, else 4/4
    key: str = "D"
    mode: str = "major"
    style: str | None = None  # None: the type's usual collection, else the model's default
    tempo: float = 120.0
    sampling: SamplingOptions = field(default_factory=SamplingOptions)
    pickup: int | None = None  # None: the type's (asked, or the meter's) usual pickup in its
    #                            usual meter, else 0
    tune_type: str | None = None  # reel, jig, ...; None: the usual type of the meter
    form: str | None = None  # AABB, A8B8, ...; None: through-composed `bars`, or with a type
    #                          and no bars, the type's usual form
    endings: bool | None = None  # first and second endings on repeated parts; None: as the
    #                              type's repeated parts mostly have them or not
    title: str | None = None  # None: the type and key ("Reel in D", "Jig in E minor")


@dataclass
class Composition:
    """A generated (or continued) tune with the model's surprisal of each note, in bits:
    (rhythm, pitch) per note; bits_per_note counts the closing END as one more event."""

    melody: Melody
    surprisal: list[tuple[float, float]]
    bits_per_note: float
    seed: int
    temperature: float | None = None  # the temperature the new notes were drawn at
    fragment_notes: int = 0  # a continuation: the leading notes that are the user's own
    new_notes: list[tuple[int, int]] = field(default_factory=list)  # an infill: [a, b) of each gap


@dataclass
class NoteScore:
    """Surprisal of one note: bar 0 is a pickup bar, beat counts from 1 (2.5 = half past 2)."""

    index: int
    bar: int
    beat: float
    pitch: int | None
    duration: int  # ticks
    rhythm_bits: float
    pitch_bits: float

    @property
    def bits(self) -> float:
        return self.rhythm_bits + self.pitch_bits

    def to_dict(self) -> dict:
        return {"index": self.index, "bar": self.bar, "beat": self.beat, "pitch": self.pitch,
                "name": "rest" if self.pitch is None else pitch_name(self.pitch),
                "duration": self.duration / 24, "rhythm_bits": round(self.rhythm_bits, 4),
                "pitch_bits": round(self.pitch_bits, 4), "bits": round(self.bits, 4)}


@dataclass
class ScoreReport:
    """How likely a tune is under the model: per-note bits, total (notes + END), mean per event."""

    title: str
    key: str
    meter: str
    style: str
    notes: list[NoteScore]
    end_bits: float
    total_bits: float
    bits_per_note: float
    most_surprising: list[NoteScore]
    style_from: str = "asked"  # how the style was chosen: asked, the file's, or best fit

    def to_dict(self) -> dict:
        return {"title": self.title, "key": self.key, "meter": self.meter, "style": self.style,
                "style_from": self.style_from,
                "notes": [n.to_dict() for n in self.notes], "end_bits": round(self.end_bits, 4),
                "total_bits": round(self.total_bits, 4),
                "bits_per_note": round(self.bits_per_note, 4),
                "most_surprising": [n.to_dict() for n in self.most_surprising]}

    def to_text(self) -> str:
        lines = [f"{self.title or 'untitled'}: {self.key}, {self.meter}, style {self.style} "
                 f"({self.style_from})",
                 f"{len(self.notes)} notes, total {self.total_bits:.1f} bits "
                 f"(END {self.end_bits:.2f}), {self.bits_per_note:.3f} bits/note",
                 "most surprising notes:"]
        for n in self.most_surprising:
            d = n.to_dict()
            lines.append(f"  bar {n.bar:>3} beat {n.beat:<5g} {d['name']:<5} {d['duration']:g} q: "
                         f"{n.bits:6.2f} bits (rhythm {n.rhythm_bits:.2f}, "
                         f"pitch {n.pitch_bits:.2f})")
        return "\n".join(lines)


