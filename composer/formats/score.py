"""music21 scores (ABC, MusicXML, kern) to notes: the melody part, its bars, and MusicXML/kern files."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..form import MeasureMarks, form_from_marks, name_parts, part_contents
from ..music import MODES, TICKS_PER_QUARTER, Melody, Meter, Note, signature_tonic
from .common import ParsedTune, ReadLimits, Skip, music21_modules, one_line, parse_meter, plausible_tempo
from .guards import check_kern, check_musicxml
from .keys import estimate_key, signature_key, with_final_key

_DOUBLE_BARS = {"double", "final", "heavy", "heavy-light", "light-heavy", "heavy-heavy"}


def _barline(line, m21, direction: str) -> str:
    """'repeat' for a repeat sign facing `direction`, 'double' for a double or final bar, else ''."""
    if line is None:
        return ""
    if isinstance(line, m21.bar.Repeat):
        return "repeat" if line.direction == direction else ""
    return "double" if getattr(line, "type", "regular") in _DOUBLE_BARS else ""


def _endings(part, m21) -> dict[int, int]:
    """id(measure) -> the number of the ending bracket over it (1 or 2; a '1, 3' bracket is 1)."""
    out = {}
    for sp in part.spanners.getElementsByClass(m21.spanner.RepeatBracket):
        numbers = sp.getNumberList() if hasattr(sp, "getNumberList") else [sp.number]
        number = min(int(n) for n in numbers) if numbers else 0
        for m in sp.getSpannedElements():
            out[id(m)] = 1 if number == 1 else (2 if number >= 2 else 0)
    return out


def _part_events(part, m21, lines: bool = False) -> tuple[list[tuple], list[tuple], list[Fraction]]:
    """Events (onset, length, pitch|None, tie type) in quarter notes; each measure's (start,
    length, ends a section, left barline, right barline, ending), where a section ends at a
    double, final or repeat barline; and, with `lines`, the onsets of notes marked staccato
    (the ABC reader marks the first note of each line so)."""
    events: list[tuple] = []
    spans: list[tuple] = []
    line_starts: list[Fraction] = []
    measures = list(part.getElementsByClass(m21.stream.Measure))
    endings = _endings(part, m21) if measures else {}
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
                if lines and any(isinstance(a, m21.articulations.Staccato) for a in el.articulations):
                    line_starts.append(onset)
                length = max(length, onset - start + ql)
        following = measures[i + 1] if i + 1 < len(measures) else None
        left = _barline(container.leftBarline, m21, "start") if measures else ""
        right = _barline(container.rightBarline, m21, "end") if measures else ""
        if following is not None and _barline(following.leftBarline, m21, "start") == "" and (
                getattr(following.leftBarline, "type", "regular") in _DOUBLE_BARS):
            right = right or "double"
        section_end = bool(measures) and (
            getattr(container.rightBarline, "type", "regular") != "regular"
            or (following is not None and getattr(following.leftBarline, "type", "regular") != "regular"))
        spans.append((start, length, section_end, left, right, endings.get(id(container), 0)))
    return events, spans, line_starts


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
        raise Skip("too many notes", f"{len(merged)} > {limits.max_notes}")
    notes, t0 = [], _ticks(merged[0][0]) if merged else 0
    for onset, end, pitch, _ in merged:
        d = _ticks(end) - _ticks(onset)
        if d > 0 and pitch is None and notes and notes[-1].pitch is None:
            notes[-1] = Note(None, notes[-1].duration + d)  # one silence, even across a barline
        elif d > 0:
            notes.append(Note(pitch, d))
    return notes, t0


def _align_bars(notes: list[Note], t0: int, spans: list[tuple], meter: Meter
                ) -> tuple[list[Note], int, list[tuple[int, int]]]:
    """Pickup from the first measure, and rests that keep the bar grid on the written barlines.

    Notes are counted from the pickup, so every full measure must start on the meter's grid.
    Folk tunes break this at section ends: a part ends on a short bar before a repeat, or a new
    part opens with its own pickup after a full bar. There the bar is completed with a rest
    (after a short closing bar, before a short opening one). A short bar inside a section,
    where the source lost or gained a beat or changed meter unmarked, is 'irregular bars'.
    """
    bar = meter.bar_ticks
    spans_t = [(_ticks(s) - t0, _ticks(s + n) - _ticks(s), end) for s, n, end, *_ in spans if n > 0]
    if not spans_t:
        return notes, 0, []
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
        return notes, pickup, []
    added = sorted(pads)
    out, t, pads = [], 0, pads[::-1]
    for n in notes:
        while pads and pads[-1][0] <= t:
            out.append(Note(None, pads.pop()[1]))
        if pads and t < pads[-1][0] < t + n.duration:
            raise Skip("irregular bars", "a note is tied across a short section-end bar")
        out.append(n)
        t += n.duration
    return out, pickup, added


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
    raise Skip("irregular bars", f"bar {i + 1} is {meter.in_units(run[0])}, not "
                                 f"{meter.numerator} ({meter})")


@dataclass
class PartNotes:
    """The melody part of a score: notes, pickup, and the measure marks its form comes from."""

    notes: list[Note]
    pickup: int
    marks: list[MeasureMarks]  # per measure, in ticks from the first note (bars completed)
    line_starts: list[int]  # ticks where the source starts a line (ABC only)


def best_part(parts: list, meter: Meter, m21, limits: ReadLimits, lines: bool = False) -> PartNotes:
    """Notes, pickup and measure marks of the part with the highest mean pitch."""
    best = None
    for part in parts:
        events, spans, line_starts = _part_events(part, m21, lines)
        pitches = [e[2] for e in events if e[2] is not None]
        if pitches and (best is None or np.mean(pitches) > best[0]):
            best = (float(np.mean(pitches)), events, spans, line_starts)
    if best is None:
        raise Skip("no notes")
    _, events, spans, line_starts = best
    notes, t0 = _events_to_notes(events, limits)
    if not any(n.pitch is not None for n in notes):
        raise Skip("no notes")
    notes, pickup, pads = _align_bars(notes, t0, spans, meter)

    def aligned(q: Fraction) -> int:  # a tick of the source on the completed bar grid
        t = _ticks(q) - t0
        return t + sum(n for at, n in pads if at <= t)

    marks = [MeasureMarks(aligned(s), aligned(s + n), left, right, ending)
             for s, n, _, left, right, ending in spans if n > 0]
    return PartNotes(notes, pickup, marks, sorted({aligned(q) for q in line_starts}))


def melody_of(part: PartNotes, meter: Meter, tonic: int, mode: str, tempo: float, title: str = "",
              tune_type: str = "", tonic_name: str | None = None, da_capo: bool = False,
              mode_named: bool = True, signature: int | None = None
              ) -> tuple[Melody, list[str], bool]:
    """The melody with its written form (`da_capo`: its written end goes back, see Form), the
    form markers that could not be used, and whether its key was read from its final: where the
    source named no mode (a bare key signature), the tonic and mode may come from where the tune
    closes (keys.with_final_key; `signature`: the tonic of the key signature's major key)."""
    mel = Melody(part.notes, meter, tonic, mode, part.pickup, tempo, title, tune_type=tune_type,
                 tonic_name=tonic_name)
    form, dropped = form_from_marks(part.marks, meter.bar_ticks, mel.start_position,
                                    mel.total_ticks)
    form = name_parts(form, part_contents(form, mel.onsets(), mel.notes, meter.bar_ticks,
                                          mel.start_position))
    mel.form = replace(form, da_capo=da_capo)
    keyed = mel if mode_named else with_final_key(mel, signature)
    return keyed, dropped, keyed is not mel


def read_score(data: bytes, suffix: str, name: str, limits: ReadLimits) -> ParsedTune:
    """MusicXML (.xml .mxl .musicxml) or kern (.krn) via music21."""
    m21 = music21_modules()
    try:  # music21 would spend minutes (or forever) on a huge meter or an .mxl zip bomb
        if suffix == ".krn":
            check_kern(data, limits)
        else:
            check_musicxml(data, suffix, limits)
    except Skip as e:
        return ParsedTune(None, 1, name, e.reason, e.detail)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            score = m21.converter.parseFile(path, forceSource=True, storePickle=False)
    except Exception as e:
        return ParsedTune(None, 1, name, "parse error", library=one_line(e))
    if isinstance(score, m21.stream.Opus):
        score = score.scores.first() or score
    title = (score.metadata.bestTitle if score.metadata is not None else None) or name
    try:
        parts = (list(score.parts) if isinstance(score, m21.stream.Score) else []) or [score]
        parts = [p for p in parts if p.recurse().getElementsByClass(m21.clef.PercussionClef).first() is None]
        if not parts:
            raise Skip("drums only")
        first = parts[0]
        signatures = list(first.recurse().getElementsByClass(m21.meter.TimeSignature))
        if not signatures:
            raise Skip("no meter")
        meter = parse_meter(signatures[0].ratioString)
        for ts in signatures[1:]:
            if parse_meter(ts.ratioString) != meter:
                raise Skip("meter change", f"{meter} -> {ts.ratioString}")
        part = best_part(parts, meter, m21, limits)
        notes = part.notes
        signatures = list(first.recurse().getElementsByClass(m21.key.KeySignature))
        named = [k for k in signatures if isinstance(k, m21.key.Key) and k.mode in MODES]
        ks = signatures[0] if signatures else None
        name = None
        if named:  # kern writes the key (*G:) apart from the signature (*k[f#])
            tonic, mode = named[0].tonic.pitchClass, named[0].mode
            name = named[0].tonic.name.replace("-", "b")
        elif ks is not None:
            tonic, mode = signature_key(ks.sharps, notes)
            name = signature_tonic(ks.sharps, mode)
        else:
            tonic, mode = estimate_key(notes)
        mark = first.recurse().getElementsByClass(m21.tempo.MetronomeMark).first()
        bpm = mark.getQuarterBPM() if mark is not None else None
        goes_back = first.recurse().getElementsByClass(
            (m21.repeat.RepeatExpressionCommand, m21.repeat.Fine)).first() is not None
        melody, dropped, from_final = melody_of(part, meter, tonic, mode, plausible_tempo(bpm),
                                                title, tonic_name=name, da_capo=goes_back,
                                                mode_named=bool(named),
                                                signature=None if ks is None else (7 * ks.sharps) % 12)
        return ParsedTune(melody, 1, title, dropped=dropped, key_from_final=from_final)
    except Skip as e:
        return ParsedTune(None, 1, title, e.reason, e.detail)

