"""Typer command line: thin commands that parse options and call the modules that do the work."""

from __future__ import annotations

import sys

import typer

from .dataset import DatasetError
from .music import MusicError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Compose folk melodies with a dual-GRU rhythm/pitch model.")

# Errors a user can cause; they are reported in one line with exit code 2, never a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (MusicError, DatasetError, FileNotFoundError)


def fail(message: str, code: int = 2) -> "typer.Exit":
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


# --- commands are added below, one function each ------------------------------------------


@app.command("ingest")
def ingest_command(
    sources: list[str] = typer.Argument(
        None, metavar="[SOURCE]...", show_default=False,
        help="music21:<collection>, a file or a folder (searched recursively for "
             ".mid .midi .abc .xml .mxl .musicxml .krn). Default: the five music21 folk collections."),
    out: str = typer.Option("data/folk.npz", "--out", "-o", help="Dataset file to write."),
    workers: int = typer.Option(None, "--workers", "-j", min=1, show_default="number of cores",
                                help="Parser processes."),
    style: str = typer.Option(None, "--style", help="Style label for every tune "
                                                    "(default: the collection or folder name)."),
    cache: str = typer.Option(None, "--cache", show_default="cache/ next to --out",
                              help="Folder of the per-file parse cache."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Name each skipped tune on stderr."),
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
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    model: str = typer.Option(None, "--model", show_default="the shipped model",
                              help="Model folder (model.safetensors + config.json)."),
    workers: int = typer.Option(2, "--workers", "-j", min=1,
                                help="Requests generated at once (threads per process)."),
    queue: int = typer.Option(16, "--queue", min=0,
                              help="Requests that may wait per process; more get 503."),
    processes: int = typer.Option(1, "--processes", "-p", min=1,
                                  help="Server processes, each with its own copy of the model."),
) -> None:
    """Run the web API and the playground page (http://HOST:PORT/)."""
    from . import api
    from .checkpoint import CheckpointError

    cfg = api.ServeConfig(host=host, port=port, model_dir=model, workers=workers, queue_limit=queue,
                          processes=processes)
    try:
        api.serve(cfg)
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

    from . import evaluate
    from .checkpoint import CheckpointError, default_model_dir

    if split not in ("test", "valid", "train", "all"):
        raise fail(f"unknown split {split!r}; valid: test, valid, train, all")
    if device not in ("auto", "cpu", "cuda"):
        raise fail(f"unknown device {device!r}; valid: auto, cpu, cuda")
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        report = evaluate.evaluate(model_dir or default_model_dir(), data, split=split,
                                   baseline=baseline, markov_order=markov_order,
                                   samples=samples, continuations=continuations, seed=seed,
                                   device=device)
    except (CheckpointError, *USER_ERRORS) as e:
        raise fail(str(e)) from None
    typer.echo(json.dumps(report) if as_json else evaluate.format_report(report))


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
