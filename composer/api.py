"""FastAPI app: loads the model once, serves compose/continue/score as JSON or files, and the playground."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import verovio
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from .formats import FormatError, read_melody, to_abc, to_midi_bytes, to_musicxml_bytes
from .music import TICKS_PER_QUARTER, Melody, Meter, MusicError, key_spelling, normalize_mode
from .music import tonic_pitch_class
from .sample import Composer, ComposeRequest, Composition, SamplingOptions

MAX_UPLOAD_BYTES = 1024 * 1024
# A multipart body carries the form fields and boundaries besides the file itself.
MAX_BODY_BYTES = MAX_UPLOAD_BYTES + 16 * 1024
RETRY_AFTER_S = 1
MAX_SEED = 2**32 - 1
# What the API accepts (as in ComposeBody); /api/options reports these, not the sampler's wider ones.
API_LIMITS = {"bars": (1, 64), "temperature": (0, 3), "top_p": (0, 1), "best_of": (1, 16),
              "tempo": (20, 400), "keep_bars": (1, 64), "seed": (0, MAX_SEED)}
FRAGMENT_COLOUR = "#34568f"  # the user's own notes, in notation and piano roll alike
NEW_COLOUR = "#b4472b"

FileFormat = Literal["mid", "abc", "musicxml"]
FormatQuery = Annotated[FileFormat | None, Query(description="return the file itself instead of JSON")]
FILE_TYPES = {  # format -> (content type, file extension)
    "mid": ("audio/midi", "mid"),
    "abc": ("text/vnd.abc; charset=utf-8", "abc"),
    "musicxml": ("application/vnd.recordare.musicxml+xml", "musicxml"),
}
T = TypeVar("T")
log = logging.getLogger(__name__)


class APIError(Exception):
    """An error answered as JSON {"error": message, "field": field} with the given status."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


def error_response(status: int, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status, headers=headers)


# --- request bodies -------------------------------------------------------------------------

