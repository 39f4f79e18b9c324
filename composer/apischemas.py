"""The web API's contract: its limits, error type, request bodies and response models, and
how a request body becomes a ComposeRequest."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import File, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .engraving import NotationRenderer
from .formplan import parse_form
from .formats import ReadLimits
from .music import Meter, MusicError, normalize_mode, quarters_to_ticks, tonic_pitch_class
from .requests import ComposeRequest, SamplingOptions
from .tunetype import check_type

MAX_UPLOAD_BYTES = 1024 * 1024
MAX_BODY_BYTES = MAX_UPLOAD_BYTES + 16 * 1024  # a multipart body also carries fields and boundaries
# Bounds on the parsing work one upload may cause: a long tune has a few thousand notes and a
# few hundred bars. Within them music21 takes up to about 1 s on one ABC tune, so at most 4
# tunes of a file are tried.
UPLOAD_LIMITS = ReadLimits(max_file_bytes=MAX_UPLOAD_BYTES, max_tune_chars=16_000, max_notes=4_000,
                           max_bars=500, max_tunes=4, max_unpacked_bytes=4 * MAX_UPLOAD_BYTES)
MAX_JSON_BYTES = 64 * 1024  # a JSON request body is a handful of fields
MAX_SVG_NOTES = 2_000  # engraving more would take seconds; such tunes get "svg": null
MAX_SEED = 2**32 - 1
# What the API accepts: the request bodies' and queries' bounds are read from here, and
# /api/options reports these, not the sampler's (requests.LIMITS). They are stricter by design
# where one request's work must stay bounded on a shared server (bars, best_of, keep_bars, tempo);
# a lower bound is exclusive for the fields in EXCLUSIVE_MIN.
API_LIMITS = {"bars": (1, 64), "temperature": (0, 3), "top_p": (0, 1), "best_of": (1, 16),
              "tempo": (20, 400), "keep_bars": (1, 64), "seed": (0, MAX_SEED), "pickup": (0, 16),
              "notation_width": (160, 2400), "candidates": (1, 256)}
EXCLUSIVE_MIN = ("temperature", "top_p")


def _bounded(name: str, description: str) -> Any:
    """An optional request field within API_LIMITS[name]."""
    lo, hi = API_LIMITS[name]
    low = {"gt": lo} if name in EXCLUSIVE_MIN else {"ge": lo}
    return Field(None, **low, le=hi, description=description)
FILE_TYPES = {"mid": ("audio/midi", "mid"), "abc": ("text/vnd.abc; charset=utf-8", "abc"),
              "musicxml": ("application/vnd.recordare.musicxml+xml", "musicxml")}
FormatQuery = Annotated[Literal["mid", "abc", "musicxml"] | None,
                        Query(description="return the file itself instead of JSON")]
NotationWidthQuery = Annotated[int | None, Query(
    ge=API_LIMITS["notation_width"][0], le=API_LIMITS["notation_width"][1],
    description="the width in CSS px the notation is shown at: `svg` is engraved that wide, its "
                f"systems broken to fit (unset: {NotationRenderer.WIDTH})")]
UploadParam = Annotated[UploadFile, File(description="a MIDI, ABC or MusicXML file, up to 1 MB")]


class APIError(Exception):
    """An error answered as JSON {"error": message, "field": field, **extra} with the given
    status."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
                 ) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers
        self.extra = extra or {}


def error_response(status: int, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field, **(extra or {})}, status_code=status,
                        headers=headers)


def busy_response(retry_after: float, message: str = "the server is busy; try again in a moment"
                  ) -> JSONResponse:
    """503 with Retry-After in whole seconds, and the estimate itself as `retry_after_s`."""
    return error_response(503, message, headers={"Retry-After": str(math.ceil(retry_after))},
                          extra={"retry_after_s": round(retry_after, 2)})


# --- request bodies ---------------------------------------------------------------------------

