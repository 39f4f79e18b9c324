"""Scoring: how surprising each note of a tune is to the model, in bits."""

from __future__ import annotations

from dataclasses import replace

from .encoding import encode
from .formfeatures import tune_ticks
from .music import Melody, MusicError
from .requests import NoteScore, ScoreReport


def score(composer, melody: Melody, style: str | None = None) -> ScoreReport:
    """Per-note rhythm and pitch surprisal of a tune under `composer`'s model, from one
    teacher-forced pass, under `style`, else the style the file names, else the style under
    which the tune is most likely (the report says which)."""
    if not melody.notes:
        raise MusicError("the tune has no notes")
    meter = composer.choices.meter(str(melody.meter))
    mode = composer.choices.fragment_mode(melody.mode)
    kind = composer.choices.tune_type(None, melody.tune_type, meter)
    if style:
        candidates, style_from = [composer.choices.label("style", style)], "asked"
    elif melody.style in composer.vocab.styles:
        candidates, style_from = [melody.style], "the file's"
    else:
        candidates, style_from = list(composer.vocab.styles), "best fit"
    best = None
    for label in candidates:
        enc = encode(replace(melody, mode=mode, style=label, tune_type=kind), composer.vocab,
                     snap=True)
        total = tune_ticks(enc, composer.vocab)
        form = composer._written_form(enc, total, meter)
        n = len(enc.durations)
        rhythm, pitch, _, _ = composer._read(enc, form, total,
                                         composer.choices.ids(meter, mode, label, kind), n + 1)
        if best is None or rhythm.sum() + pitch.sum() < best[0]:
            best = (float(rhythm.sum() + pitch.sum()), label, rhythm, pitch)
    _, style, rhythm, pitch = best
    bar, beat = meter.bar_ticks, meter.beat_ticks
    first_bar = 0 if melody.pickup else 1
    notes = []
    for i, (note, t) in enumerate(zip(melody.notes, melody.onsets())):
        at = melody.start_position + t
        notes.append(NoteScore(i, first_bar + at // bar, round(1 + (at % bar) / beat, 3),
                               note.pitch, note.duration, float(rhythm[i]), float(pitch[i])))
    total_bits = float(rhythm.sum() + pitch.sum())
    top = sorted(notes, key=lambda x: -x.bits)[:5]
    return ScoreReport(melody.title, melody.key_name(),
                       str(meter), style, notes, float(rhythm[n]), total_bits,
                       total_bits / (n + 1), top, style_from)