class ComposeBody(BaseModel):
    """Parameters of a new tune; every field is optional and defaults to the model's defaults."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    bars: int | None = Field(None, ge=1, le=64, description="number of bars")
    meter: str | None = Field(None, max_length=16, description="time signature", examples=["6/8"])
    key: str | None = Field(None, max_length=8, description="tonic, e.g. D or Bb", examples=["D"])
    mode: str | None = Field(None, max_length=16, description="major, minor, dorian, ...")
    style: str | None = Field(None, max_length=64, description="a style label of the model")
    tempo: float | None = Field(None, ge=20, le=400, description="quarter notes per minute")
    temperature: float | None = Field(None, gt=0, le=3, description="sampling temperature")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling mass")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="random seed (unset: random)")
    best_of: int | None = Field(None, ge=1, le=16, description="draw this many, keep the likeliest")


class ContinueForm(ComposeBody):
    """Form fields of /api/continue: the compose fields plus how much of the fragment to keep."""

    keep_bars: int | None = Field(None, ge=1, le=64, description="bars of the fragment to keep")

    @model_validator(mode="before")
    @classmethod
    def _without_file(cls, data: Any) -> Any:
        # The form model sees every multipart field; the upload itself is a separate parameter.
        if isinstance(data, dict) and "file" in data:
            data = {k: v for k, v in data.items() if k != "file"}
        return data


# --- worker-side helpers (run in the thread pool) -------------------------------------------

class NotationRenderer:
    """Engraves ABC to SVG with verovio, keeping one toolkit per worker thread."""

    OPTIONS = {"footer": "none", "header": "none", "adjustPageHeight": True, "pageWidth": 1800,
               "pageHeight": 60000, "scale": 40, "breaks": "auto", "svgFormatRaw": True}

    def __init__(self) -> None:
        self._local = threading.local()
        self._resources = str(files("verovio") / "data")
        verovio.enableLog(verovio.LOG_OFF)  # its warnings about ABC details would flood the log

    def _toolkit(self) -> verovio.toolkit:
        tk = getattr(self._local, "toolkit", None)
        if tk is None:
            # verovio's default resource path is set per thread, so name the fonts explicitly.
            tk = verovio.toolkit(False)
            tk.setResourcePath(self._resources)
            tk.setOptions(self.OPTIONS)
            tk.setInputFrom("abc")
            self._local.toolkit = tk
        return tk

    def svg(self, abc: str, new_from: float | None = None) -> str | None:
        """The notation of the first tune in `abc`, or None if verovio cannot engrave it.

        With `new_from` (quarter notes from the start), notes before it are drawn in the
        fragment colour and notes from it on in the new-bars colour, as in the piano roll."""
        try:
            tk = self._toolkit()
            if not tk.loadData(abc) or tk.getPageCount() < 1:
                return None
            svg = tk.renderToSVG(1)
            if not svg.lstrip().startswith(("<svg", "<?xml")):
                return None
            if new_from is not None:
                svg = self._colour(svg, tk.renderToTimemap({"includeRests": True}), new_from)
            return svg
        except Exception:  # a notation failure must never fail the request
            self._local.toolkit = None
            return None

    @staticmethod
    def _colour(svg: str, timemap: list[dict], new_from: float) -> str:
        groups: dict[bool, list[str]] = {False: [], True: []}
        for event in timemap:
            ids = event.get("on", []) + event.get("restsOn", [])
            groups[float(event.get("qstamp", 0)) >= new_from - 1e-6].extend(ids)
        rules = [f"{','.join('#' + i for i in ids)}{{fill:{colour};stroke:{colour};color:{colour}}}"
                 for ids, colour in ((groups[False], FRAGMENT_COLOUR), (groups[True], NEW_COLOUR))
                 if ids and all(re.fullmatch(r"[A-Za-z0-9_-]+", i) for i in ids)]
        end = svg.find(">", svg.find("<svg"))
        return svg if end < 0 or not rules else f"{svg[:end + 1]}<style>{''.join(rules)}</style>{svg[end + 1:]}"


def _finite(x: float, digits: int = 4) -> float | None:
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def notes_json(melody: Melody) -> list[dict[str, Any]]:
    """Notes and rests as {pitch, start, duration} in quarter notes (pitch None for a rest)."""
    return [{"pitch": n.pitch, "start": t / TICKS_PER_QUARTER, "duration": n.duration / TICKS_PER_QUARTER}
            for n, t in zip(melody.notes, melody.onsets())]


def tune_json(melody: Melody, surprisal: list[tuple[float, float]], bits_per_note: float,
              renderer: NotationRenderer, new_from: float | None = None) -> dict[str, Any]:
    """Everything the page needs to show, play and download a tune."""
    abc = to_abc([melody])
    return {
        "title": melody.title,
        "meter": str(melody.meter),
        "key": key_spelling(melody.tonic, melody.mode),
        "mode": melody.mode,
        "style": melody.style or None,
        "tempo": melody.tempo,
        "pickup": melody.pickup / TICKS_PER_QUARTER,
        "notes": notes_json(melody),
        "abc": abc,
        "midi": base64.b64encode(to_midi_bytes(melody)).decode("ascii"),
        "svg": renderer.svg(abc, new_from),
        "surprisal": [{"rhythm": _finite(r), "pitch": _finite(p)} for r, p in surprisal],
        "bits_per_note": _finite(bits_per_note),
    }


def composition_json(comp: Composition, renderer: NotationRenderer) -> dict[str, Any]:
    new_from = None
    if 0 < comp.fragment_notes < len(comp.melody.notes):
        new_from = comp.melody.onsets()[comp.fragment_notes] / TICKS_PER_QUARTER
    out = tune_json(comp.melody, comp.surprisal, comp.bits_per_note, renderer, new_from)
    out.update(seed=comp.seed, fragment_notes=comp.fragment_notes)
    return out


def file_response(comp: Composition, fmt: str) -> Response:
    """The tune as a downloadable file of the given format."""
    m = comp.melody
    if fmt == "mid":
        data = to_midi_bytes(m)
    elif fmt == "abc":
        data = to_abc([m]).encode("utf-8")
    else:
        data = to_musicxml_bytes(m)
    ctype, ext = FILE_TYPES[fmt]
    stem = re.sub(r"[^A-Za-z0-9]+", "-", m.title or "tune").strip("-").lower()[:40] or "tune"
    name = f"{stem}-{comp.seed}.{ext}"
    return Response(data, media_type=ctype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


# --- parameter checks against the loaded model ----------------------------------------------

def _choice(value: str, valid: list[str], field: str) -> str:
    for v in valid:
        if v.lower() == value.strip().lower():
            return v
    raise APIError(422, f"unknown {field} {value!r}; valid {field}s: {', '.join(valid)}", field)


def resolve_request(body: ComposeBody, options: dict[str, Any]) -> ComposeRequest:
    """A ComposeRequest from the body, with unset fields taken from the model's defaults."""
    d = {**options.get("defaults", {}), **body.model_dump(exclude_none=True)}
    d.pop("keep_bars", None)
    if "meter" in d:
        try:
            d["meter"] = str(Meter.parse(d["meter"]))
        except MusicError as e:
            raise APIError(422, str(e), "meter") from None
        d["meter"] = _choice(d["meter"], list(options["meters"]), "meter")
    if "key" in d:
        try:
            tonic_pitch_class(d["key"])
        except MusicError as e:
            raise APIError(422, str(e), "key") from None
        d["key"] = _choice(d["key"], list(options["keys"]), "key")
    if "mode" in d:
        try:
            d["mode"] = normalize_mode(d["mode"])
        except MusicError as e:
            raise APIError(422, str(e), "mode") from None
        d["mode"] = _choice(d["mode"], list(options["modes"]), "mode")
    if d.get("style"):
        d["style"] = _choice(d["style"], list(options["styles"]), "style")
    else:
        d["style"] = None
    sampling = SamplingOptions(**{k: d.pop(k) for k in ("temperature", "top_p", "seed", "best_of")
                                  if k in d})
    allowed = ("bars", "meter", "key", "mode", "style", "tempo")
    return ComposeRequest(**{k: d[k] for k in allowed if k in d}, sampling=sampling)


