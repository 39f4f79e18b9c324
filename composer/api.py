"""FastAPI app: loads the model once; serves compose, continue, infill and score, and the
playground; its answers are built in apitunes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .admission import (DEFAULT_MAX_WAIT_S, ROW_SHARE, Admission, Busy, compose_units,
                        upload_notes, upload_units)
from .apischemas import (API_LIMITS, DOCUMENTED, MAX_BODY_BYTES, MAX_UPLOAD_BYTES, UPLOAD_LIMITS,
                         APIError, ComposeBody, ContinueForm, Error, FormatQuery, InfillForm,
                         NotationWidthQuery, UploadParam, busy_response, error_response,
                         resolve_request)
from .apitunes import (check_meter, composition_json, file_response, override,
                       read_upload_melody, tune_json)
from .cancel import Cancelled, cancellable
from .formplan import parse_form
from .httpguard import Access, BodyLimit, Guard
from .infill import DEFAULT_CANDIDATES, WINDOW_BARS, parse_bars, tune_bars
from .modelfiles import default_model_dir
from .music import Meter, MusicError
from .engraving import NotationRenderer
from .requests import DEFAULT_METER
from .sample import Composer, ComposeRequest, SamplingOptions
from .similar import SimilarIndex

log = logging.getLogger(__name__)
# python-multipart warns on stderr about malformed bodies, which get their own 4xx
logging.getLogger("python_multipart").setLevel(logging.ERROR)
DISCONNECT_POLL_S = 0.05  # how often a waiting request checks that its client is still there
CLIENT_GONE = 499  # the status logged for a request whose client left before the answer

# --- the app ----------------------------------------------------------------------------------

async def run_job(request: Request, fn: Callable[[], Any], kind: str, units: float,
                  given: set[str] | None = None) -> Any:
    """Run `fn()` in the app's pool if admission takes it (else 503 with Retry-After), as work
    that stops when the client leaves. A MusicError is a 422 naming its field when that field is
    one of `given` (the fields the request set; None: every field is the request's), else a 400
    about the uploaded file."""
    state = request.app.state
    try:
        job = state.admission.admit(request.client.host if request.client else "", kind, units)
    except Busy as e:
        return busy_response(e.retry_after, e.message)

    def work() -> Any:
        state.admission.start(job)
        try:
            with cancellable(job.cancel):
                return fn()
        except MusicError as e:
            if given is None or e.field in given:  # a request field at fault
                raise APIError(422, str(e), e.field) from None
            raise APIError(400, str(e), "file") from None  # the file's own music

    future = state.pool.submit(work)
    future.add_done_callback(lambda _: state.admission.finish(job))
    result = asyncio.wrap_future(future)
    while not result.done():
        await asyncio.wait([result], timeout=DISCONNECT_POLL_S)
        if not result.done() and await request.is_disconnected():
            job.cancel.set()  # queued work never starts; running work stops at its next step
            result.add_done_callback(lambda f: f.cancelled() or f.exception())
            return Response(status_code=CLIENT_GONE)
    try:
        return result.result()
    except Cancelled:
        return Response(status_code=CLIENT_GONE)


async def read_upload(file: UploadFile) -> bytes:
    """The uploaded file's bytes, in memory; 413 past 1 MB, 400 when empty."""
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise APIError(413, "the file is larger than 1 MB", "file")
    if not data:
        raise APIError(400, "the file is empty", "file")
    return data


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, with a one-line `error` naming the first bad field, and `field`."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "query")]
    name, kind = (loc[0] if loc else None), first.get("type")
    msg = first.get("msg", "invalid request")
    if kind == "json_invalid":
        name, msg = None, "the body is not valid JSON"
    elif kind == "model_attributes_type" and not name:
        msg = "the body must be a JSON object"
    elif kind == "extra_forbidden" and name:
        msg = f"unknown field {name!r}"
    detail = [{"loc": [str(x) for x in e.get("loc", ())], "msg": e.get("msg", ""),
               "type": e.get("type", "")} for e in errors]
    return JSONResponse({"error": f"{name}: {msg}" if name else msg, "field": name,
                         "detail": detail}, status_code=422)


def create_app(model_dir: str | Path | None = None, workers: int = 2, queue_limit: int = 16,
               composer: Composer | None = None, access: Access | None = None,
               max_wait: float = DEFAULT_MAX_WAIT_S, client_share: int | None = None
               ) -> FastAPI:
    """The web app. The model at `model_dir` (None: the shipped default) loads once at startup,
    unless a loaded `composer` is given. At most `workers` requests generate at a time; more are
    admitted while they would start within `max_wait` seconds, up to `queue_limit` waiting and
    `client_share` (default: `workers`) in flight per client address; the rest get 503.
    `access` names the hosts and other origins served (None: any host, no other origin)."""
    if workers < 1 or queue_limit < 0:
        raise ValueError("workers must be >= 1 and queue_limit >= 0")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loaded = composer or Composer.load(model_dir)
        app.state.composer = loaded
        app.state.options = _api_options(loaded.options())
        app.state.model_name = loaded.name or Path(model_dir or "folk").name
        app.state.renderer = NotationRenderer()
        app.state.index = SimilarIndex.load(model_dir or default_model_dir())  # or None
        app.state.admission = Admission(workers, workers + queue_limit, max_wait, client_share)
        app.state.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="composer")
        try:
            yield
        finally:
            app.state.pool.shutdown(wait=False, cancel_futures=True)

    access = access or Access()
    app = FastAPI(title="composer", version="0.1.0", lifespan=lifespan, docs_url=None,
                  redoc_url=None,
                  description="Compose folk melodies, continue a fragment, or score a tune.")
    _add_offline_docs(app)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    if access.origins:  # a deployment that lets other sites' pages call it
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=sorted(access.origins),
                           allow_methods=["GET", "POST"], allow_headers=["content-type"],
                           max_age=600)
    app.add_middleware(Guard, access=access)  # added last: it runs first

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.field, exc.headers, exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:  # a bug, never bad input
        return error_response(500, f"internal error ({type(exc).__name__})")

    app.add_exception_handler(RequestValidationError, _validation_error)
    _add_routes(app)
    app.mount("/", StaticFiles(directory=str(files("composer.web")), html=True), name="web")
    return app


