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
# Tonic names offered to a user, sharp and flat; each is written as asked where its key signature
# in the mode has at most 7 sharps or flats (G# minor, not G# major), see tonic_name.
KEYS = ("C", "C#", "Db", "D", "D#", "Eb", "E", "F", "F#", "Gb", "G", "G#", "Ab", "A", "A#", "Bb",
        "B", "Cb")


class MusicError(ValueError):
    """A value that is not valid music (unknown key, mode or meter, impossible rhythm).

    `field` names the request option at fault where one is (the API answers 422 for it);
    `reason` is a short code for the kind of fault, where a caller counts faults by kind (ingest's
    skip reasons)."""

    def __init__(self, message: str = "", field: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.field = field
        self.reason = reason


def _letter_and_alter(name: str) -> tuple[str, int]:
    """('F', 1) for a tonic name such as 'F#', 'f#', 'Gb', 'E-' (music21's flat) or 'F♯'.

    MusicError for anything else; a name that carries a mode too ('Dm', 'F# minor') is told to
    give the mode apart."""
    m = re.fullmatch(r"\s*([A-Ga-g])([#b\-♯♭]*)\s*", name or "")
    if not m:
        with_mode = re.fullmatch(r"\s*([A-Ga-g][#b♯♭]?)\s*([A-Za-z]+)\s*", name or "")
        try:
            mode = normalize_mode(with_mode.group(2)) if with_mode else None
        except MusicError:
            mode = None
        if mode is not None:
            tonic = with_mode.group(1)[0].upper() + with_mode.group(1)[1:]
            raise MusicError(f"key {name!r} names a mode too: give the tonic as the key and the "
                             f"mode apart (--key {tonic} --mode {mode})", field="key")
        raise MusicError(f"unknown key {name!r}; valid keys: {', '.join(KEYS)}", field="key")
    return m.group(1).upper(), sum(1 if ch in "#♯" else -1 for ch in m.group(2))


def _spelled(letter: str, alter: int) -> str:
    return letter + ("#" * alter if alter > 0 else "b" * -alter)


def tonic_pitch_class(name: str) -> int:
    """Pitch class (0..11) of a tonic name such as 'D', 'F#', 'Bb' or 'E-' (music21 flat)."""
    letter, alter = _letter_and_alter(name)
    return (PITCH_CLASS[letter] + alter) % 12


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


def bar_number(t: int, start: int, bar: int) -> int:
    """The written bar a note at tick `t` (from the first note) is in, for a tune whose first
    note is at `start` ticks into its bar: 0 is a pickup, 1 the first full bar."""
    return (start + t) // bar + (0 if start else 1)


_NOTE_NAMES = {1: ("whole", "wholes"), 2: ("half", "halves"), 4: ("quarter", "quarters"),
               8: ("eighth", "eighths"), 16: ("sixteenth", "sixteenths"),
               32: ("thirty-second", "thirty-seconds")}  # the note a meter's denominator counts


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

    def in_units(self, ticks: int) -> str:
        """`ticks` in the notes the meter counts: '5 eighths' in 6/8, '2.5 quarters' in 4/4."""
        n = ticks * self.denominator / (4 * TICKS_PER_QUARTER)
        count = str(int(n)) if n == int(n) else f"{n:g}"
        return f"{count} {_NOTE_NAMES[self.denominator][n != 1]}"

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
    `tonic_name` is the tonic as asked for or written ('F#', 'Gb'), None for the usual spelling;
    every writer spells the key and its notes by `spelled_tonic()`.
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
    tonic_name: str | None = None

    @property
    def total_ticks(self) -> int:
        return sum(n.duration for n in self.notes)

    @property
    def start_position(self) -> int:
        """Position in the bar, in ticks, of the first note."""
        return (self.meter.bar_ticks - self.pickup) % self.meter.bar_ticks

    def bar_of(self, t: int) -> int:
        """The written bar tick `t` is in (0: the pickup; see bar_number)."""
        return bar_number(t, self.start_position, self.meter.bar_ticks)

    def onsets(self) -> list[int]:
        """Onset of each note in ticks from the start of the tune."""
        out, t = [], 0
        for n in self.notes:
            out.append(t)
            t += n.duration
        return out

    def last_pitch(self) -> int | None:
        """The last sounding pitch (None: the tune is all rests)."""
        return next((n.pitch for n in reversed(self.notes) if n.pitch is not None), None)

    def ends_on_tonic(self) -> bool:
        """The last sounding note is the tonic (in any octave)."""
        last = self.last_pitch()
        return last is not None and (last - self.tonic) % 12 == 0

    def part_ends(self) -> list[int | None]:
        """The last sounding pitch of each part's playing, in written order (a first and a
        second ending each close one); the tune's last pitch alone where the form is unknown."""
        if self.form is None:
            return [self.last_pitch()]
        bar, onsets = self.meter.bar_ticks, self.onsets()
        first = 1 if self.start_position else 0
        ends, w = [], first
        for p in self.form.parts:
            for g in [w + p.bars] + ([w + p.written] if p.ending else []):
                cut = g * bar - self.start_position
                ends.append(next((n.pitch for n, t in zip(reversed(self.notes), reversed(onsets))
                                  if t < cut and n.pitch is not None), None))
            w += p.written
        return ends

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

    def spelled_tonic(self) -> str:
        """The tonic's name: as asked for or written where that is a key of this mode, else the
        usual spelling (key_spelling)."""
        return key_spelling(self.tonic, self.mode, self.tonic_name)

    def key_name(self) -> str:
        return f"{self.spelled_tonic()} {self.mode}"

    def transpose(self, semitones: int) -> "Melody":
        """The melody `semitones` higher; a new tonic takes its usual spelling."""
        notes = [Note(None if n.pitch is None else n.pitch + semitones, n.duration) for n in self.notes]
        return replace(self, notes=notes, tonic=(self.tonic + semitones) % 12,
                       tonic_name=self.tonic_name if semitones % 12 == 0 else None)

    def to_tonic(self, tonic: int) -> "Melody":
        """Transpose by the smallest shift (-6..+5 semitones) that puts the tonic on `tonic`."""
        return self.transpose(nearest_shift(self.tonic, tonic))


def nearest_shift(from_pc: int, to_pc: int) -> int:
    """Semitone shift in -6..+5 that moves pitch class `from_pc` onto `to_pc`."""
    return (to_pc - from_pc + 6) % 12 - 6


# A key signature counts sharps (> 0) or flats (< 0) on the line of fifths: a natural letter's
# major key, and how far each mode's signature lies from its tonic's major (D dorian: C major's).
_LETTER_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
_MODE_FIFTHS = {"lydian": 1, "major": 0, "mixolydian": -1, "dorian": -2, "minor": -3,
                "phrygian": -4, "locrian": -5}
_MAJOR_LIKE = ("major", "lydian", "mixolydian")  # take the sharps where both spellings tie
_SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


def key_fifths(name: str, mode: str) -> int:
    """The key signature of tonic `name` in `mode`: sharps (> 0) or flats (< 0); F# major 6,
    Eb minor -6, C# mixolydian 6."""
    letter, alter = _letter_and_alter(name)
    return _LETTER_FIFTHS[letter] + 7 * alter + _MODE_FIFTHS[mode]


def signature_tonic(fifths: int, mode: str) -> str:
    """The tonic name of the `mode` key with `fifths` sharps (> 0) or flats (< 0): 6 in major is
    F#, -6 in minor Eb, 0 in dorian D."""
    step = fifths - _MODE_FIFTHS[mode] + 1  # F is 0 on the line of fifths, F# 7, Fb -7
    return _spelled("FCGDAEB"[step % 7], step // 7)


def _count(fifths: int) -> str:
    """'8 sharps', '1 flat', 'no sharps or flats'."""
    n = abs(fifths)
    word = "sharp" if fifths > 0 else "flat"
    return f"{n} {word}{'s' * (n != 1)}" if n else "no sharps or flats"


def _usual_spelling(tonic: int, mode: str) -> str:
    """The name with the fewest sharps or flats; on a tie (F# or Gb major, D# or Eb minor) the
    sharps in major-like modes and the flats in the others."""
    names = [_spelled(letter, alter) for letter in PITCH_CLASS for alter in (-1, 0, 1)
             if (PITCH_CLASS[letter] + alter) % 12 == tonic % 12]
    sharps_first = mode in _MAJOR_LIKE
    return min(names, key=lambda n: (abs(key_fifths(n, mode)),
                                     (key_fifths(n, mode) < 0) == sharps_first))


def tonic_name(name: str, mode: str) -> str:
    """The tonic `name` as a key in `mode` is written ('f#' -> 'F#', 'E-' -> 'Eb'); MusicError
    (field 'key') for what is not a tonic name, and for a key of more than 7 sharps or flats,
    naming the enharmonic key that has fewer (G# major: Ab major)."""
    letter, alter = _letter_and_alter(name)
    spelled = _spelled(letter, alter)
    fifths = key_fifths(spelled, mode)
    if abs(fifths) > 7:
        other = _usual_spelling((PITCH_CLASS[letter] + alter) % 12, mode)
        raise MusicError(f"key {spelled} would need {_count(fifths)} in {mode}; write it as {other} "
                         f"({other} {mode} has {_count(key_fifths(other, mode))})", field="key")
    return spelled


def key_spelling(tonic: int, mode: str, name: str | None = None) -> str:
    """The name of a tonic in a mode: `name` (the spelling asked for or written) where it names
    this pitch class in a key of at most 7 sharps or flats, else the usual spelling, the one
    with fewer sharps or flats (Bb in F major's family, F# in D's; F# major, Db major, Eb minor)."""
    if name:
        try:
            spelled = tonic_name(name, mode)
        except MusicError:
            spelled = None
        if spelled is not None and tonic_pitch_class(spelled) == tonic % 12:
            return spelled
    return _usual_spelling(tonic, mode)


def pitch_name(pitch: int, flats: bool = False) -> str:
    """Scientific pitch name such as 'F#4' (MIDI 60 is C4)."""
    names = _FLAT_NAMES if flats else _SHARP_NAMES
    return f"{names[pitch % 12]}{pitch // 12 - 1}"


def parse_pitch(text: str | int, what: str = "pitch") -> int:
    """A MIDI pitch from a number ('67') or a scientific name ('G4', 'F#3', 'Bb2'; C4 is 60)."""
    s = str(text).strip()
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    m = re.fullmatch(r"([A-Ga-g])([#b♯♭]?)(-?\d)", s)
    if not m:
        raise MusicError(f"{what} must be a MIDI number (0..127) or a note name such as G3 or "
                         f"F#5, not {s!r}", field=what)
    pc = PITCH_CLASS[m.group(1).upper()] + {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}[m.group(2)]
    return (int(m.group(3)) + 1) * 12 + pc
