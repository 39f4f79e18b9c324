"""How melodies are written down: key spelling and bars of writable notes (for ABC and MusicXML)."""

from __future__ import annotations

from dataclasses import dataclass

from ..music import MODE_STEPS, PITCH_CLASS, Melody, key_spelling

_LETTERS = "CDEFGAB"
_FIFTHS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F": -1}
_MODE_FIFTHS = {"major": 0, "mixolydian": -1, "dorian": -2, "minor": -3, "phrygian": -4,
                "lydian": 1, "locrian": -5}


# Scale degree (0 = tonic) used to spell each interval above the tonic when it is not in the mode.
_DEGREE = {0: 0, 1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 5, 9: 5, 10: 6, 11: 6}


@dataclass(frozen=True)
class Spelling:
    """How a melody's key is written: tonic name, and the key signature's alteration per letter."""

    tonic: int
    mode: str
    tonic_name: str
    signature: dict

    @classmethod
    def of(cls, tonic: int, mode: str) -> "Spelling":
        name = key_spelling(tonic, mode)
        sharps = _FIFTHS[name[0]] + 7 * (name[1:] == "#") - 7 * (name[1:] == "b") + _MODE_FIFTHS[mode]
        sig = {letter: 0 for letter in _LETTERS}
        for letter in ("FCGDAEB"[:sharps] if sharps > 0 else "BEADGCF"[:-sharps]):
            sig[letter] = 1 if sharps > 0 else -1
        return cls(tonic, mode, name, sig)

    def spell(self, pitch: int) -> tuple[str, int, int]:
        """(letter, alteration, octave) of a MIDI pitch: its scale degree, else by its interval."""
        pc = pitch % 12
        interval = (pc - self.tonic) % 12
        steps = MODE_STEPS[self.mode]
        degree = steps.index(interval) if interval in steps else _DEGREE[interval]
        letter = _LETTERS[(_LETTERS.index(self.tonic_name[0]) + degree) % 7]
        alt = (pc - PITCH_CLASS[letter] + 6) % 12 - 6
        if abs(alt) > 1:  # a flat second in D flat would be E double-flat: use D natural
            letter = next((x for x in _LETTERS if PITCH_CLASS[x] == pc), None) or next(
                x for x in _LETTERS if (pc - PITCH_CLASS[x]) % 12 == 1)
            alt = (pc - PITCH_CLASS[letter]) % 12
        return letter, alt, (pitch - alt - PITCH_CLASS[letter]) // 12 - 1


def _writable(ticks: int) -> list[int]:
    """A duration as pieces that notation can write as one note each.

    Multiples of a 32nd (3 ticks) are plain notes; triplet notes are a power of two (8 ticks is a
    triplet 8th). Anything else is split: 20 ticks = an 8th (12) tied to a triplet 8th (8).
    """
    if ticks % 3 == 0 or ticks & (ticks - 1) == 0:
        return [ticks]
    triplet = max(p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256) if p <= ticks and p % 3 == ticks % 3)
    return [ticks - triplet, triplet]


def written_bars(m: Melody) -> list[list[tuple[int | None, int, bool]]]:
    """Notes split at barlines into writable pieces: bars of (pitch, ticks, tied to the next)."""
    bar, pos, bars = m.meter.bar_ticks, m.start_position, [[]]
    for n in m.notes:
        left = n.duration
        while left > 0:
            piece = min(left, bar - pos)
            left -= piece
            parts = _writable(piece)
            for k, ticks in enumerate(parts):
                bars[-1].append((n.pitch, ticks, (left > 0 or k < len(parts) - 1) and n.pitch is not None))
            pos += piece
            if pos == bar:
                pos = 0
                bars.append([])
    if not bars[-1]:
        bars.pop()
    return bars


