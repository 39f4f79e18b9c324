"""Typer command line: thin commands that parse options and call the modules that do the work."""

from __future__ import annotations

import sys

import typer

from .dataset import DatasetError
from .music import MusicError, quarters_to_ticks
from .requests import ComposeRequest, SamplingOptions
from .serve import ServeConfig

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Compose folk melodies with a dual-GRU rhythm/pitch model.")

# Errors a user can cause; they are reported in one line with exit code 2, never a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (MusicError, DatasetError, FileNotFoundError)
SERVE = ServeConfig()  # the serve command's defaults


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _torch(command: str):
    """torch, for the commands that need it; without it, a one-line error naming the extra."""
    try:
        import torch
    except ImportError:
        raise fail(f"`composer {command}` needs torch: pip install 'composer[train]'") from None
    return torch


# --- commands are added below, one function each ------------------------------------------


@app.command("ingest")
def ingest_command(
    sources: list[str] = typer.Argument(
        None, metavar="SOURCE", show_default=False,
        help="music21:<collection>, a file or a folder (searched recursively for .mid .midi "
             ".abc .xml .mxl .musicxml .krn). Default: the five music21 folk collections."),
    out: str = typer.Option("data/folk.npz", "--out", "-o", help="Dataset file to write."),
    workers: int = typer.Option(None, "--workers", "-j", min=1, show_default="number of cores",
                                help="Parser processes."),
    style: str = typer.Option(None, "--style", show_default="collection or folder name",
                              help="Style label for every tune."),
    cache: str = typer.Option(None, "--cache", show_default="cache/ next to --out",
                              help="Folder of the per-file parse cache."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Name each skipped tune on stderr."),
) -> None:
    """Read tunes and write the dataset file (encoded streams, vocabularies, split)."""
    import json

    from . import corpus

    try:
        summary = corpus.ingest(sources or [], out, workers=workers, style=style, verbose=verbose,
                                progress=sys.stderr.isatty(), cache_dir=cache)
    except (corpus.CorpusError, *USER_ERRORS) as e:
        raise fail(str(e)) from None
    typer.echo(json.dumps(summary) if as_json else corpus.format_summary(summary))


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
) -> None:
    """Run the web API and the playground page (http://HOST:PORT/)."""
    from .modelfiles import CheckpointError
    from .serve import serve

    cfg = ServeConfig(host=host, port=port, model_dir=model, workers=workers, queue_limit=queue,
                      processes=processes, engine=engine)
    try:
        serve(cfg)
    except (CheckpointError, *USER_ERRORS) as e:
        raise fail(str(e)) from None