def _bar_ticks(req: ComposeRequest) -> int:
    return Meter.parse(req.meter or DEFAULT_METER).bar_ticks


def _upload_notes(data: bytes, file: UploadFile) -> int:
    """How many notes an upload may hold, for its cost before it is read."""
    return upload_notes(len(data), file.filename or "", UPLOAD_LIMITS.max_notes)


def _cost(req: ComposeRequest) -> float:
    """The estimated units of a compose (a form or type with no bars: about 16 written bars)."""
    bars = req.bars or (parse_form(req.form, 8).written_bars if req.form else 16)
    return compose_units(bars, _bar_ticks(req), req.sampling.best_of)


def _add_offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the swagger-ui-bundle package, so the docs need no CDN; its
    start-up script is web/docs.js, not inline, so the page's policy can forbid inline script."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    page = (files("composer.web") / "docs.html").read_text(encoding="utf-8")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)


def _api_options(options: dict[str, Any]) -> dict[str, Any]:
    """The model's options, with the API's own limits (the fields it takes, and their bounds)
    instead of the sampler's."""
    return {**options, "limits": {k: {"min": a, "max": b} for k, (a, b) in API_LIMITS.items()}}


def _add_routes(app: FastAPI) -> None:
    @app.get("/api/health", tags=["info"])
    async def health(request: Request) -> dict[str, str]:
        """Liveness, and the name of the loaded model."""
        return {"status": "ok", "model": request.app.state.model_name}

    @app.get("/api/options", tags=["info"])
    async def options(request: Request) -> dict[str, Any]:
        """Valid meters, modes, keys and styles, the limits, and the defaults."""
        return request.app.state.options

    @app.post("/api/compose", tags=["music"], responses=DOCUMENTED)
    async def compose(request: Request, body: ComposeBody | None = None,
                      format: FormatQuery = None, notation_width: NotationWidthQuery = None) -> Any:
        """A new tune as JSON (notes, abc, midi, svg, surprisal, bits_per_note, seed), or with
        `?format=mid|abc|musicxml` the file itself."""
        state = request.app.state
        req = resolve_request(body or ComposeBody(), state.options)

        def run() -> Response:
            # The response is built here, in the pool, so that encoding stays off the event loop.
            comp = state.composer.compose(req)
            return file_response(comp, format) if format else JSONResponse(
                composition_json(comp, state.renderer, notation_width, state.index))

        return await run_job(request, run, "compose", _cost(req))

    @app.post("/api/continue", tags=["music"], responses=DOCUMENTED)
    async def continue_(request: Request, file: UploadParam, form: Annotated[ContinueForm, Form()],
                        format: FormatQuery = None,
                        notation_width: NotationWidthQuery = None) -> Any:
        """The uploaded fragment and new bars after it; `fragment_notes` counts the leading notes
        that are the user's own. Same JSON as /api/compose, or the file with `?format=`."""
        state = request.app.state
        data = await read_upload(file)
        req = resolve_request(form, state.options, new_tune=False)
        given = form.model_dump(exclude_none=True)

        def run() -> Response:
            name = file.filename or "upload"
            melody = override(read_upload_melody(data, name), req, given)
            check_meter(melody, state.options["meters"], name)
            comp = state.composer.continue_melody(melody, bars=form.bars or 8,
                                                  keep_bars=form.keep_bars, sampling=req.sampling,
                                                  form=form.form, tune_type=req.tune_type)
            return file_response(comp, format) if format else JSONResponse(
                composition_json(comp, state.renderer, notation_width, state.index))

        fragment = _upload_notes(data, file)
        units = compose_units(form.bars or 8, _bar_ticks(req), req.sampling.best_of, fragment)
        return await run_job(request, run, "continue", units + upload_units(fragment),
                             given=set(given))

    @app.post("/api/infill", tags=["music"], responses=DOCUMENTED)
    async def infill(request: Request, file: UploadParam, form: Annotated[InfillForm, Form()],
                     format: FormatQuery = None, notation_width: NotationWidthQuery = None) -> Any:
        """The uploaded tune with the bars `bars` written anew to fit the bars on both sides,
        every other note kept; `new_notes` gives the spans of written notes that are new. Same
        JSON as /api/compose, or the file with `?format=`."""
        state = request.app.state
        data = await read_upload(file)
        given = form.model_dump(exclude_none=True)
        sampling = SamplingOptions(**{k: given[k] for k in
                                      ("temperature", "top_p", "seed", "best_of") if k in given})
        candidates = form.candidates or DEFAULT_CANDIDATES

        def run() -> Response:
            name = file.filename or "upload"
            melody = check_meter(read_upload_melody(data, name), state.options["meters"], name)
            [comp] = state.composer.infill(melody, parse_bars(form.bars, tune_bars(melody)),
                                           sampling, candidates=candidates)
            return file_response(comp, format) if format else JSONResponse(
                composition_json(comp, state.renderer, notation_width, state.index))

        notes = _upload_notes(data, file)
        units = upload_units(notes, passes=2) + compose_units(
            4 + WINDOW_BARS, Meter.parse(DEFAULT_METER).bar_ticks, candidates)
        return await run_job(request, run, "infill", units, given=set(given))

    @app.post("/api/score", tags=["music"],
              responses={code: {"model": Error} for code in (400, 413, 422, 503)})
    async def score(request: Request, file: UploadParam,
                    notation_width: NotationWidthQuery = None) -> Any:
        """How surprising each note of an uploaded tune is to the model, in bits: `surprisal`
        per note (with `note_scores` naming bar and beat), `bits_per_note`, `most_surprising`."""
        state = request.app.state
        data = await read_upload(file)

        def run() -> Response:
            name = file.filename or "upload"
            melody = check_meter(read_upload_melody(data, name), state.options["meters"], name)
            report = state.composer.score(melody).to_dict()
            report["note_scores"] = report.pop("notes")
            bits = [(n["rhythm_bits"], n["pitch_bits"]) for n in report["note_scores"]]
            report.update(tune_json(melody, bits, report["bits_per_note"], state.renderer,
                                    width=notation_width))
            return JSONResponse(report)

        notes = _upload_notes(data, file)
        units = upload_units(notes, passes=1 + ROW_SHARE * len(state.options["styles"]))
        return await run_job(request, run, "score", units, given=set())
