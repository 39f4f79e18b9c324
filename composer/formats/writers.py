"""Writers beside ABC and MIDI: MusicXML, JSON and WAV, and the atomic file write that save uses."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

from ..music import TICKS_PER_QUARTER, Melody
from .common import FormatError, music21_modules
from .midi import to_midi_bytes
from .notation import Spelling, bar_marks, written_bars

SOUNDFONT_DIR = Path("/usr/share/sounds/sf2")


def to_musicxml_bytes(m: Melody) -> bytes:
    """MusicXML via music21, with key signature (and mode), time signature and tempo."""
    m21 = music21_modules()
    spelling = Spelling.of(m)
    score = m21.stream.Score()
    score.insert(0, m21.metadata.Metadata(title=m.title or "Untitled"))
    part = m21.stream.Part()
    bars, tied_in = written_bars(m), False
    marks = bar_marks(m, len(bars))
    brackets: list[tuple[int, list]] = []  # (ending number, its measures)
    for b, bar in enumerate(bars):
        measure = m21.stream.Measure(number=b + (0 if m.pickup else 1))
        mark = marks[b]
        if mark.opens_repeat:
            measure.leftBarline = m21.bar.Repeat(direction="start")
        if mark.closes == "repeat":
            measure.rightBarline = m21.bar.Repeat(direction="end")
        elif mark.closes == "part":
            measure.rightBarline = m21.bar.Barline("final" if b == len(bars) - 1 else "double")
        if mark.ending_starts:
            brackets.append((mark.ending, []))
        if mark.ending:
            brackets[-1][1].append(measure)
        if b == 0:
            measure.append(m21.meter.TimeSignature(str(m.meter)))
            measure.append(m21.key.Key(spelling.tonic_name.replace("b", "-"), m.mode))
            measure.append(m21.tempo.MetronomeMark(number=round(m.tempo, 2), referent=1.0))
            if m.pickup:
                measure.paddingLeft = Fraction(m.meter.bar_ticks - m.pickup, TICKS_PER_QUARTER)
        for pitch, ticks, tied in bar:
            ql = Fraction(ticks, TICKS_PER_QUARTER)
            if pitch is None:
                el = m21.note.Rest(quarterLength=ql)
            else:
                letter, alt, octave = spelling.spell(pitch)
                el = m21.note.Note(f"{letter}{'#' * (alt > 0)}{'-' * (alt < 0)}{octave}", quarterLength=ql)
                if tied or tied_in:
                    el.tie = m21.tie.Tie("continue" if tied and tied_in else "start" if tied else "stop")
            measure.append(el)
            tied_in = tied
        if b == len(bars) - 1:  # a short last bar stays short (music21 would fill it with rests)
            measure.paddingRight = Fraction(m.meter.bar_ticks - sum(t for _, t, _ in bar), TICKS_PER_QUARTER)
        part.append(measure)
    for number, measures in brackets:
        part.insert(0, m21.spanner.RepeatBracket(measures, number=number))
    score.insert(0, part)
    data = m21.GeneralObjectExporter(score).parse()
    # Same melody, same bytes: drop the date and replace music21's random part id.
    data = re.sub(rb"\s*<encoding-date>[^<]*</encoding-date>", b"", data)
    part_id = re.search(rb'<score-part id="([^"]+)"', data)
    return data.replace(part_id.group(1), b"P1") if part_id else data


def to_json_dict(m: Melody, surprisal: list[tuple[float, float]] | None = None) -> dict:
    """Notes as pitch (MIDI, null for a rest), start and duration in quarter notes, with surprisal."""
    notes, t = [], 0
    for i, n in enumerate(m.notes):
        item = {"pitch": n.pitch, "start": round(t / TICKS_PER_QUARTER, 6),
                "duration": round(n.duration / TICKS_PER_QUARTER, 6)}
        if surprisal is not None and i < len(surprisal):
            item["rhythm_bits"], item["pitch_bits"] = (round(float(x), 4) for x in surprisal[i])
        notes.append(item)
        t += n.duration
    bits = (round(sum(r + p for r, p in surprisal) / len(surprisal), 4) if surprisal else None)
    return {"title": m.title, "meter": str(m.meter), "key": m.spelled_tonic(), "mode": m.mode,
            "tempo": m.tempo, "pickup": m.pickup / TICKS_PER_QUARTER, "notes": notes, "bits_per_note": bits}


def find_soundfont() -> Path | None:
    """A General MIDI soundfont (.sf2) in the usual Debian folder, or None."""
    preferred = SOUNDFONT_DIR / "TimGM6mb.sf2"
    if preferred.is_file():
        return preferred
    return next(iter(sorted(SOUNDFONT_DIR.glob("*.sf2"))), None) if SOUNDFONT_DIR.is_dir() else None


def to_wav_bytes(m: Melody, soundfont: str | os.PathLike | None = None, sample_rate: int = 44100) -> bytes:
    """The melody rendered to WAV by the fluidsynth program with a General MIDI soundfont."""
    exe = shutil.which("fluidsynth")
    font = Path(soundfont) if soundfont else find_soundfont()
    if exe is None or font is None or not font.is_file():
        raise FormatError("WAV output needs fluidsynth and a General MIDI soundfont: "
                          "apt-get install fluidsynth timgm6mb-soundfont")
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(to_midi_bytes(m))
        command = [exe, "-ni", "-q", "-T", "wav", "-F", str(wav), "-r", str(sample_rate), str(font), str(mid)]
        try:
            proc = subprocess.run(command, capture_output=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise FormatError("fluidsynth took over 120 s to render the melody") from None
        if proc.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
            raise FormatError(f"fluidsynth failed: {proc.stderr.decode(errors='replace').strip()[:200]}")
        return wav.read_bytes()


