"""Read ABC, MIDI, MusicXML and kern into melodies; write melodies as MIDI, ABC, MusicXML, JSON or WAV."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from numbers import Real
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from .music import (MAX_BAR_TICKS, MODE_STEPS, MODES, PITCH_CLASS, TICKS_PER_QUARTER, Melody,
                    Meter, MusicError, Note, key_spelling, normalize_mode, relative_major,
                    tonic_pitch_class)

FORMATS_VERSION = 1
"""Bump when a reader's output for the same file changes; it keys the ingest cache."""

READ_SUFFIXES = (".abc", ".mid", ".midi", ".xml", ".mxl", ".musicxml", ".krn")
WRITE_SUFFIXES = (".mid", ".abc", ".musicxml", ".xml", ".json", ".wav")
SOUNDFONT_DIR = Path("/usr/share/sounds/sf2")
DEFAULT_TEMPO = 120.0


class FormatError(MusicError):
    """A file that is not readable music, or an output format that cannot be written here."""


@dataclass
class ReadLimits:
    """Bounds on the work one input may cause."""

    max_file_bytes: int = 5 * 1024 * 1024
    max_tune_chars: int = 200_000  # one ABC tune
    max_notes: int = 20_000


@dataclass
class ParsedTune:
    """One tune read from a file: its melody, or the short reason (`error`) it could not be used."""

    melody: Melody | None
    number: int | None  # ABC X: number, else the tune's index in its file (1 for single-tune files)
    title: str
    error: str | None = None  # "parse error", "empty file", "no notes", "drums only", "meter change", ...
    detail: str = ""


