"""How melodies are written down: key spelling and bars of writable notes (for ABC and MusicXML)."""

from __future__ import annotations

from dataclasses import dataclass

from ..music import MODE_STEPS, PITCH_CLASS, Melody, Note, key_fifths

_LETTERS = "CDEFGAB"


# Scale degree (0 = tonic) used to spell each interval above the tonic when it is not in the mode.
_DEGREE = {0: 0, 1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 5, 9: 5, 10: 6, 11: 6}


@dataclass(frozen=True)
class Spelling:
    """How a melody's key is written: tonic name, key signature (sharps > 0, flats < 0) and the
    signature's alteration per letter."""

    tonic: int
    mode: str
    tonic_name: str
    fifths: int
    signature: dict

    @classmethod
    def of(cls, m: Melody) -> "Spelling":
        name = m.spelled_tonic()
        sharps = key_fifths(name, m.mode)
        sig = {letter: 0 for letter in _LETTERS}
        for letter in ("FCGDAEB"[:sharps] if sharps > 0 else "BEADGCF"[:-sharps]):
            sig[letter] = 1 if sharps > 0 else -1
        return cls(m.tonic, m.mode, name, sharps, sig)

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


def _merged_rests(notes: list[Note]) -> list[Note]:
    """The notes with each run of rests as one rest."""
    out: list[Note] = []
    for n in notes:
        if n.pitch is None and out and out[-1].pitch is None:
            out[-1] = Note(None, out[-1].duration + n.duration)
        else:
            out.append(n)
    return out


def written_bars(m: Melody) -> list[list[tuple[int | None, int, bool]]]:
    """Notes split at barlines into writable pieces: bars of (pitch, ticks, tied to the next).

    Rests in a row are one rest; a rest that starts off the beat and runs past it is cut at the
    beat, so that the beat stays in sight (z z2, not z3, from the second 8th of a 2/4 bar)."""
    bar, beat, pos, bars = m.meter.bar_ticks, m.meter.beat_ticks, m.start_position, [[]]
    for n in _merged_rests(m.notes):
        left = n.duration
        while left > 0:
            piece = min(left, bar - pos)
            if n.pitch is None and pos % beat:
                piece = min(piece, beat - pos % beat)
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




@dataclass(frozen=True)
class BarMark:
    """How one bar of `written_bars` sits in the written form."""

    opens_repeat: bool = False  # a repeated part starts here: |:
    ending: int = 0  # 1 or 2: the bar is in a first or second ending
    ending_starts: bool = False  # ... and the ending starts here: [1 or [2
    closes: str = ""  # 'repeat' (:|), 'part' (||) or '' after this bar
    line_ends: bool = False  # a phrase or part ends after this bar


def bar_marks(m: Melody, bars: int) -> list[BarMark]:
    """The form marks of each of the `bars` written bars of m (the pickup bar first, if any);
    plain bars with 4-bar lines where m has no form or one that does not fit its bars."""
    from ..form import Form

    first = 1 if m.pickup else 0
    form = m.form if m.form is not None and m.form.written_bars == bars - first else (
        Form.through(max(1, bars - first)))
    layout = form.layout()
    marks = [BarMark()] * first
    for w, wb in enumerate(layout):
        part = form.parts[wb.part]
        nxt = layout[w + 1] if w + 1 < len(layout) else None
        part_ends = nxt is None or nxt.part != wb.part
        closes = ""
        if part.repeat and ((wb.ending == 1 and (nxt is None or nxt.ending != 1))
                            or (not part.ending and part_ends)):
            closes = "repeat"
        elif part_ends:
            closes = "part"
        starts = w == 0 or layout[w - 1].part != wb.part
        marks.append(BarMark(
            opens_repeat=part.repeat and starts, ending=wb.ending,
            ending_starts=bool(wb.ending) and (w == 0 or layout[w - 1].ending != wb.ending),
            closes=closes, line_ends=part_ends or nxt.phrase != wb.phrase))
    return marks
