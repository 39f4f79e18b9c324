"""MIDI: reading played or score-like files into melodies (grid snapping, skyline), and writing them."""

from __future__ import annotations

import struct

import numpy as np

from ..music import (MAX_BAR_TICKS, TICKS_PER_QUARTER, Melody, Meter, MusicError, Note, key_fifths,
                     normalize_mode, signature_tonic, tonic_name, tonic_pitch_class)
from .common import DEFAULT_TEMPO, ParsedTune, ReadLimits, Skip, one_line, plausible_tempo
from .keys import estimate_key

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


def read_midi(data: bytes, name: str, limits: ReadLimits) -> ParsedTune:
    """The melody of a MIDI file: the highest melodic track, on the finest grid its onsets need."""
    import symusic

    division = int.from_bytes(data[12:14], "big") if data[:4] == b"MThd" and len(data) >= 14 else 1
    if division & 0x8000:
        return ParsedTune(None, 1, name, "unsupported timing",
                          "SMPTE time code instead of ticks per quarter note")
    if division == 0:
        return ParsedTune(None, 1, name, "parse error", "0 ticks per quarter note")
    if data[:4] != b"MThd":
        return ParsedTune(None, 1, name, "parse error", "not a MIDI file (no MThd header)")
    try:
        score = symusic.Score.from_midi(data)
    except Exception as e:  # the reader's messages are terse ("MiniMidi: ... iostream error")
        return ParsedTune(None, 1, name, "parse error", library=one_line(e))
    try:
        return ParsedTune(_midi_melody(score, name, limits), 1, name)
    except Skip as e:
        return ParsedTune(None, 1, name, e.reason, e.detail)


def _midi_melody(score, name: str, limits: ReadLimits) -> Melody:
    tracks = [t for t in score.tracks if t.note_num() > 0]
    if not tracks:
        raise Skip("no notes")
    melodic = [t for t in tracks if not t.is_drum]
    if not melodic:
        raise Skip("drums only", "every track is on the drum channel")
    largest = max(t.note_num() for t in melodic)
    melodic = [t for t in melodic if t.note_num() >= min(8, largest)]  # not a lone bell or count-in
    track = max(melodic, key=lambda t: float(np.mean(t.notes.numpy()["pitch"])))
    arrays = track.notes.numpy()
    if len(arrays["time"]) > limits.max_notes:
        raise Skip("too many notes", f"{len(arrays['time'])} > {limits.max_notes}")
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
        raise Skip("unsupported meter", f"{num}/{den}") from None
    if meter.bar_ticks > MAX_BAR_TICKS:
        raise Skip("unsupported meter", str(meter))
    if any((m[1], m[2]) != (num, den) for m in meters if m[0] > first_on):
        raise Skip("meter change", str(meter))

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
    tonic, mode, spelled = _midi_key(score, notes)
    tempo = float(score.tempos[0].qpm) if len(score.tempos) else DEFAULT_TEMPO
    title, marks = name, {}
    for mk in score.markers:
        k, _, v = str(mk.text).partition(":")
        marks[k.strip().lower()] = v.strip()
    if "key" in marks:
        try:
            ktonic, _, kmode = marks["key"].partition(" ")
            kmode = normalize_mode(kmode)
            tonic, mode, spelled = tonic_pitch_class(ktonic), kmode, tonic_name(ktonic, kmode)
        except MusicError:
            pass
    title = marks.get("title") or title
    return Melody(notes, meter, tonic, mode, pickup, plausible_tempo(tempo), title, tonic_name=spelled)


def _midi_key(score, notes: list[Note]) -> tuple[int, str, str | None]:
    """Tonic, mode and the tonic's name from the first key signature (F# for 6 sharps, Gb
    for 6 flats), else the estimated key and no name."""
    if len(score.key_signatures):
        ks = score.key_signatures[0]
        mode = "minor" if ks.tonality else "major"
        name = signature_tonic(int(ks.key), mode)
        return tonic_pitch_class(name), mode, name
    return (*estimate_key(notes), None)


# --- MIDI writing --------------------------------------------------------------------------------

MIDI_RESOLUTION = 480  # file ticks per quarter note: 20 per melody tick
_END_OF_TRACK = b"\x01\xff\x2f\x00"  # one tick after the track's last event


def _varlen(n: int) -> bytes:
    """A MIDI variable-length number: 7 bits a byte, the high bit set on all but the last."""
    out = bytearray([n & 0x7F])
    while n > 0x7F:
        n >>= 7
        out.insert(0, 0x80 | (n & 0x7F))
    return bytes(out)


def _meta(kind: int, data: bytes) -> bytes:
    """A meta event at delta time 0."""
    return bytes((0, 0xFF, kind)) + _varlen(len(data)) + data


def _chunk(events: list[bytes]) -> bytes:
    body = b"".join(events)
    return struct.pack(">4sI", b"MTrk", len(body)) + body


def to_midi_bytes(m: Melody, program: int = 0, velocity: int = 90) -> bytes:
    """Standard MIDI file: one instrument, with tempo, time-signature and key-signature events.

    A pickup starts where it falls in its bar, so bar 1 begins on a downbeat. MIDI key signatures
    know only major and minor, so the mode and title also go in marker events ('key: D dorian').
    Text is UTF-8, as readers such as symusic expect. The bytes are written directly: a type-1
    file with a timing track and a note track on the first channel, notes as note-on events (velocity 0
    ends a note) in running status.
    """
    name = m.spelled_tonic()
    sharps = key_fifths(name, m.mode)  # the signature; minor-like modes give it as its minor key
    minor = m.mode not in ("major", "lydian", "mixolydian")
    key = f"key: {name} {m.mode}"
    timing = [_meta(0x06, f"title: {m.title}".encode()) if m.title else b"",  # markers
              _meta(0x06, key.encode()),
              _meta(0x51, int(6e7 / m.tempo).to_bytes(3, "big")),  # microseconds per quarter note
              _meta(0x58, bytes((m.meter.numerator, m.meter.denominator.bit_length() - 1, 24, 8))),
              _meta(0x59, bytes((sharps & 0xFF, minor))),
              _END_OF_TRACK]
    scale = MIDI_RESOLUTION // TICKS_PER_QUARTER
    events, t = [], m.start_position  # (tick, pitch, velocity)
    for n in m.notes:
        if n.pitch is not None and 0 <= n.pitch <= 127:
            events += [(t * scale, n.pitch, velocity), ((t + n.duration) * scale, n.pitch, 0)]
        t += n.duration
    events.sort()  # at one tick, a note ends before the same pitch starts again
    track = [_meta(0x03, (m.title or "melody").encode()), bytes((0, 0xC0, program))]  # name, program
    last = 0
    for k, (tick, pitch, vel) in enumerate(events):
        track.append(_varlen(tick - last) + (b"" if k else b"\x90") + bytes((pitch, vel)))
        last = tick
    track.append(_END_OF_TRACK)
    header = struct.pack(">4sIHHH", b"MThd", 6, 1, 2, MIDI_RESOLUTION)  # type 1, two tracks
    return header + _chunk(timing) + _chunk(track)
