"""Melody data classes, keys, modes, meters and transposition; pure Python, no torch."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .form import Form

TICKS_PER_QUARTER = 24
"""Time unit: 1/24 of a quarter note, exact for 32nds, dotted 16ths and 8th/16th triplets."""

MAX_DURATION = 16 * TICKS_PER_QUARTER  # four whole notes
MAX_BAR_TICKS = 16 * TICKS_PER_QUARTER


def quarters_to_ticks(quarters: float, what: str = "pickup") -> int:
    """A length given in quarter notes (0.5 = an eighth), in ticks; MusicError if it is not a
    whole number of ticks."""
    ticks = float(quarters) * TICKS_PER_QUARTER
    if not ticks >= 0 or abs(ticks - round(ticks)) > 1e-6:
        raise MusicError(f"{what} must be a length in quarter notes, a multiple of 1/"
                         f"{TICKS_PER_QUARTER} (0.5 is an eighth note), not {quarters:g}", field=what)
    return int(round(ticks))

# Semitone offsets of each scale degree above the tonic.
MODE_STEPS: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
}
MODES = tuple(MODE_STEPS)
# ABC / common abbreviations of mode names.
MODE_ALIASES = {
    "": "major", "maj": "major", "ion": "major", "ionian": "major", "m": "minor", "min": "minor",
    "aeo": "minor", "aeolian": "minor", "dor": "dorian", "phr": "phrygian", "lyd": "lydian",
    "mix": "mixolydian", "loc": "locrian",
}

PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# Tonic names a user may ask for, in the spelling used on output.
KEYS = ("C", "C#", "Db", "D", "Eb", "E", "F", "F#", "Gb", "G", "Ab", "A", "Bb", "B")


class MusicError(ValueError):
    """A value that is not valid music (unknown key, mode or meter, impossible rhythm).

    `field` names the request option at fault where one is (the API answers 422 for it);
    `reason` is a short code for the kind of fault, where a caller counts faults by kind (ingest's
    skip reasons)."""

    def __init__(self, message: str = "", field: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.field = field
        self.reason = reason


def tonic_pitch_class(name: str) -> int:
    """Pitch class (0..11) of a tonic name such as 'D', 'F#', 'Bb' or 'E-' (music21 flat)."""
    m = re.fullmatch(r"\s*([A-Ga-g])([#b\-♯♭]*)\s*", name or "")
    if not m:
        raise MusicError(f"unknown key {name!r}; valid keys: {', '.join(KEYS)}", field="key")
    pc = PITCH_CLASS[m.group(1).upper()]
    for ch in m.group(2):
        pc += 1 if ch in "#♯" else -1
    return pc % 12


def normalize_mode(name: str) -> str:
    """Full mode name from a name or abbreviation ('Dor' -> 'dorian'); MusicError if unknown."""
    key = (name or "").strip().lower()
    if key in MODE_STEPS:
        return key
    if key in MODE_ALIASES:
        return MODE_ALIASES[key]
    if key[:3] in MODE_ALIASES and len(key) >= 3:
        return MODE_ALIASES[key[:3]]
    raise MusicError(f"unknown mode {name!r}; valid modes: {', '.join(MODES)}", field="mode")


@dataclass(frozen=True)
class Meter:
    """A time signature such as 6/8."""

    numerator: int
    denominator: int

    def __post_init__(self) -> None:
        if self.numerator < 1 or self.denominator not in (1, 2, 4, 8, 16, 32):
            raise MusicError(f"unsupported meter {self.numerator}/{self.denominator}",
                             field="meter", reason="unsupported meter")

    @classmethod
    def parse(cls, text: str) -> "Meter":
        """Parse '6/8', 'C' (4/4) or 'C|' (2/2)."""
        t = (text or "").strip()
        if t == "C":
            return cls(4, 4)
        if t == "C|":
            return cls(2, 2)
        m = re.fullmatch(r"(\d+)\s*/\s*(\d+)", t)
        if not m:
            raise MusicError(f"unknown meter {text!r}; write it as N/D, e.g. 6/8", field="meter",
                             reason="unsupported meter")
        return cls(int(m.group(1)), int(m.group(2)))

    @property
    def bar_ticks(self) -> int:
        """Length of one full bar in ticks."""
        return self.numerator * 4 * TICKS_PER_QUARTER // self.denominator

    @property
    def beat_ticks(self) -> int:
        """Length of one beat: dotted for compound meters (6/8, 9/8, 12/8), else the denominator."""
        unit = 4 * TICKS_PER_QUARTER // self.denominator
        if self.denominator >= 8 and self.numerator % 3 == 0 and self.numerator > 3:
            return 3 * unit
        return unit

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


@dataclass(frozen=True)
class Note:
    """One note: MIDI pitch (None for a rest) and duration in ticks (1/24 quarter)."""

    pitch: int | None
    duration: int

    @property
    def is_rest(self) -> bool:
        return self.pitch is None


@dataclass
class Melody:
    """A monophonic tune: notes in order, with meter, key (tonic pitch class + mode) and pickup.

    `pickup` is the length in ticks of the anacrusis before the first barline
    (0 when the tune starts on a downbeat). Position in bar of note k is therefore
    (bar_ticks - pickup + onset_k) % bar_ticks. `form` is the written form (None: not known,
    one part); the notes are as written, each repeated part once. `tune_type` is the type as the
    source names it (an ABC R: field), '' where it names none; form.normalize_type reads it.
    """

    notes: list[Note]
    meter: Meter = field(default_factory=lambda: Meter(4, 4))
    tonic: int = 0
    mode: str = "major"
    pickup: int = 0
    tempo: float = 120.0
    title: str = ""
    style: str = ""
    form: Form | None = None
    tune_type: str = ""

    @property
    def total_ticks(self) -> int:
        return sum(n.duration for n in self.notes)

    @property
    def start_position(self) -> int:
        """Position in the bar, in ticks, of the first note."""
        return (self.meter.bar_ticks - self.pickup) % self.meter.bar_ticks

    def onsets(self) -> list[int]:
        """Onset of each note in ticks from the start of the tune."""
        out, t = [], 0
        for n in self.notes:
            out.append(t)
            t += n.duration
        return out

    def split_at_bar(self, bars: int) -> tuple[list[Note], list[Note]]:
        """The notes that start within the pickup and the first `bars` complete bars, and the
        rest."""
        cut = self.pickup + bars * self.meter.bar_ticks
        k = sum(1 for t in self.onsets() if t < cut)
        return list(self.notes[:k]), list(self.notes[k:])

    def positions(self) -> list[int]:
        """Position of each note in its bar, in ticks since the last barline."""
        bar, start = self.meter.bar_ticks, self.start_position
        return [(start + t) % bar for t in self.onsets()]

    def bars(self) -> list[list[Note]]:
        """Notes grouped by the bar they start in (pickup bar first, if any)."""
        bar, start = self.meter.bar_ticks, self.start_position
        groups: dict[int, list[Note]] = {}
        for n, t in zip(self.notes, self.onsets()):
            groups.setdefault((start + t) // bar, []).append(n)
        return [groups[k] for k in sorted(groups)]

    def complete_bars(self) -> int:
        """Number of full bars after the pickup, counting pickup + shortened last bar as one."""
        return (self.pickup + self.total_ticks) // self.meter.bar_ticks if self.pickup else (
            self.total_ticks // self.meter.bar_ticks)

    def key_name(self) -> str:
        return f"{key_spelling(self.tonic, self.mode)} {self.mode}"

    def transpose(self, semitones: int) -> "Melody":
        notes = [Note(None if n.pitch is None else n.pitch + semitones, n.duration) for n in self.notes]
        return replace(self, notes=notes, tonic=(self.tonic + semitones) % 12)

    def to_tonic(self, tonic: int) -> "Melody":
        """Transpose by the smallest shift (-6..+5 semitones) that puts the tonic on `tonic`."""
        return self.transpose(nearest_shift(self.tonic, tonic))


def nearest_shift(from_pc: int, to_pc: int) -> int:
    """Semitone shift in -6..+5 that moves pitch class `from_pc` onto `to_pc`."""
    return (to_pc - from_pc + 6) % 12 - 6


# Relative major's pitch class offset for each mode, used to choose flat or sharp spellings.
_MAJOR_DEGREE = {"major": 0, "dorian": 2, "phrygian": 4, "lydian": 5, "mixolydian": 7, "minor": 9,
                 "locrian": 11}
_FLAT_MAJORS = {5, 10, 3, 8, 1, 6}  # F Bb Eb Ab Db Gb
_SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


def relative_major(tonic: int, mode: str) -> int:
    """Pitch class of the major key that shares this key's signature."""
    return (tonic - _MAJOR_DEGREE[mode]) % 12


def uses_flats(tonic: int, mode: str) -> bool:
    return relative_major(tonic, mode) in _FLAT_MAJORS


def key_spelling(tonic: int, mode: str) -> str:
    """Conventional name of a tonic in a mode ('Bb' in F major's family, 'F#' in D's)."""
    return (_FLAT_NAMES if uses_flats(tonic, mode) else _SHARP_NAMES)[tonic % 12]


def pitch_name(pitch: int, flats: bool = False) -> str:
    """Scientific pitch name such as 'F#4' (MIDI 60 is C4)."""
    names = _FLAT_NAMES if flats else _SHARP_NAMES
    return f"{names[pitch % 12]}{pitch // 12 - 1}"
