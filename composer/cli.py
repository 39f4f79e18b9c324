"""Typer command line: thin commands that parse options and call the modules that do the work.
The commands that build models are in clitrain; the app and the shared options in clicommon."""

from __future__ import annotations

import sys

import typer

from .clicommon import (BEST_OF_OPTION, FRAGMENT_STYLE_OPTION, HIGH_OPTION, LOW_OPTION,
                        MODEL_OPTION, NEW_HIGH_OPTION, NEW_LOW_OPTION, OUT_OPTION, SEED_OPTION,
                        SERVE, STYLE_OPTION, TEMPERATURE_OPTION, THREADS_OPTION, TOP_P_OPTION,
                        TUNE_OPTION, TYPE_OPTION, USER_ERRORS, VERBOSE_OPTION, app,
                        compose_and_write, fail)
from .music import KEYS, quarters_to_ticks
from .requests import ComposeRequest
from .serve import ServeConfig


@app.command("compose")
def compose_command(
    out: str = OUT_OPTION,
    model: str = MODEL_OPTION,
    bars: int = typer.Option(None, "--bars", show_default="16, or the form's",
                             help="Complete bars (1..256) of a through-composed tune."),
    tune_type: str = TYPE_OPTION,
    form: str = typer.Option(None, "--form", show_default="the type's usual form",
                             help="Parts as letters, each with an optional bar count: AABB, "
                                  "AABA, ABAC, A8B8. A letter twice in a row is one part "
                                  "played twice (repeat signs)."),
    endings: bool = typer.Option(None, "--endings/--no-endings", show_default="as the type's "
                                 "tunes mostly have them", help="First and second endings on "
                                 "each repeated part: the second time through ends differently."),
    meter: str = typer.Option(None, "--meter", show_default="the type's, else 4/4",
                              help="Time signature, e.g. 6/8."),
    pickup: float = typer.Option(None, "--pickup", show_default="the type's usual, else none",
                                 help="Anacrusis in quarter notes (0.5 = one eighth, 0 = none); "
                                      "the last bar is shortened to match."),
    key: str = typer.Option(ComposeRequest.key, "--key",
                            help=f"Tonic, written as given: {' '.join(KEYS)} (G# minor, but "
                                 "Ab major: at most 7 sharps or flats)."),
    mode: str = typer.Option(ComposeRequest.mode, "--mode",
                             help="Mode: major, minor, dorian, mixolydian, lydian or phrygian "
                                  "(those the model knows; see `composer info`); m, dor, mix "
                                  "and the other ABC abbreviations work too."),
    style: str = STYLE_OPTION,
    tempo: float = typer.Option(ComposeRequest.tempo, "--tempo", help="Quarter notes per minute."),
    temperature: float | None = TEMPERATURE_OPTION,
    top_p: float = TOP_P_OPTION,
    seed: int = SEED_OPTION,
    count: int = typer.Option(1, "--count", help="Number of tunes (sampled in one batch)."),
    best_of: int = BEST_OF_OPTION,
    low: str = LOW_OPTION,
    high: str = HIGH_OPTION,
    title: str = typer.Option(None, "--title", show_default="the type and key, e.g. Reel in D",
                              help="Title of the tune (several are numbered)."),
    threads: int = THREADS_OPTION,
) -> None:
    """Compose new tunes in --key --mode: a --type of tune in its usual form (or in --form),
    or --bars bars through-composed."""
    from .sample import Composer, ComposeRequest

    def make(opts):
        composer = Composer.load(model)
        req = ComposeRequest(bars=bars, meter=meter, key=key, mode=mode, style=style, tempo=tempo,
                             sampling=opts, tune_type=tune_type, form=form, endings=endings,
                             title=title,
                             pickup=None if pickup is None else quarters_to_ticks(pickup))
        return composer.compose_many(req, count), []

    compose_and_write(make, out, count, (temperature, top_p, seed, best_of, low, high), threads,
                      model)