def _field_of(message: str) -> str | None:
    """Which request field a sampler error message is about, if it names one."""
    for name in ("meter", "key", "mode", "style", "bars", "temperature", "top_p", "best_of", "seed",
                 "tempo", "keep_bars"):
        if re.search(rf"\b{name.replace('_', '[_ ]')}", message, re.IGNORECASE):
            return name
    return None


# --- the app -----------------------------------------------------------------------------------

@dataclass
class Gate:
    """Counts jobs queued or running in the pool and refuses new ones beyond `capacity`."""

    capacity: int
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> bool:
        with self.lock:
            if self.in_flight >= self.capacity:
                return False
            self.in_flight += 1
            return True

    def leave(self, *_: Any) -> None:
        with self.lock:
            self.in_flight -= 1


async def run_job(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)` in the app's bounded pool; 503 with Retry-After when the queue is full."""
    state = request.app.state
    gate: Gate = state.gate
    if not gate.enter():
        raise APIError(503, "the server is busy; try again in a moment",
                       headers={"Retry-After": str(RETRY_AFTER_S)})
    # The slot is released when the job itself ends, even if the client has gone away.
    future = state.pool.submit(fn, *args)
    future.add_done_callback(gate.leave)
    return await asyncio.wrap_future(future)


async def read_upload(file: UploadFile) -> bytes:
    """The uploaded file's bytes, read into memory; 413 past 1 MB, 400 when empty."""
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise APIError(413, "the file is larger than 1 MB", "file")
    if not data:
        raise APIError(400, "the file is empty", "file")
    return data


def _melody(data: bytes, filename: str) -> Melody:
    """The first tune of an upload; any failure to read it is the file's fault (400)."""
    try:
        return read_melody(data, filename)
    except FormatError as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else "not a music file"
        raise APIError(400, message, "file") from None
    except Exception as e:  # a parser library choking on odd bytes is still a bad file
        log.warning("reading upload %r failed", filename, exc_info=True)
        raise APIError(400, f"{filename}: not a readable music file ({type(e).__name__})", "file") from None


class BodyLimit:
    """ASGI middleware: buffers request bodies up to `limit` bytes in memory, else answers 413."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        too_large = error_response(413, "the upload is larger than 1 MB", "file")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await too_large(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await too_large(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query", "form")]
    name = loc[0] if loc else None
    msg = first.get("msg", "invalid request")
    kind = first.get("type")
    if kind == "json_invalid":
        name, msg = None, "the body is not valid JSON"
    elif kind == "model_attributes_type" and not name:
        msg = "the body must be a JSON object"
    elif kind == "extra_forbidden" and name:
        msg = f"unknown field {name!r}"
    detail = [{"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in errors]
    return JSONResponse({"error": f"{name}: {msg}" if name else msg, "field": name, "detail": detail},
                        status_code=422)


def create_app(model_dir: str | Path | None = None, workers: int = 2, queue_limit: int = 16,
               composer: Composer | None = None) -> FastAPI:
    """The web app. The model at `model_dir` (None: the shipped default) loads once at startup,
    unless an already loaded `composer` is given; at most `workers` requests generate at a time
    and `queue_limit` more wait, the rest get 503."""
    if workers < 1 or queue_limit < 0:
        raise ValueError("workers must be >= 1 and queue_limit >= 0")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        nonlocal composer
        composer = composer or Composer.load(model_dir)
        app.state.composer = composer
        app.state.options = _api_options(composer.options())
        app.state.model_name = _model_name(composer, model_dir)
        app.state.renderer = NotationRenderer()
        app.state.gate = Gate(workers + queue_limit)
        app.state.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="composer")
        try:
            yield
        finally:
            app.state.pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="composer", version="0.1.0", lifespan=lifespan,
                  description="Compose folk melodies, continue a fragment, or score a tune.")
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.field, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    app.exception_handler(RequestValidationError)(_validation_error)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"internal error: {type(exc).__name__}")

    _add_routes(app)
    app.mount("/", StaticFiles(directory=str(files("composer.web")), html=True), name="web")
    return app


def _api_options(options: dict[str, Any]) -> dict[str, Any]:
    """The model's options with the API's own limits (which are narrower than the sampler's)."""
    ours = {k: {"min": a, "max": b} for k, (a, b) in API_LIMITS.items()}
    return {**options, "limits": {**options.get("limits", {}), **ours}}


def _model_name(composer: Composer, model_dir: str | Path | None) -> str:
    name = getattr(composer, "name", None)
    if isinstance(name, str) and name:
        return name
    if model_dir is not None:
        return Path(model_dir).resolve().name
    return "folk"


def _generate(request: Request, fn: Callable[[], Composition], fmt: str | None) -> Callable[[], Any]:
    """A pool job: sample with `fn`, then build the JSON payload or the file."""
    renderer = request.app.state.renderer

    def job() -> Any:
        try:
            comp = fn()
        except FormatError as e:
            raise APIError(400, str(e), "file") from None
        except MusicError as e:
            raise APIError(422, str(e), _field_of(str(e))) from None
        return file_response(comp, fmt) if fmt else composition_json(comp, renderer)

    return job


def _add_routes(app: FastAPI) -> None:
    @app.get("/api/health", tags=["info"])
    async def health(request: Request) -> dict[str, str]:
        """Liveness, and which model is loaded."""
        return {"status": "ok", "model": request.app.state.model_name}

    @app.get("/api/options", tags=["info"])
    async def options(request: Request) -> dict[str, Any]:
        """Valid meters, modes, keys and styles, the limits, and the defaults."""
        return request.app.state.options

    @app.post("/api/compose", tags=["music"])
    async def compose(request: Request, body: ComposeBody | None = None,
                      format: FormatQuery = None) -> Any:
        """Compose a new tune. JSON by default; `?format=mid|abc|musicxml` returns the file."""
        req = resolve_request(body or ComposeBody(), request.app.state.options)
        composer: Composer = request.app.state.composer
        return await run_job(request, _generate(request, lambda: composer.compose(req), format))

    @app.post("/api/continue", tags=["music"])
    async def continue_(request: Request, file: Annotated[UploadFile, File(description="MIDI, ABC or MusicXML")],
                        form: Annotated[ContinueForm, Form()],
                        format: FormatQuery = None) -> Any:
        """Continue an uploaded fragment; `fragment_notes` counts the leading notes that are the user's."""
        data = await read_upload(file)
        state = request.app.state
        req = resolve_request(form, state.options)
        given = form.model_dump(exclude_none=True)
        composer: Composer = state.composer
        filename = file.filename or "upload"

        def run() -> Composition:
            melody = _melody(data, filename)
            melody = _override(melody, req, given)
            kwargs = {"bars": given.get("bars", 8), "keep_bars": form.keep_bars, "sampling": req.sampling}
            comp = composer.continue_melody(melody, **kwargs)
            return comp

        return await run_job(request, _generate(request, run, format))

    @app.post("/api/score", tags=["music"])
    async def score(request: Request, file: Annotated[UploadFile, File(description="MIDI, ABC or MusicXML")]) -> Any:
        """How surprising each note of an uploaded tune is to the model, in bits."""
        data = await read_upload(file)
        state = request.app.state
        filename = file.filename or "upload"

        def run() -> dict[str, Any]:
            melody = _melody(data, filename)
            try:
                report = state.composer.score(melody)
            except MusicError as e:
                raise APIError(422 if _field_of(str(e)) else 400, str(e), _field_of(str(e)) or "file") from None
            out = report.to_dict()
            per_note = _per_note_bits(out)
            out["note_scores"] = out.pop("notes", [])
            out.update(tune_json(melody, per_note, out.get("bits_per_note", 0.0), state.renderer))
            return _clean(out)

        return await run_job(request, run)


def _override(melody: Melody, req: ComposeRequest, given: dict[str, Any]) -> Melody:
    """Apply the meter, key, mode, style and tempo a user gave explicitly to an uploaded fragment."""
    changes: dict[str, Any] = {}
    if "meter" in given:
        meter = Meter.parse(req.meter)
        changes.update(meter=meter, pickup=melody.pickup % meter.bar_ticks)
    if "mode" in given:
        changes["mode"] = req.mode
    if "style" in given and req.style:
        changes["style"] = req.style
    if "tempo" in given:
        changes["tempo"] = float(req.tempo)
    melody = replace(melody, **changes) if changes else melody
    if "key" in given:
        melody = melody.to_tonic(tonic_pitch_class(req.key))
    return melody


def _per_note_bits(report: dict[str, Any]) -> list[tuple[float, float]]:
    return [(float(n["rhythm_bits"]), float(n["pitch_bits"])) for n in report.get("notes", [])]


def _clean(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


@dataclass
class ServeConfig:
    """How `composer serve` runs: address, model, and how much work it takes on at once."""

    host: str = "127.0.0.1"
    port: int = 8000
    model_dir: str | None = None
    workers: int = 2  # generation threads per process
    queue_limit: int = 16  # requests that may wait per process before 503
    processes: int = 1  # server processes sharing the port, each with its own model and GIL
    torch_threads: int = 1  # intra-op threads per process

    ENV = "COMPOSER_SERVE"  # how the settings reach worker processes

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "ServeConfig":
        return cls(**json.loads(os.environ.get(cls.ENV, "{}")))


def app_from_env() -> FastAPI:
    """App factory for uvicorn's worker processes (see `serve`)."""
    import torch

    cfg = ServeConfig.from_env()
    torch.set_num_threads(max(1, cfg.torch_threads))
    return create_app(cfg.model_dir, workers=cfg.workers, queue_limit=cfg.queue_limit)


def serve(cfg: ServeConfig) -> None:
    """Load the model (so a bad model is a one-line error before anything starts) and run uvicorn."""
    import torch
    import uvicorn

    # Sampling runs one small step at a time; more intra-op threads only contend for the cores.
    torch.set_num_threads(max(1, cfg.torch_threads))
    composer = Composer.load(cfg.model_dir)
    if cfg.processes <= 1:
        app = create_app(cfg.model_dir, workers=cfg.workers, queue_limit=cfg.queue_limit,
                         composer=composer)
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info")
        return
    # Sampling is mostly Python between small tensor ops, so it holds the GIL: to use more cores,
    # run several processes on one socket. Each loads the model itself.
    del composer
    os.environ[ServeConfig.ENV] = cfg.to_env()
    uvicorn.run("composer.api:app_from_env", factory=True, host=cfg.host, port=cfg.port,
                workers=cfg.processes, log_level="info")