class ComposeBody(BaseModel):
    """Parameters of a new tune; every field is optional and defaults to the model's defaults."""

    # strict: a JSON body's true, "8" or 2.0 is not a number of bars
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    bars: int | None = _bounded("bars", "number of bars")
    meter: str | None = Field(None, max_length=16, description="time signature", examples=["6/8"])
    key: str | None = Field(None, max_length=8, description="tonic, e.g. D or Bb", examples=["D"])
    mode: str | None = Field(None, max_length=16, description="major, minor, dorian, ...")
    style: str | None = Field(None, max_length=64, description="a style label of the model")
    tempo: float | None = _bounded("tempo", "quarter notes per minute")
    temperature: float | None = _bounded("temperature", "sampling temperature (unset: the "
                                         "model's for the tune type)")
    top_p: float | None = _bounded("top_p", "nucleus sampling mass")
    seed: int | None = _bounded("seed", "random seed (unset: random)")
    best_of: int | None = _bounded("best_of", "draw this many, keep the likeliest")
    type: str | None = Field(None, max_length=32, description="tune type: reel, jig, hornpipe, ... "
                             "(see /api/options); alone, it gives the type's usual form and meter",
                             examples=["reel"])
    form: str | None = Field(None, max_length=64, description="parts as letters with optional bar "
                             "counts, e.g. AABB, ABAC or A8B8 (not with bars)", examples=["AABB"])
    endings: bool | None = Field(None, description="first and second endings on repeated parts "
                                 "(unset: as the type's tunes mostly have them)")
    pickup: float | None = _bounded("pickup", "anacrusis in quarter notes, e.g. 0.5 for one "
                                    "eighth (unset: the type's usual one, else none)")


class _UploadFields(BaseModel):
    """The fields that come with an upload, as a multipart form."""

    # The documented multipart body is these fields plus `file`; "additionalProperties: false"
    # here would make it one that no request satisfies. Unknown fields still get a 422.
    # A form's fields arrive as text, so they are parsed (not strict).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=False,
                              json_schema_extra=lambda schema: schema.pop("additionalProperties"))

    @model_validator(mode="before")
    @classmethod
    def _without_file(cls, data: Any) -> Any:
        # A form model sees every multipart field; the upload itself is a separate parameter.
        if isinstance(data, dict) and "file" in data:
            data = {k: v for k, v in data.items() if k != "file"}
        return data


class ContinueForm(_UploadFields, ComposeBody):
    """Form fields of /api/continue: the rest of `form` (default: the fragment's parts and its
    type's usual form), or `bars` new bars (default 8), after the first `keep_bars` bars of the
    fragment; meter, key, mode, style, type and tempo, if given, override the file's."""

    model_config = _UploadFields.model_config
    keep_bars: int | None = _bounded("keep_bars", "bars of the fragment to keep")


class InfillForm(_UploadFields):
    """Form fields of /api/infill: the bars to write anew, and how to draw them."""

    bars: str = Field(..., max_length=64, description="bars to write anew, e.g. 5-6 or 3,7-8 "
                      "(bar 1 is the first full bar)", examples=["5-6"])
    temperature: float | None = _bounded("temperature", "sampling temperature (unset: the "
                                         "model's for the tune type)")
    top_p: float | None = _bounded("top_p", "nucleus sampling mass")
    seed: int | None = _bounded("seed", "random seed (unset: random)")
    best_of: int | None = _bounded("best_of", "of the resampled candidates, keep the likeliest")
    candidates: int | None = _bounded("candidates", "candidates drawn for each gap and weighed by "
                                      "how well they lead into the bars after it (unset: 128)")


class Error(BaseModel):
    """Every error: a one-line message and the request field it is about, if any."""

    error: str
    field: str | None = None
    retry_after_s: float | None = Field(None, description="with 503: the estimated seconds until "
                                        "a request would be admitted (Retry-After rounds it up)")