@app.command("evaluate")
def evaluate_command(
    model_dir: str = typer.Argument(None, metavar="MODEL_DIR", show_default="the shipped model",
                                    help="Model folder (model.safetensors + config.json)."),
    data: str = typer.Option(..., "--data", help="Dataset file written by `composer ingest`."),
    split: str = typer.Option("test", "--split", help="test, valid, train or all."),
    baseline: str = typer.Option("markov", "--baseline", help="markov or none."),
    markov_order: int = typer.Option(4, "--markov-order", min=1, max=8, help="Longest Markov "
                                     "context in notes; the best order up to it is chosen on "
                                     "the valid split."),
    samples: int = typer.Option(0, "--samples", min=0, help="Generate N tunes shaped like the "
                                "split's and compare their distributions (Yang & Lerch 2018)."),
    continuations: int = typer.Option(0, "--continuations", min=0, help="Continue N half tunes "
                                      "and check that the detected key is kept."),
    seed: int = typer.Option(0, "--seed", help="Seed for choosing and generating tunes."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Bits/note and accuracy of a model on a dataset split, beside a Markov n-gram baseline."""
    import json

    torch = _torch("evaluate")
    from . import evaluate
    from .modelfiles import CheckpointError, default_model_dir

    if split not in ("test", "valid", "train", "all"):
        raise fail(f"unknown split {split!r}; valid: test, valid, train, all")
    if device not in ("auto", "cpu", "cuda"):
        raise fail(f"unknown device {device!r}; valid: auto, cpu, cuda")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        report = evaluate.evaluate(model_dir or default_model_dir(), data, split=split,
                                   baseline=baseline, markov_order=markov_order,
                                   samples=samples, continuations=continuations, seed=seed,
                                   device=device)
    except (CheckpointError, *USER_ERRORS) as e:
        raise fail(str(e)) from None
    typer.echo(json.dumps(report) if as_json else evaluate.format_report(report))


_OUT_HELP = ("Output file: .mid .abc .musicxml .xml .json .wav, or - for ABC on stdout. "
             "Several tunes: numbered files, or one multi-tune .abc.")
_THREADS_HELP = ("CPU threads for the matrix products. Sampling is a chain of small steps, so 1 "
                 "is fastest for a single tune (and on a busy machine); more can help big "
                 "--count batches.")
# Options shared by compose, continue and score.
MODEL_OPTION = typer.Option(None, "--model", show_default="the shipped model",
                            help="Model folder (model.safetensors + config.json).")
OUT_OPTION = typer.Option("-", "--out", "-o", help=_OUT_HELP)
_STYLE_HELP = "Style label the model was trained with (a collection: oneills1850, ...)."
STYLE_OPTION = typer.Option(None, "--style", show_default="the type's usual collection, else the "
                            "model's default", help=_STYLE_HELP)
FRAGMENT_STYLE_OPTION = typer.Option(None, "--style", show_default="INPUT's, else the type's "
                                     "usual collection, else the model's default", help=_STYLE_HELP)
TYPE_OPTION = typer.Option(None, "--type", show_default="the usual type of the meter",
                           help="Tune type: reel, jig, slip jig, hornpipe, polka, strathspey, "
                                "waltz, march, air, song, ... (those the model knows).")
TEMPERATURE_OPTION = typer.Option(SamplingOptions.temperature, "--temperature",
                                  help="Sampling temperature (> 0).")
TOP_P_OPTION = typer.Option(SamplingOptions.top_p, "--top-p", help="Nucleus sampling mass (0..1].")
BEST_OF_OPTION = typer.Option(SamplingOptions.best_of, "--best-of",
                              help="Sample M per tune, keep the likeliest.")
SEED_OPTION = typer.Option(None, "--seed", show_default="random (printed)", help="Random seed.")
THREADS_OPTION = typer.Option(1, "--threads", min=1, help=_THREADS_HELP)


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
                            help="Tonic: C C# Db D Eb E F F# Gb G Ab A Bb B."),
    mode: str = typer.Option(ComposeRequest.mode, "--mode",
                             help="major, minor, dorian, mixolydian, ..."),
    style: str = STYLE_OPTION,
    tempo: float = typer.Option(ComposeRequest.tempo, "--tempo", help="Quarter notes per minute."),
    temperature: float = TEMPERATURE_OPTION,
    top_p: float = TOP_P_OPTION,
    seed: int = SEED_OPTION,
    count: int = typer.Option(1, "--count", help="Number of tunes (sampled in one batch)."),
    best_of: int = BEST_OF_OPTION,
    low: int = typer.Option(SamplingOptions.low, "--low", help="Lowest MIDI pitch."),
    high: int = typer.Option(SamplingOptions.high, "--high", help="Highest MIDI pitch."),
    threads: int = THREADS_OPTION,
) -> None:
    """Compose new tunes in --key --mode: a --type of tune in its usual form (or in --form),
    or --bars bars through-composed."""
    from .engine import set_threads
    from .modelfiles import CheckpointError
    from .sample import Composer, ComposeRequest

    set_threads(threads)
    try:
        opts = _sampling(temperature, top_p, seed, best_of, low, high)
        composer = Composer.load(model)
        req = ComposeRequest(bars=bars, meter=meter, key=key, mode=mode, style=style, tempo=tempo,
                             sampling=opts, tune_type=tune_type, form=form, endings=endings,
                             pickup=None if pickup is None else quarters_to_ticks(pickup))
        comps = composer.compose_many(req, count)
    except (CheckpointError, OSError, *USER_ERRORS) as e:
        raise fail(str(e)) from None
    _write_tunes(comps, out)


def _sampling(temperature: float, top_p: float, seed: int | None, best_of: int, low: int,
              high: int):
    """Validated sampling options; MusicError with a one-line message if any is out of range."""
    opts = SamplingOptions(temperature=temperature, top_p=top_p, seed=seed, best_of=best_of,
                           low=low, high=high)
    opts.validate()
    return opts


def _write_tunes(comps: list, out: str) -> None:
    """Write compositions to OUT by its suffix (`-`: ABC on stdout); report on stderr."""
    from .tunefiles import report_line, write_output

    try:
        written, text = write_output(comps, out)
    except (OSError, *USER_ERRORS) as e:
        raise fail(str(e)) from None
    if text is not None:
        typer.echo(text, nl=False)
    typer.echo(report_line(comps, written), err=True)


@app.command("continue")
def continue_command(
    input: str = typer.Argument(..., metavar="INPUT", help="Fragment: .mid .abc .musicxml .xml"),
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
    temperature: float = TEMPERATURE_OPTION,
    top_p: float = TOP_P_OPTION,
    seed: int = SEED_OPTION,
    best_of: int = BEST_OF_OPTION,
    low: int = typer.Option(SamplingOptions.low, "--low",
                            help="Lowest MIDI pitch of the new notes."),
    high: int = typer.Option(SamplingOptions.high, "--high",
                             help="Highest MIDI pitch of the new notes."),
    threads: int = THREADS_OPTION,
) -> None:
    """Continue a fragment: its notes unchanged, then the rest of its form (or --bars new bars)
    in its key and meter."""
    from .engine import set_threads
    from .modelfiles import CheckpointError
    from .sample import Composer
    from .tunefiles import read_input

    set_threads(threads)
    try:
        opts = _sampling(temperature, top_p, seed, best_of, low, high)
        melody = read_input(input)
        composer = Composer.load(model)
        comp = composer.continue_melody(melody, bars=bars, keep_bars=keep_bars, sampling=opts,
                                        style=style, form=form, tune_type=tune_type)
    except (CheckpointError, OSError, *USER_ERRORS) as e:
        raise fail(str(e)) from None
    _write_tunes([comp], out)


@app.command("score")
def score_command(
    input: str = typer.Argument(..., metavar="INPUT", help="Tune: .mid .abc .musicxml .xml"),
    model: str = MODEL_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """How surprising each note of a tune is to the model (bits), and the 5 most surprising."""
    import json

    from .modelfiles import CheckpointError
    from .sample import Composer
    from .tunefiles import read_input

    try:
        melody = read_input(input)
        report = Composer.load(model).score(melody)
    except (CheckpointError, OSError, *USER_ERRORS) as e:
        raise fail(str(e)) from None
    typer.echo(json.dumps(report.to_dict()) if as_json else report.to_text())


@app.command("train")
def train_command(
    data: str = typer.Option(..., "--data", help="Dataset file written by `composer ingest`."),
    out: str = typer.Option(..., "--out", "-o", help="Output folder (model, metrics, resume state)."),
    arch: str = typer.Option("dual", "--arch", help="dual (rhythm + melody networks) or joint "
                                                     "(one network over (duration, pitch) tokens)."),
    cell: str = typer.Option("gru", "--cell", help="Recurrent cell: gru, lstm or rnn."),
    form: str = typer.Option("cadence", "--form-inputs", help="What the model reads of the "
                             "form: none, position (where each note is in its phrase, part and "
                             "tune), lookback (also the notes one phrase and one part back) or "
                             "cadence (also, for the melody network, whether the next note ends "
                             "a phrase, a part or the tune)."),
    hidden: int = typer.Option(256, "--hidden", min=1, help="Units per layer (joint: the size is "
                                                            "matched to a dual model of this width)."),
    layers: int = typer.Option(2, "--layers", min=1, help="Recurrent layers per network."),
    dropout: float = typer.Option(0.1, "--dropout", min=0.0, max=0.95),
    epochs: int = typer.Option(30, "--epochs", min=1, help="Epochs in all (a resumed run counts "
                                                          "the epochs already done)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Tunes per batch and process."),
    lr: float = typer.Option(2e-3, "--lr", min=0.0, help="Peak learning rate (AdamW)."),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run saved in --out."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 where the hardware has "
                                                              "it), bf16 or fp32."),
    window: int = typer.Option(512, "--window", min=8, help="Longest training sequence in notes; "
                                                            "longer tunes are cut into windows."),
    patience: int = typer.Option(4, "--patience", min=1, help="Stop after this many epochs "
                                                              "without a better validation loss."),
    max_minutes: float = typer.Option(None, "--max-minutes", min=0.0, help="Stop (resumably) "
                                                                           "after this long."),
    checkpoint_minutes: float = typer.Option(10.0, "--checkpoint-minutes", min=0.0,
                                             help="Resume checkpoint interval within an epoch."),
    threads: int = typer.Option(None, "--threads", min=1, show_default="cores / processes",
                                help="CPU threads per process."),
) -> None:
    """Train a model; launched by torchrun it trains on all processes with DDP."""
    import json
    import os

    _torch("train")
    from .modelfiles import CheckpointError
    from .train import TrainConfig, TrainError, train

    # torchrun describes the process group in the environment.
    env = {k: int(os.environ.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1),
                                                      ("LOCAL_RANK", 0))}
    cfg = TrainConfig(data=data, out=out, arch=arch, cell=cell, form=form, hidden=hidden, layers=layers,
                      dropout=dropout, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                      resume=resume, device=device, precision=precision, window=window,
                      patience=patience, max_minutes=max_minutes,
                      checkpoint_minutes=checkpoint_minutes, threads=threads, rank=env["RANK"],
                      world_size=env["WORLD_SIZE"], local_rank=env["LOCAL_RANK"])
    try:
        result = train(cfg, log=lambda msg: typer.echo(msg, err=True),
                       progress=sys.stderr.isatty())
    except (TrainError, CheckpointError, *USER_ERRORS) as e:
        raise fail(str(e)) from None
    if cfg.rank == 0:
        typer.echo(json.dumps(result))


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