@app.command("continue")
def continue_command(
    input: str = typer.Argument(..., metavar="INPUT", help="Fragment: .mid .abc .musicxml .xml"),
    tune: str = TUNE_OPTION,
    out: str = OUT_OPTION,
    model: str = MODEL_OPTION,
    bars: int = typer.Option(8, "--bars", help="New complete bars to add (1..256) where no form "
                                               "is given or written in INPUT."),
    form: str = typer.Option(None, "--form", show_default="INPUT's parts and the type's usual form",
                             help="The whole tune's form, e.g. AABB: INPUT is its start, the "
                                  "rest is written."),
    tune_type: str = TYPE_OPTION,
    keep_bars: int = typer.Option(None, "--keep-bars", help="Use only the first N bars of INPUT."),
    style: str = FRAGMENT_STYLE_OPTION,
    temperature: float | None = TEMPERATURE_OPTION,
    top_p: float = TOP_P_OPTION,
    seed: int = SEED_OPTION,
    best_of: int = BEST_OF_OPTION,
    low: str = NEW_LOW_OPTION,
    high: str = NEW_HIGH_OPTION,
    threads: int = THREADS_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Continue a fragment: its notes unchanged, then the rest of its form (or --bars new bars)
    in its key and meter."""
    from .sample import Composer
    from .tunefiles import read_input

    def make(opts):
        melody, notes = read_input(input, tune)
        comp = Composer.load(model).continue_melody(melody, bars=bars, keep_bars=keep_bars,
                                                    sampling=opts, style=style, form=form,
                                                    tune_type=tune_type)
        return [comp], notes

    compose_and_write(make, out, 1, (temperature, top_p, seed, best_of, low, high), threads,
                      model, verbose)


@app.command("score")
def score_command(
    input: str = typer.Argument(..., metavar="INPUT", help="Tune: .mid .abc .musicxml .xml"),
    tune: str = TUNE_OPTION,
    model: str = MODEL_OPTION,
    style: str = typer.Option(None, "--style", show_default="INPUT's, else the one it fits best",
                              help="Style label to score under (a collection: oneills1850, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """How surprising each note of a tune is to the model (bits), and the 5 most surprising."""
    import json

    from .modelfiles import CheckpointError
    from .sample import Composer
    from .tunefiles import read_input

    try:
        melody, notes = read_input(input, tune)
        report = Composer.load(model).score(melody, style=style)
    except (CheckpointError, OSError, *USER_ERRORS) as e:
        raise fail(e, detail=verbose and getattr(e, "library", "")) from None
    for note in notes:
        typer.echo(note, err=True)
    typer.echo(json.dumps(report.to_dict()) if as_json else report.to_text())


@app.command("info")
def info_command(
    model: str = MODEL_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the facts as one JSON object."),
) -> None:
    """What a model is and what it can be asked for: size, styles, types, meters, modes,
    ranges, and its validation figure."""
    import json

    from .modelfiles import CheckpointError
    from .sample import Composer

    try:
        composer = Composer.load(model)
    except (CheckpointError, OSError, *USER_ERRORS) as e:
        raise fail(e) from None
    facts = composer.info()
    if as_json:
        typer.echo(json.dumps(facts))
        return
    typer.echo("\n".join(f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                         for k, v in facts.items()))


@app.command("serve")
def serve_command(
    host: str = typer.Option(SERVE.host, "--host", help="Address to listen on."),
    port: int = typer.Option(SERVE.port, "--port", min=1, max=65535, help="Port to listen on."),
    model: str = typer.Option(None, "--model", show_default="the shipped model",
                              help="Model folder (model.safetensors + config.json)."),
    workers: int = typer.Option(SERVE.workers, "--workers", "-j", min=1,
                                help="Requests generated at once (threads per process)."),
    queue: int = typer.Option(SERVE.queue_limit, "--queue", min=0,
                              help="Requests that may wait per process; more get 503."),
    processes: int = typer.Option(SERVE.processes, "--processes", "-p", min=1,
                                  help="Server processes, each with its own copy of the model."),
    engine: str = typer.Option(SERVE.engine, "--engine", help="What runs the model: auto (the "
                               "numpy engine where it can), numpy, or torch (needs the train "
                               "extra)."),
    max_wait: float = typer.Option(SERVE.max_wait, "--max-wait", min=0.0, help="Seconds an "
                                   "admitted request may wait to start; more get 503."),
    client_share: int = typer.Option(None, "--client-share", min=1, show_default="--workers",
                                     help="Requests in flight per client address."),
    request_timeout: float = typer.Option(SERVE.request_timeout, "--request-timeout", min=0.1,
                                          help="Seconds a client has to send a whole request "
                                          "before its connection is closed."),
    max_connections: int = typer.Option(SERVE.max_connections, "--max-connections", min=1,
                                        help="Open connections per process; more get 503."),
    allow_host: list[str] = typer.Option(None, "--allow-host", show_default="localhost and "
                                         "--host", help="A Host name to serve (repeatable; "
                                         "'*' for any). IP addresses are always served."),
    allow_origin: list[str] = typer.Option(None, "--allow-origin", help="Another site whose "
                                           "pages may call the API, e.g. https://example.org "
                                           "(repeatable; '*' for any)."),
) -> None:
    """Run the web API and the playground page (http://HOST:PORT/)."""
    from .modelfiles import CheckpointError
    from .serve import serve

    cfg = ServeConfig(host=host, port=port, model_dir=model, workers=workers, queue_limit=queue,
                      processes=processes, engine=engine, max_wait=max_wait,
                      client_share=client_share, request_timeout=request_timeout,
                      max_connections=max_connections, allow_hosts=list(allow_host or []),
                      allow_origins=list(allow_origin or []))
    try:
        serve(cfg)
    except (CheckpointError, *USER_ERRORS) as e:
        raise fail(e) from None


@app.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_command(ctx: typer.Context) -> None:
    """Run every benchmark, each bounded in time, and print one table (a source checkout's
    benchmarks/run.py; options such as --quick, --only NAME..., --json are passed on)."""
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
    if not script.is_file():
        raise fail("the benchmarks are not part of an installed package; run `composer bench` "
                   "in a source checkout installed with `pip install -e .`")
    raise typer.Exit(subprocess.call([sys.executable, str(script), *ctx.args]))


def main() -> None:
    """Entry point of the `composer` command."""
    try:
        app()
    except USER_ERRORS as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


# after the commands above, so that `composer --help` lists composing first
from . import cliinfill, clitrain  # noqa: E402,F401  (register infill, ingest, train...)