class Tune(BaseModel):
    """A tune as JSON. Times are in quarter notes. `abc` and `svg` are the written form (repeat
    signs); `notes` (rests included, pitch null) and `midi` (base64) are as played, one note per
    `surprisal` entry, `fragment` true for the user's own; `fragment_notes` counts the written
    notes that are the user's own."""

    title: str
    meter: str
    key: str
    mode: str
    style: str | None
    type: str | None = None
    form: str = "A"
    tempo: float
    pickup: float
    notes: list[dict[str, bool | float | int | None]]
    abc: str
    midi: str
    svg: str | None
    surprisal: list[dict[str, float | None]]
    bits_per_note: float | None
    seed: int
    temperature: float | None = Field(None, description="the sampling temperature of the new "
                                      "notes (the tune type's unless one was asked)")
    fragment_notes: int = 0
    new_notes: list[list[int]] = Field(default_factory=list, description="an infill: the spans "
                                       "[a, b) of written notes the model wrote")
    nearest: dict[str, Any] | None = Field(None, description="the closest known tune of the "
                                           "model's corpus: title, style, source, similarity, "
                                           "bars in common")


FILE_CONTENT = {ctype.split(";")[0]: {} for ctype, _ in FILE_TYPES.values()}
DOCUMENTED = {200: {"model": Tune, "content": FILE_CONTENT},
              **{code: {"model": Error} for code in (400, 413, 422, 503)}}


def _choice(value: str, valid: list[str], name: str) -> str:
    for v in valid:
        if v.lower() == value.strip().lower():
            return v
    raise APIError(422, f"unknown {name} {value!r}; valid {name}s: {', '.join(valid)}", name)


def _key_name(name: str) -> str:
    tonic_pitch_class(name)  # raises MusicError for what is not a key name
    return name


def resolve_request(body: ComposeBody, options: dict[str, Any], new_tune: bool = True
                    ) -> ComposeRequest:
    """A ComposeRequest from the body, checked against the loaded model, defaults filled in.
    For a continuation (`new_tune` False) `bars` counts new bars, which a form may replace."""
    d = {**options.get("defaults", {}), **body.model_dump(exclude_none=True)}
    for name, parse in (("meter", lambda v: str(Meter.parse(v))), ("key", _key_name),
                        ("mode", normalize_mode)):
        if name in d:
            try:
                value = parse(str(d[name]))
            except MusicError as e:
                if name != "mode":
                    raise APIError(422, str(e), name) from None
                value = str(d[name])  # an unknown mode: the error lists the model's own
            d[name] = _choice(value, list(options[name + "s"]), name)
    given = body.model_dump(exclude_none=True)
    # Unset, the style is the tune type's usual one (or the model's default): the sampler's choice.
    d["style"] = _choice(given["style"], list(options["styles"]), "style") if given.get("style") \
        else None
    if "type" in given:
        try:
            d["type"] = check_type(given["type"], list(options["types"]))
        except MusicError as e:
            raise APIError(422, str(e), "type") from None
    if "type" in given or "form" in given:  # the form and the type's meter replace the defaults
        d = {k: v for k, v in d.items() if k not in ("bars", "meter") or k in given}
    if "form" in given:
        if "bars" in given and new_tune:
            raise APIError(422, "give bars or a form, not both: the form sets the bars", "form")
        try:
            written = parse_form(given["form"], 8).written_bars
        except MusicError as e:
            raise APIError(422, str(e), "form") from None
        if written > API_LIMITS["bars"][1]:
            raise APIError(422, f"form {given['form']!r} has {written} bars; at most "
                                f"{API_LIMITS['bars'][1]}", "form")
    if "pickup" in given and not new_tune:
        raise APIError(422, "a continuation keeps the fragment's pickup: leave pickup out", "pickup")
    try:
        pickup = quarters_to_ticks(given["pickup"]) if "pickup" in given else None
    except MusicError as e:
        raise APIError(422, str(e), "pickup") from None
    # unsent, the temperature is the tune type's (the model's), not one default for all
    sampling = SamplingOptions(**{k: d[k] for k in ("top_p", "seed", "best_of") if k in d},
                               temperature=given.get("temperature"))
    return ComposeRequest(**{k: d[k] for k in ("bars", "meter", "key", "mode", "style", "tempo")
                             if k in d}, sampling=sampling, tune_type=d.get("type"),
                          form=d.get("form"), endings=d.get("endings"),
                          pickup=pickup)
