"""The web API's answers, built in the work pool: a tune as the page's JSON or as a file, and
an upload read as a melody (its failures the file's fault)."""

from __future__ import annotations

import base64
import logging
import math
import re
from dataclasses import replace
from typing import Any

from fastapi.responses import Response

from .apischemas import FILE_TYPES, MAX_SVG_NOTES, UPLOAD_LIMITS, APIError
from .engraving import NotationRenderer
from .form import played
from .formats import FormatError, read_melody, render, to_abc, to_midi_bytes
from .music import TICKS_PER_QUARTER, Melody, Meter, tonic_name, tonic_pitch_class
from .requests import ComposeRequest, Composition
from .similar import SimilarIndex

log = logging.getLogger("composer.api")


def _bits(x: float) -> float | None:
    return round(float(x), 4) if math.isfinite(x) else None  # JSON has no inf


def tune_json(melody: Melody, surprisal: list[tuple[float, float]], bits_per_note: float,
              renderer: NotationRenderer, new: list[tuple[int, int]] | None = None,
              width: int | None = None) -> dict[str, Any]:
    """Everything the page needs to show, play and download a tune. The notation (abc, svg) is
    the written form, with repeat signs, the svg engraved `width` CSS px wide; `notes` and
    `midi` are as played (repeats expanded), rests included (pitch None) so that they line up
    with `surprisal`, each with the written bar it is in (`bar`; 0 is a pickup). With `new` (spans [a, b) of written notes that the model wrote into the
    user's tune) every other note is flagged `fragment`, the user's own, and drawn in its
    colour. Times are in quarter notes."""
    abc = to_abc([melody])
    q = TICKS_PER_QUARTER
    heard, sources = played(melody)
    onsets = melody.onsets() + [melody.total_ticks]
    mine = (lambda i: not any(a <= i < b for a, b in new)) if new else (lambda i: False)
    spans = [(onsets[a] / q, onsets[b] / q) for a, b in new or []]
    return {
        "title": melody.title, "meter": str(melody.meter),
        "key": melody.spelled_tonic(), "mode": melody.mode,
        "style": melody.style or None, "type": melody.tune_type or None,
        "form": melody.form.letters() if melody.form is not None else "A",
        "tempo": melody.tempo, "pickup": melody.pickup / q,
        "notes": [{"pitch": n.pitch, "start": t / q, "duration": n.duration / q,
                   "fragment": mine(i), "bar": melody.bar_of(onsets[i])}
                  for n, t, i in zip(heard.notes, heard.onsets(), sources)],
        "abc": abc,
        "midi": base64.b64encode(to_midi_bytes(heard)).decode("ascii"),
        "svg": renderer.svg(abc, spans, width) if len(melody.notes) <= MAX_SVG_NOTES else None,
        "surprisal": [{"rhythm": _bits(surprisal[i][0]), "pitch": _bits(surprisal[i][1])}
                      for i in sources if i < len(surprisal)],
        "bits_per_note": _bits(bits_per_note),
    }


def composition_json(comp: Composition, renderer: NotationRenderer, width: int | None = None,
                     index: SimilarIndex | None = None) -> dict[str, Any]:
    """tune_json of a composition, with its seed, the notes that are new, and the closest
    known tune in `index`."""
    n = len(comp.melody.notes)
    new = comp.new_notes or ([(comp.fragment_notes, n)] if 0 < comp.fragment_notes < n else [])
    out = tune_json(comp.melody, comp.surprisal, comp.bits_per_note, renderer, new, width)
    nearest = index.nearest(comp.melody, 1) if index is not None else []
    out.update(seed=comp.seed, temperature=comp.temperature, fragment_notes=comp.fragment_notes,
               new_notes=[list(s) for s in comp.new_notes],
               nearest=nearest[0].to_dict() if nearest else None)
    return out


def file_response(comp: Composition, fmt: str) -> Response:
    """The tune as a download: MIDI, ABC or MusicXML, named after its title and seed."""
    m = comp.melody
    data = render(m, "." + fmt)
    ctype, ext = FILE_TYPES[fmt]
    stem = re.sub(r"[^a-z0-9]+", "-", (m.title or "tune").lower()).strip("-")[:40] or "tune"
    disposition = f'attachment; filename="{stem}-{comp.seed}.{ext}"'
    return Response(data, media_type=ctype, headers={"Content-Disposition": disposition})


def read_upload_melody(data: bytes, filename: str) -> Melody:
    """The first tune of an upload; any failure to read it is the file's fault (400)."""
    try:
        return read_melody(data, filename, UPLOAD_LIMITS)
    except FormatError as e:
        if e.library:  # the reading library's own words go to the log, not to the client
            log.info("reading upload %r: %s", filename, e.library)
        raise APIError(400, str(e).strip().split("\n")[0] or "not a music file", "file") from None
    except Exception as e:  # a parser library choking on odd bytes is still a bad file
        log.warning("reading upload %r failed", filename, exc_info=True)
        raise APIError(400, f"{filename}: not a readable music file ({type(e).__name__})",
                       "file") from None


def check_meter(melody: Melody, meters: list[str], filename: str) -> Melody:
    if str(melody.meter) not in meters:
        raise APIError(400, f"{filename} is in {melody.meter}, a meter this model does not know "
                            f"({', '.join(meters)})", "file")
    return melody


def override(melody: Melody, req: ComposeRequest, given: dict[str, Any]) -> Melody:
    """The fragment with the meter, key, mode, style and tempo the user gave explicitly."""
    changes: dict[str, Any] = {k: getattr(req, k) for k in ("mode", "style", "tempo") if k in given}
    if "meter" in given:
        meter = Meter.parse(req.meter)
        changes.update(meter=meter, pickup=melody.pickup % meter.bar_ticks)
    melody = replace(melody, **changes)
    if "key" not in given:
        return melody
    name = tonic_name(req.key, melody.mode)  # spelled as asked
    return replace(melody.to_tonic(tonic_pitch_class(name)), tonic_name=name)