class _Skip(Exception):
    """Abandon one tune with a reason key and a detail."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:200]


# --- reading: entry points -----------------------------------------------------------------------

def read_tunes(path: str | os.PathLike, data: bytes | None = None,
               limits: ReadLimits | None = None) -> list[ParsedTune]:
    """Every tune in one file (read from disk unless `data` is given); never raises for bad content.

    Multi-tune ABC files give one ParsedTune per X: field; other formats give one. A tune that
    cannot be used has `melody=None` and a reason in `error`. A missing file raises FileNotFoundError.
    """
    limits = limits or ReadLimits()
    path = Path(path)
    suffix, name = path.suffix.lower(), path.stem
    if suffix not in READ_SUFFIXES:
        return [ParsedTune(None, None, name, "unsupported type",
                           f"'{suffix or path.name}'; readable: {' '.join(READ_SUFFIXES)}")]
    try:
        size = path.stat().st_size if data is None else len(data)
        if size > limits.max_file_bytes:
            return [ParsedTune(None, None, name, "file too large", f"{size} bytes > {limits.max_file_bytes}")]
        data = path.read_bytes() if data is None else data
    except FileNotFoundError:
        raise
    except OSError as e:  # a folder, no permission, ...
        return [ParsedTune(None, None, name, "read error", _one_line(e))]
    if not data.strip():
        return [ParsedTune(None, None, name, "empty file")]
    try:
        if suffix == ".abc":
            return _read_abc(data, name, limits)
        if suffix in (".mid", ".midi"):
            return [_read_midi(data, name, limits)]
        return [_read_score(data, suffix, name, limits)]
    except Exception as e:  # a reader bug must never abort a whole ingest
        return [ParsedTune(None, None, name, "parse error", _one_line(e))]


def read_melody(data: bytes, filename: str, limits: ReadLimits | None = None) -> Melody:
    """The first usable tune of an uploaded file; FormatError with a one-line reason otherwise."""
    suffix = Path(filename).suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise FormatError(f"unsupported file type '{suffix or filename}'; "
                          f"use one of {' '.join(READ_SUFFIXES)}")
    tunes = read_tunes(filename, data, limits)
    for t in tunes:
        if t.melody is not None:
            return t.melody
    first = tunes[0]
    detail = f" ({first.detail})" if first.detail else ""
    raise FormatError(f"{Path(filename).name}: {first.error}{detail}")


# --- keys ----------------------------------------------------------------------------------------

# Aarden-Essen key profiles, the weights music21's analyze('key') correlates with.
_PROFILES = {
    "major": np.array([17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062,
                       0.145624, 8.15494, 0.232998, 4.95122]),
    "minor": np.array([18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161,
                       4.56621, 1.93186, 7.37619, 1.75623]),
}


def _key_score(hist: np.ndarray, tonic: int, mode: str) -> float:
    """Pearson correlation of a duration-weighted pitch-class histogram with a rotated profile."""
    profile = np.roll(_PROFILES[mode], tonic)
    if hist.std() == 0:
        return 0.0
    return float(np.corrcoef(hist, profile)[0, 1])


def _histogram(notes: list[Note]) -> np.ndarray:
    hist = np.zeros(12)
    for n in notes:
        if n.pitch is not None:
            hist[n.pitch % 12] += n.duration
    return hist


def estimate_key(notes: list[Note], tonic: int | None = None,
                 candidates: tuple[tuple[int, str], ...] | None = None) -> tuple[int, str]:
    """Most likely (tonic, 'major'|'minor'), optionally with a fixed tonic or among candidates."""
    hist = _histogram(notes)
    if candidates is None:
        tonics = range(12) if tonic is None else (tonic,)
        candidates = tuple((t, m) for t in tonics for m in ("major", "minor"))
    return max(candidates, key=lambda c: _key_score(hist, c[0], c[1]))


def _signature_key(sharps: int, notes: list[Note]) -> tuple[int, str]:
    """Tonic and mode for a bare key signature: its major or relative minor, whichever fits."""
    major = (7 * sharps) % 12
    return estimate_key(notes, candidates=((major, "major"), ((major + 9) % 12, "minor")))


# --- ABC -----------------------------------------------------------------------------------------

_HEADER_LINE = re.compile(r"^(%%|[ILMQUm]:)")
_FIELD_LINE = re.compile(r"^(%|[A-Za-z+]:)")
_INLINE_FIELD = re.compile(r"\[([KLM]):([^\]\n]*)\]")  # music21 ignores inline [K:] and [M:]
_GERMAN_KEYS = {"H": "B", "Es": "Eb", "As": "Ab", "Des": "Db", "Ges": "Gb", "Fis": "F#", "Cis": "C#"}


def split_abc(text: str) -> list[tuple[int | None, str]]:
    """(X: number, tune text) for each tune; file-header fields are repeated inside each tune."""
    starts = [m.start() for m in re.finditer(r"(?m)^X:", text)]
    if not starts:
        return [(None, text)]
    header = [ln for ln in text[:starts[0]].splitlines() if _HEADER_LINE.match(ln)]
    tunes = []
    for i, s in enumerate(starts):
        body = text[s:starts[i + 1] if i + 1 < len(starts) else len(text)]
        first, _, rest = body.partition("\n")
        m = re.match(r"X:\s*(\d+)", first)
        tunes.append((int(m.group(1)) if m else None, "\n".join([first, *header, rest])))
    return tunes


def _clean_music_line(line: str) -> str:
    """Drop chord symbols and annotations, grace notes, slurs and `H` (fermata) from a music line.

    None belongs to the melody, and music21 misreads most: an annotation such as ">" becomes a
    broken rhythm, a grace note opening a triplet takes the triplet's first place, and the note
    after `H` is lost. Slurs only cost time. Tuplets such as `(3` stay.
    """
    if _FIELD_LINE.match(line):
        return line
    if '"' in line:
        line = re.sub(r'"[^"]*"', "", line)
    if "{" in line:
        line = re.sub(r"\{[^}]*\}", "", line)
    if "(" in line or ")" in line:
        line = re.sub(r"\((?!\d)|\)", "", line)
    return line.replace("H", "")


def _normalize_abc(text: str) -> str:
    text = _INLINE_FIELD.sub(lambda m: f"\n{m.group(1)}:{m.group(2)}\n", text)
    text = "\n".join(_clean_music_line(line) for line in text.split("\n"))
    return re.sub(r"(?m)^K:\s*(H|Es|As|Des|Ges|Fis|Cis)(?![A-Za-z#])",
                  lambda m: "K:" + _GERMAN_KEYS[m.group(1)], text)


def _abc_key(field: str | None) -> tuple[int | None, str | None]:
    """(tonic pitch class, mode) named by a K: field; None where it names none."""
    f = (field or "").split("%")[0].strip()
    m = re.match(r"([A-G])([#b]?)\s*([A-Za-z]*)", f, re.I)
    if not m or f.lower().startswith(("none", "hp")):
        return None, None
    tonic = tonic_pitch_class(m.group(1).upper() + m.group(2))
    word = m.group(3)
    if not word:
        return tonic, None
    try:
        return tonic, normalize_mode(word)
    except MusicError:
        return tonic, None


def _abc_tempo(field: str | None) -> float:
    """Quarter notes per minute from a Q: field such as '1/4=120', '3/8=80' or '100'."""
    text = re.sub(r'"[^"]*"', " ", field or "")
    m = re.search(r"(\d+)\s*/\s*(\d+)\s*=\s*(\d+(?:\.\d+)?)", text)
    if m:
        bpm = float(m.group(3)) * 4 * int(m.group(1)) / max(1, int(m.group(2)))
    else:
        m = re.search(r"\d+(?:\.\d+)?", text)
        bpm = float(m.group(0)) if m else DEFAULT_TEMPO
    return bpm if 20 <= bpm <= 400 else DEFAULT_TEMPO


def _meter(text: str | None) -> Meter:
    t = (text or "").split("%")[0].strip()
    if not t or t.lower() in ("none", "free"):
        raise _Skip("no meter", t)
    try:
        meter = Meter.parse(t)
    except MusicError:
        raise _Skip("unsupported meter", t) from None
    if meter.bar_ticks > MAX_BAR_TICKS:
        raise _Skip("unsupported meter", f"{meter} (bars longer than {MAX_BAR_TICKS // 96} whole notes)")
    return meter


def _read_abc(data: bytes, name: str, limits: ReadLimits) -> list[ParsedTune]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    out = []
    for index, (number, tune) in enumerate(split_abc(text), 1):
        number = number if number is not None else index
        m = re.search(r"(?m)^T:(.*)$", tune)
        title = m.group(1).strip() if m else f"{name} {number}"
        try:
            if len(tune) > limits.max_tune_chars:
                raise _Skip("too long", f"{len(tune)} characters")
            melody = _abc_melody(tune, limits)
            melody.title = title
            out.append(ParsedTune(melody, number, title))
        except _Skip as e:
            out.append(ParsedTune(None, number, title, e.reason, e.detail))
        except Exception as e:  # one malformed tune fails only itself
            out.append(ParsedTune(None, number, title, "parse error", _one_line(e)))
    return out


def _abc_melody(tune: str, limits: ReadLimits) -> Melody:
    m21 = _music21()
    handler = m21.abcFormat.ABCHandler(abcVersion=(2, 1, 0))
    handler.process("%abc-2.1\n" + _normalize_abc(tune))
    meter_text = key_text = tempo_text = None
    later_meters, seen_note = [], False
    for t in handler.tokens:
        if isinstance(t, (m21.abcFormat.ABCNote, m21.abcFormat.ABCChord)):
            seen_note = True
        elif isinstance(t, m21.abcFormat.ABCMetadata):
            if t.isMeter() and seen_note:
                later_meters.append(t.data)
            elif t.isMeter():
                meter_text = t.data
            elif t.isKey() and not seen_note:
                key_text = t.data
            elif t.isTempo() and tempo_text is None:
                tempo_text = t.data
    if not seen_note:
        raise _Skip("no notes")
    meter = _meter(meter_text)
    for text in later_meters:
        if _meter(text) != meter:
            raise _Skip("meter change", f"{meter} -> {text.strip()}")
    voices = handler.splitByVoice()
    handlers = voices if len(voices) == 1 else [voices[0] + v for v in voices[1:]]
    parts = [m21.translate.abcToStreamPart(h, inputM21=m21.FastPart()) for h in handlers]
    notes, pickup = _best_part(parts, meter, m21, limits)
    tonic, mode = _abc_key(key_text)
    if tonic is None:
        tonic, mode = estimate_key(notes)
    elif mode is None:
        mode = estimate_key(notes, tonic=tonic)[1]
    return Melody(notes, meter, tonic, mode, pickup, _abc_tempo(tempo_text))


# --- music21 scores (ABC, MusicXML, kern) -> notes -----------------------------------------------

@lru_cache(maxsize=1)
def _music21() -> SimpleNamespace:
    """music21 imported on first use (it takes a second); MIDI reading never needs it."""
    from music21 import (abcFormat, chord, clef, converter, key, metadata, meter, note, stream,
                         tempo, tie)
    from music21.abcFormat import translate
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    class FastPart(stream.Part):
        """A Part that skips beaming: the ABC translator beams each part, ~70% of its time."""

        def makeBeams(self, *args, **kwargs):
            return None

    return SimpleNamespace(abcFormat=abcFormat, translate=translate, chord=chord, clef=clef,
                           converter=converter, key=key, metadata=metadata, meter=meter, note=note,
                           stream=stream, tempo=tempo, tie=tie, FastPart=FastPart,
                           GeneralObjectExporter=GeneralObjectExporter)


def _part_events(part, m21) -> tuple[list[tuple], list[tuple[Fraction, Fraction, bool]]]:
    """Events (onset, length, pitch|None, tie type) in quarter notes, and each measure's
    (start, length, ends a section), where a section ends at a double, final or repeat barline."""
    events: list[tuple] = []
    spans: list[tuple[Fraction, Fraction, bool]] = []
    measures = list(part.getElementsByClass(m21.stream.Measure))
    for i, container in enumerate(measures or [part]):
        start = Fraction(container.offset) if measures else Fraction(0)
        length = Fraction(0)
        for src in [container, *container.voices]:
            base = start + (Fraction(src.offset) if src is not container else 0)
            for el in src.notesAndRests:
                d = el.duration
                if d.isGrace or not d.quarterLength:
                    continue
                ql = Fraction(d.quarterLength)
                if el.isRest:
                    pitch = None
                elif el.isChord:
                    pitch = max((p.midi for p in el.pitches), default=None)
                else:
                    pitch = el.pitch.midi if hasattr(el, "pitch") else None
                onset = base + Fraction(el.offset)
                events.append((onset, ql, pitch, el.tie.type if el.tie is not None else None))
                length = max(length, onset - start + ql)
        following = measures[i + 1] if i + 1 < len(measures) else None
        section_end = bool(measures) and (
            getattr(container.rightBarline, "type", "regular") != "regular"
            or (following is not None and getattr(following.leftBarline, "type", "regular") != "regular"))
        spans.append((start, length, section_end))
    return events, spans


def _ticks(q: Fraction) -> int:
    """Quarter notes -> ticks, rounding half up (applied to onsets, so bars never drift)."""
    return int((q * TICKS_PER_QUARTER + Fraction(1, 2)) // 1)


def _events_to_notes(events: list[tuple], limits: ReadLimits) -> tuple[list[Note], int]:
    """Skyline, tie merging and tick rounding; returns notes and the first onset in ticks."""
    events.sort(key=lambda e: (e[0], e[2] is None, -(e[2] or 0)))
    merged: list[list] = []  # [onset, end, pitch, tie]
    for onset, ql, pitch, tie in events:
        end = onset + ql
        if merged:
            last = merged[-1]
            if onset == last[0]:
                continue  # a lower chord tone, another voice, or a rest under a note
            if onset < last[1]:
                if pitch is None or (last[2] is not None and pitch < last[2]):
                    if end <= last[1]:
                        continue  # hidden under a sounding, higher note
                    onset = last[1]
                else:
                    last[1] = onset
            if onset > last[1]:
                merged.append([last[1], onset, None, None])
                last = merged[-1]
            # A tie joins only equal pitches; O'Neill's `G3-A` ties differ and stay two notes.
            if pitch is not None and pitch == last[2] and last[3] in ("start", "continue"):
                last[1], last[3] = end, tie
                continue
        merged.append([onset, end, pitch, tie])
    if len(merged) > limits.max_notes:
        raise _Skip("too many notes", f"{len(merged)} > {limits.max_notes}")
    notes, t0 = [], _ticks(merged[0][0]) if merged else 0
    for onset, end, pitch, _ in merged:
        d = _ticks(end) - _ticks(onset)
        if d > 0 and pitch is None and notes and notes[-1].pitch is None:
            notes[-1] = Note(None, notes[-1].duration + d)  # one silence, even across a barline
        elif d > 0:
            notes.append(Note(pitch, d))
    return notes, t0


def _align_bars(notes: list[Note], t0: int, spans: list[tuple[Fraction, Fraction, bool]],
                meter: Meter) -> tuple[list[Note], int]:
    """Pickup from the first measure, and rests that keep the bar grid on the written barlines.

    Notes are counted from the pickup, so every full measure must start on the meter's grid.
    Folk tunes break this at section ends: a part ends on a short bar before a repeat, or a new
    part opens with its own pickup after a full bar. There the bar is completed with a rest
    (after a short closing bar, before a short opening one). A short bar inside a section,
    where the source lost or gained a beat or changed meter unmarked, is 'irregular bars'.
    """
    bar = meter.bar_ticks
    spans_t = [(_ticks(s) - t0, _ticks(s + n) - _ticks(s), end) for s, n, end in spans if n > 0]
    if not spans_t:
        return notes, 0
    pickup = spans_t[0][1] if spans_t[0][1] < bar else 0
    pads: list[tuple[int, int]] = []  # (tick where a rest goes, its length)
    i = 1
    while i < len(spans_t):
        if spans_t[i][1] == bar:
            i += 1
            continue
        j = i  # spans_t[i:j] is a run of measures that are not a full bar
        while j < len(spans_t) and spans_t[j][1] != bar:
            j += 1
        run = [n for _, n, _ in spans_t[i:j]]
        if j < len(spans_t) and sum(run) % bar:
            pads.append(_section_pad(run, [e for _, _, e in spans_t[i - 1:j]], spans_t, i, bar, meter))
        i = j
    if not pads:
        return notes, pickup
    out, t, pads = [], 0, pads[::-1]
    for n in notes:
        while pads and pads[-1][0] <= t:
            out.append(Note(None, pads.pop()[1]))
        if pads and t < pads[-1][0] < t + n.duration:
            raise _Skip("irregular bars", "a note is tied across a short section-end bar")
        out.append(n)
        t += n.duration
    return out, pickup


def _section_pad(run: list[int], ends: list[bool], spans_t: list, i: int, bar: int,
                 meter: Meter) -> tuple[int, int]:
    """Where a rest completes a run of short measures (lengths `run`, starting at measure i).

    `ends[k]` tells whether a section ends just before run[k]. The rest goes at a section
    boundary: after a closing bar that the rest completes, else before an opening pickup group.
    """
    pad = -sum(run) % bar
    for q in range(1, len(run) + 1):  # after run[q-1], which closes a section
        if ends[q] and sum(run[q:]) % bar == 0:
            return spans_t[i + q][0], pad
    for q in range(len(run)):  # before run[q], which opens a section
        if ends[q] and sum(run[:q]) % bar == 0:
            return spans_t[i + q][0], pad
    raise _Skip("irregular bars", f"bar {i + 1} is {run[0]} ticks long, not {bar} ({meter})")


def _best_part(parts: list, meter: Meter, m21, limits: ReadLimits) -> tuple[list[Note], int]:
    """Notes and pickup of the part with the highest mean pitch."""
    best = None
    for part in parts:
        events, spans = _part_events(part, m21)
        pitches = [e[2] for e in events if e[2] is not None]
        if pitches and (best is None or np.mean(pitches) > best[0]):
            best = (float(np.mean(pitches)), events, spans)
    if best is None:
        raise _Skip("no notes")
    notes, t0 = _events_to_notes(best[1], limits)
    if not any(n.pitch is not None for n in notes):
        raise _Skip("no notes")
    return _align_bars(notes, t0, best[2], meter)


def _read_score(data: bytes, suffix: str, name: str, limits: ReadLimits) -> ParsedTune:
    """MusicXML (.xml .mxl .musicxml) or kern (.krn) via music21."""
    m21 = _music21()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            score = m21.converter.parseFile(path, forceSource=True, storePickle=False)
    except Exception as e:
        return ParsedTune(None, 1, name, "parse error", _one_line(e))
    if isinstance(score, m21.stream.Opus):
        score = score.scores.first() or score
    title = (score.metadata.bestTitle if score.metadata is not None else None) or name
    try:
        parts = (list(score.parts) if isinstance(score, m21.stream.Score) else []) or [score]
        parts = [p for p in parts if p.recurse().getElementsByClass(m21.clef.PercussionClef).first() is None]
        if not parts:
            raise _Skip("drums only")
        first = parts[0]
        signatures = list(first.recurse().getElementsByClass(m21.meter.TimeSignature))
        if not signatures:
            raise _Skip("no meter")
        meter = _meter(signatures[0].ratioString)
        for ts in signatures[1:]:
            if _meter(ts.ratioString) != meter:
                raise _Skip("meter change", f"{meter} -> {ts.ratioString}")
        notes, pickup = _best_part(parts, meter, m21, limits)
        signatures = list(first.recurse().getElementsByClass(m21.key.KeySignature))
        named = [k for k in signatures if isinstance(k, m21.key.Key) and k.mode in MODES]
        ks = signatures[0] if signatures else None
        if named:  # kern writes the key (*G:) apart from the signature (*k[f#])
            tonic, mode = named[0].tonic.pitchClass, named[0].mode
        elif ks is not None:
            tonic, mode = _signature_key(ks.sharps, notes)
        else:
            tonic, mode = estimate_key(notes)
        mark = first.recurse().getElementsByClass(m21.tempo.MetronomeMark).first()
        bpm = mark.getQuarterBPM() if mark is not None else None
        tempo = float(bpm) if bpm and 20 <= bpm <= 400 else DEFAULT_TEMPO
        return ParsedTune(Melody(notes, meter, tonic, mode, pickup, tempo, title), 1, title)
    except _Skip as e:
        return ParsedTune(None, 1, title, e.reason, e.detail)


# --- MIDI ----------------------------------------------------------------------------------------

_GRIDS = (24, 12, 8, 6, (6, 8), 4, 3)  # quarter, 8th, 8th triplet, 16th, either, 16th triplet, 32nd


def _snap(x: np.ndarray, grid) -> np.ndarray:
    """Nearest grid points; for a pair of grids (16ths or triplets), the better one per beat."""
    if isinstance(grid, tuple):
        beat = np.floor((x + 3) / TICKS_PER_QUARTER)
        a, b = (np.round(x / g) * g for g in grid)
        ea, eb = ((x - a) ** 2, (x - b) ** 2)
        use_b = np.zeros(len(x), dtype=bool)
        for k in np.unique(beat):
            sel = beat == k
            use_b[sel] = eb[sel].sum() < ea[sel].sum()
        return np.where(use_b, b, a)
    return np.round(x / grid) * grid


def choose_grid(onsets: np.ndarray) -> int | tuple[int, int]:
    """The coarsest grid (ticks, or 16ths-or-triplets chosen per beat) that explains played onsets.

    Finer grids always fit better, so a grid is accepted when its RMS error is within a margin of
    the best fine grid's and no onset is off by more than timing slips go (3 ticks, 60 ms at 120
    bpm). A plain grid is also refused when some onset sits clearly better on the other of 16ths
    and triplets; then each beat takes whichever of the two fits it.
    """
    errors = {g: np.abs(onsets - _snap(onsets, g)) for g in _GRIDS}
    rms = {g: float(np.sqrt(np.mean(e ** 2))) for g, e in errors.items()}
    limit = max(0.6, 1.6 * min(rms[g] for g in _GRIDS[-3:]))
    duple_or_triple = np.minimum(errors[6], errors[8])
    for g in _GRIDS:
        e = errors[g]
        misfit = isinstance(g, int) and g >= 6 and np.any((e > 1.75) & (e - duple_or_triple > 1.0))
        if rms[g] <= limit and e.max() <= max(3.0, min(np.atleast_1d(g)) / 4) and not misfit:
            return g
    return 3


def _read_midi(data: bytes, name: str, limits: ReadLimits) -> ParsedTune:
    import symusic

    try:
        score = symusic.Score.from_midi(data)
    except Exception as e:
        return ParsedTune(None, 1, name, "parse error", _one_line(e))
    try:
        return ParsedTune(_midi_melody(score, name, limits), 1, name)
    except _Skip as e:
        return ParsedTune(None, 1, name, e.reason, e.detail)


def _midi_melody(score, name: str, limits: ReadLimits) -> Melody:
    tracks = [t for t in score.tracks if t.note_num() > 0]
    if not tracks:
        raise _Skip("no notes")
    melodic = [t for t in tracks if not t.is_drum]
    if not melodic:
        raise _Skip("drums only", "every track is on the drum channel")
    largest = max(t.note_num() for t in melodic)
    melodic = [t for t in melodic if t.note_num() >= min(8, largest)]  # not a lone bell or count-in
    track = max(melodic, key=lambda t: float(np.mean(t.notes.numpy()["pitch"])))
    arrays = track.notes.numpy()
    if len(arrays["time"]) > limits.max_notes:
        raise _Skip("too many notes", f"{len(arrays['time'])} > {limits.max_notes}")
    scale = TICKS_PER_QUARTER / score.ticks_per_quarter
    on = arrays["time"].astype(np.float64) * scale
    off = on + arrays["duration"].astype(np.float64) * scale
    pitch = arrays["pitch"].astype(np.int64)

    # Score-like files sit on the 1/24-quarter grid (within one file tick); played ones are snapped.
    tol = max(1e-6, 0.51 * scale)
    grid = 1 if np.all(np.abs(on - np.round(on)) <= tol) else choose_grid(on)
    start = _snap(on, grid).astype(np.int64)
    order = np.lexsort((-pitch, start))

    kept: list[list[float]] = []  # [onset, raw end, pitch] of the skyline
    for i in order:
        s, e, p = int(start[i]), float(off[i]), int(pitch[i])
        if kept and s == kept[-1][0]:
            continue  # lower note of a chord
        if kept and kept[-1][1] > s and p < kept[-1][2] and e <= kept[-1][1]:
            continue  # hidden under a held, higher note
        kept.append([s, e, p])

    meters = sorted(((ts.time * scale, ts.numerator, ts.denominator) for ts in score.time_signatures))
    first_on = kept[0][0]
    initial = [m for m in meters if m[0] <= first_on] or meters[:1]
    num, den = (initial[-1][1], initial[-1][2]) if initial else (4, 4)
    try:
        meter = Meter(num, den)
    except MusicError:
        raise _Skip("unsupported meter", f"{num}/{den}") from None
    if meter.bar_ticks > MAX_BAR_TICKS:
        raise _Skip("unsupported meter", str(meter))
    if any((m[1], m[2]) != (num, den) for m in meters if m[0] > first_on):
        raise _Skip("meter change", str(meter))

    notes: list[Note] = []
    step = grid if isinstance(grid, int) else min(grid)
    exact_ends = grid == 1 and bool(np.all(np.abs(off - np.round(off)) <= tol))
    for k, (s, e, p) in enumerate(kept):
        nxt = kept[k + 1][0] if k + 1 < len(kept) else None
        if exact_ends:
            end = max(s + 1, round(e))
        elif nxt is None:  # the last note: to its barline if released near it, else the nearest 8th
            end = max(s + step, int(_snap(np.array([e]), max(step, 12))[0]))
            barline = (s // meter.bar_ticks + 1) * meter.bar_ticks
            if barline - e < 0.3 * (barline - s):
                end = barline
        else:
            end = max(s + step, int(_snap(np.array([e]), step)[0]))
            # A short gap is articulation, not a rest: notes are seldom held to the next onset.
            if nxt - e < max(step, 0.3 * (nxt - s)):
                end = nxt
        end = min(end, nxt) if nxt is not None else end
        notes.append(Note(p, end - s))
        if nxt is not None and nxt > end:
            notes.append(Note(None, nxt - end))

    bar = meter.bar_ticks
    lead = first_on % bar  # leading silence: whole bars are dropped, a partial bar is a pickup
    pickup = (bar - lead) % bar
    tonic, mode = _midi_key(score, notes)
    tempo = float(score.tempos[0].qpm) if len(score.tempos) else DEFAULT_TEMPO
    title, marks = name, {}
    for mk in score.markers:
        k, _, v = str(mk.text).partition(":")
        marks[k.strip().lower()] = v.strip()
    if "key" in marks:
        try:
            ktonic, _, kmode = marks["key"].partition(" ")
            tonic, mode = tonic_pitch_class(ktonic), normalize_mode(kmode)
        except MusicError:
            pass
    title = marks.get("title") or title
    return Melody(notes, meter, tonic, mode, pickup, tempo if 20 <= tempo <= 400 else DEFAULT_TEMPO, title)


def _midi_key(score, notes: list[Note]) -> tuple[int, str]:
    if len(score.key_signatures):
        ks = score.key_signatures[0]
        major = (7 * int(ks.key)) % 12
        return ((major + 9) % 12, "minor") if ks.tonality else (major, "major")
    return estimate_key(notes)


# --- writing: shared spelling and bar splitting --------------------------------------------------

_LETTERS = "CDEFGAB"
_FIFTHS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F": -1}
_MODE_FIFTHS = {"major": 0, "mixolydian": -1, "dorian": -2, "minor": -3, "phrygian": -4,
                "lydian": 1, "locrian": -5}
_ABC_MODE = {"major": "", "minor": "m", "dorian": "dor", "phrygian": "phr", "lydian": "lyd",
             "mixolydian": "mix", "locrian": "loc"}


# Scale degree (0 = tonic) used to spell each interval above the tonic when it is not in the mode.
_DEGREE = {0: 0, 1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 4, 8: 5, 9: 5, 10: 6, 11: 6}


@dataclass(frozen=True)
class _Spelling:
    """How a melody's key is written: tonic name, and the key signature's alteration per letter."""

    tonic: int
    mode: str
    tonic_name: str
    signature: dict

    @classmethod
    def of(cls, tonic: int, mode: str) -> "_Spelling":
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


def _bars(m: Melody) -> list[list[tuple[int | None, int, bool]]]:
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


# --- ABC writing ---------------------------------------------------------------------------------

def _abc_length(mult: Fraction) -> str:
    if mult == 1:
        return ""
    if mult.denominator == 1:
        return str(mult.numerator)
    return f"{mult.numerator if mult.numerator != 1 else ''}/{mult.denominator}"


def _abc_tune(m: Melody, number: int) -> str:
    spelling = _Spelling.of(m.tonic, m.mode)
    # music21 reads K:..loc as major, so locrian tunes carry every accidental explicitly.
    explicit = m.mode == "locrian"
    bar_ticks, beat = m.meter.bar_ticks, m.meter.beat_ticks
    title = " ".join((m.title or "Untitled").split())
    lines = [f"X:{number}", f"T:{title}", f"M:{m.meter}", "L:1/8",
             f"Q:1/4={round(m.tempo)}", f"K:{spelling.tonic_name}{_ABC_MODE[m.mode]}"]
    body, pos = [], m.start_position
    for b, bar in enumerate(_bars(m)):
        # ABC 2.1: an accidental holds to the end of the bar. Readers differ on whether it holds
        # in other octaves too, so a mark is written unless both readings give the right pitch.
        per_octave: dict[tuple[str, int], int] = {}
        per_letter: dict[str, int] = {}
        out, run_left = [], 0
        for k, (pitch, ticks, tied) in enumerate(bar):
            token = ""
            if run_left == 0 and ticks % 3:
                # Durations off the 32nd grid are triplet-based: a 3:2 tuplet over the run.
                run_left = next((j for j in range(k, len(bar)) if bar[j][1] % 3 == 0), len(bar)) - k
                token = "(3" if run_left == 3 else f"(3:2:{run_left}"
                in_run = True
            elif run_left == 0:
                in_run = False
            if pitch is None:
                token += "z"
            else:
                letter, alt, octave = spelling.spell(pitch)
                implied = (per_octave.get((letter, octave), spelling.signature[letter]),
                           per_letter.get(letter, spelling.signature[letter]))
                if explicit or implied != (alt, alt):
                    token += {1: "^", -1: "_", 0: "="}[alt]
                    per_octave[(letter, octave)] = per_letter[letter] = alt
                token += letter.lower() + "'" * (octave - 5) if octave >= 5 else letter + "," * (4 - octave)
            # L:1/8 is 12 ticks; inside a 3:2 tuplet a note is written 3/2 as long.
            token += _abc_length(Fraction(ticks, 8 if in_run else 12)) + ("-" if tied else "")
            if out and pos % beat == 0 and (not in_run or token.startswith("(")):
                out.append(" ")
            out.append(token)
            pos = (pos + ticks) % bar_ticks
            run_left = max(0, run_left - 1) if in_run else 0
        body.append("".join(out) + (" |\n" if b % 4 == 3 else " | "))
    return "\n".join(lines) + "\n" + "".join(body).rstrip(" |\n") + " |]"


def to_abc(melodies: list[Melody], first_number: int = 1) -> str:
    """ABC 2.1 text: one tune per melody (X: numbered from `first_number`), barlines and ties."""
    tunes = [_abc_tune(m, first_number + i) for i, m in enumerate(melodies)]
    return "%abc-2.1\n\n" + "\n\n".join(tunes) + "\n"


# --- MIDI, MusicXML, JSON, WAV writing -----------------------------------------------------------

def to_midi_bytes(m: Melody, program: int = 0, velocity: int = 90) -> bytes:
    """Standard MIDI file: one instrument, with tempo, time-signature and key-signature events.

    A pickup starts where it falls in its bar, so bar 1 begins on a downbeat. MIDI key signatures
    know only major and minor, so the mode and title also go in marker events ('key: D dorian').
    """
    import mido
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=m.tempo)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(m.meter.numerator, m.meter.denominator, 0))
    major = relative_major(m.tonic, m.mode)  # the signature's major key; minor-like modes use its minor
    key_number = major if m.mode in ("major", "lydian", "mixolydian") else 12 + (major + 9) % 12
    pm.key_signature_changes.append(pretty_midi.KeySignature(key_number, 0))
    inst = pretty_midi.Instrument(program=program, name=m.title or "melody")
    seconds = 60.0 / (m.tempo * TICKS_PER_QUARTER)
    t = m.start_position
    for n in m.notes:
        if n.pitch is not None and 0 <= n.pitch <= 127:
            inst.notes.append(pretty_midi.Note(velocity, n.pitch, t * seconds, (t + n.duration) * seconds))
        t += n.duration
    pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    mf = mido.MidiFile(file=io.BytesIO(buf.getvalue()))
    mf.tracks[0].insert(0, mido.MetaMessage("marker", text=f"key: {key_spelling(m.tonic, m.mode)} {m.mode}"))
    if m.title:
        mf.tracks[0].insert(0, mido.MetaMessage("marker", text=f"title: {m.title}"))
    out = io.BytesIO()
    mf.save(file=out)
    return out.getvalue()


def to_musicxml_bytes(m: Melody) -> bytes:
    """MusicXML via music21, with key signature (and mode), time signature and tempo."""
    m21 = _music21()
    spelling = _Spelling.of(m.tonic, m.mode)
    score = m21.stream.Score()
    score.insert(0, m21.metadata.Metadata(title=m.title or "Untitled"))
    part = m21.stream.Part()
    bars, tied_in = _bars(m), False
    for b, bar in enumerate(bars):
        measure = m21.stream.Measure(number=b + (0 if m.pickup else 1))
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
    return {"title": m.title, "meter": str(m.meter), "key": key_spelling(m.tonic, m.mode), "mode": m.mode,
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


def _render(m: Melody, suffix: str, surprisal) -> bytes:
    if suffix == ".mid":
        return to_midi_bytes(m)
    if suffix in (".musicxml", ".xml"):
        return to_musicxml_bytes(m)
    if suffix == ".json":
        return (json.dumps(to_json_dict(m, surprisal), indent=1) + "\n").encode()
    if suffix == ".wav":
        return to_wav_bytes(m)
    return to_abc([m]).encode()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _per_melody(surprisal, count: int) -> list:
    """One surprisal list (or None) per melody; a single melody may pass its list unwrapped."""
    if surprisal is None:
        return [None] * count
    first = surprisal[0] if len(surprisal) else None
    if count == 1 and isinstance(first, (tuple, list)) and len(first) == 2 and isinstance(first[0], Real):
        return [surprisal]
    if len(surprisal) != count:
        raise FormatError(f"{len(surprisal)} surprisal lists for {count} melodies")
    return list(surprisal)


def save(melodies: list[Melody], path: str | os.PathLike, surprisal=None) -> list[Path]:
    """Write melodies by the path's suffix, atomically; returns the files written.

    Several melodies go into one multi-tune .abc file, or numbered files (tune-1.mid, tune-2.mid).
    `surprisal` is one list of (rhythm, pitch) bits per melody (or one list for a single melody).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise FormatError(f"unknown output type '{suffix or path.name}'; "
                          f"use one of {' '.join(WRITE_SUFFIXES)}")
    if not melodies:
        raise FormatError("no melodies to write")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist")
    per_melody = _per_melody(surprisal, len(melodies))
    if suffix == ".abc":
        _atomic_write(path, to_abc(melodies).encode())
        return [path]
    width = len(str(len(melodies)))
    targets = [path] if len(melodies) == 1 else [
        path.with_name(f"{path.stem}-{i:0{width}d}{path.suffix}") for i in range(1, len(melodies) + 1)]
    for m, s, target in zip(melodies, per_melody, targets):
        _atomic_write(target, _render(m, suffix, s))
    return targets
