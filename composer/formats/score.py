"""music21 scores (ABC, MusicXML, kern) to notes: the melody part, its bars, and MusicXML/kern files."""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..music import MODES, TICKS_PER_QUARTER, Melody, Meter, Note
from .common import ParsedTune, ReadLimits, Skip, music21_modules, one_line, parse_meter, plausible_tempo
from .guards import check_kern, check_musicxml
from .keys import estimate_key, signature_key

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
        raise Skip("too many notes", f"{len(merged)} > {limits.max_notes}")
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
            raise Skip("irregular bars", "a note is tied across a short section-end bar")
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
    raise Skip("irregular bars", f"bar {i + 1} is {run[0]} ticks long, not {bar} ({meter})")


def best_part(parts: list, meter: Meter, m21, limits: ReadLimits) -> tuple[list[Note], int]:
    """Notes and pickup of the part with the highest mean pitch."""
    best = None
    for part in parts:
        events, spans = _part_events(part, m21)
        pitches = [e[2] for e in events if e[2] is not None]
        if pitches and (best is None or np.mean(pitches) > best[0]):
            best = (float(np.mean(pitches)), events, spans)
    if best is None:
        raise Skip("no notes")
    notes, t0 = _events_to_notes(best[1], limits)
    if not any(n.pitch is not None for n in notes):
        raise Skip("no notes")
    return _align_bars(notes, t0, best[2], meter)


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
        return ParsedTune(None, 1, name, "parse error", one_line(e))
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
        notes, pickup = best_part(parts, meter, m21, limits)
        signatures = list(first.recurse().getElementsByClass(m21.key.KeySignature))
        named = [k for k in signatures if isinstance(k, m21.key.Key) and k.mode in MODES]
        ks = signatures[0] if signatures else None
        if named:  # kern writes the key (*G:) apart from the signature (*k[f#])
            tonic, mode = named[0].tonic.pitchClass, named[0].mode
        elif ks is not None:
            tonic, mode = signature_key(ks.sharps, notes)
        else:
            tonic, mode = estimate_key(notes)
        mark = first.recurse().getElementsByClass(m21.tempo.MetronomeMark).first()
        bpm = mark.getQuarterBPM() if mark is not None else None
        return ParsedTune(Melody(notes, meter, tonic, mode, pickup, plausible_tempo(bpm), title), 1, title)
    except Skip as e:
        return ParsedTune(None, 1, title, e.reason, e.detail)

