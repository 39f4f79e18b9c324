"""Scoring: how surprising each note of a tune is to the model, in bits."""

from __future__ import annotations

from dataclasses import replace

from .encoding import encode
from .formfeatures import tune_ticks
from .generate import bits
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
    # The style is a label only: the notes read the same under each, so all are read at once.
    enc = encode(replace(melody, mode=mode, style=candidates[0], tune_type=kind), composer.vocab,
                 snap=True)
    total = tune_ticks(enc, composer.vocab)
    s = composer._steps(enc, composer._written_form(enc, total, meter), total)
    n = len(enc.durations)
    dur, pitch_logits = composer.net.read_rows(
        s, [composer.choices.ids(meter, mode, label, kind) for label in candidates], n + 1)
    reads = [(bits(d, s["dur_out"][:n + 1]), bits(p[:n], s["pitch_out"][:n]))
             for d, p in zip(dur, pitch_logits)]
    k = min(range(len(reads)), key=lambda i: float(reads[i][0].sum() + reads[i][1].sum()))
    style, (rhythm, pitch) = candidates[k], reads[k]
    bar, beat = meter.bar_ticks, meter.beat_ticks
    notes = []
    for i, (note, t) in enumerate(zip(melody.notes, melody.onsets())):
        at = melody.start_position + t
        notes.append(NoteScore(i, melody.bar_of(t), round(1 + (at % bar) / beat, 3),
                               note.pitch, note.duration, float(rhythm[i]), float(pitch[i])))
    total_bits = float(rhythm.sum() + pitch.sum())
    top = sorted(notes, key=lambda x: -x.bits)[:5]
    return ScoreReport(melody.title, melody.key_name(),
                       str(meter), style, notes, float(rhythm[n]), total_bits,
                       total_bits / (n + 1), top, style_from)
