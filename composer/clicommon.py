"""The command line's app, its one-line errors, and the options its commands share."""

from __future__ import annotations


import typer

from .dataset import DatasetError
from .music import MusicError, parse_pitch, pitch_name
from .requests import DEFAULT_TEMPERATURE, SamplingOptions
from .serve import ServeConfig

app = typer.Typer(add_completion=False, context_settings={"help_option_names": ["-h", "--help"]},
                  help="Compose folk melodies with a dual-GRU rhythm/pitch model.")


@app.callback(invoke_without_command=True)
def _main(ctx: typer.Context,
          version: bool = typer.Option(False, "--version", is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Bare `composer` shows the help (exit 0)."""
    if version:
        from . import __version__

        typer.echo(f"composer {__version__}")
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()

# Errors a user can cause; they are reported in one line with exit code 2, never a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (MusicError, DatasetError, FileNotFoundError)
SERVE = ServeConfig()  # the serve command's defaults


def fail(message: str | BaseException, code: int = 2, detail: str = "") -> "typer.Exit":
    """Print a one-line error to stderr (and, with --verbose, a reading library's own message
    on a second line) and return the Exit to raise. An error that names its field by the
    request's name (top_p) names it by the flag the user typed (--top-p)."""
    if isinstance(message, BaseException):
        text, name = str(message), getattr(message, "field", None)
        if name and text.startswith(name + " "):
            text = "--" + name.replace("_", "-") + text[len(name):]
        message = text
    typer.echo(f"error: {message}", err=True)
    if detail:
        typer.echo(f"detail: {detail}", err=True)
    return typer.Exit(code)


def need_torch(command: str):
    """torch, for the commands that need it; without it, a one-line error naming the extra."""
    try:
        import torch
    except ImportError:
        raise fail(f"`composer {command}` needs torch: pip install 'composer[train]'") from None
    return torch


_OUT_HELP = ("Output file: .mid .abc .musicxml .xml .json .wav, or - for ABC on stdout. "
             "Several tunes: numbered files, or one multi-tune .abc.")
_THREADS_HELP = ("CPU threads for the matrix products. Sampling is a chain of small steps, so 1 "
                 "is fastest for a single tune (and on a busy machine); more can help when many "
                 "tunes are sampled at once.")
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
TEMPERATURE_OPTION = typer.Option(None, "--temperature", show_default="the model's for the tune "
                                  f"type (`composer info`), else {DEFAULT_TEMPERATURE}",
                                  help="Sampling temperature (> 0).")
TOP_P_OPTION = typer.Option(SamplingOptions.top_p, "--top-p", help="Nucleus sampling mass (0..1].")
BEST_OF_OPTION = typer.Option(SamplingOptions.best_of, "--best-of",
                              help="Sample M per tune, keep the likeliest.")
SEED_OPTION = typer.Option(None, "--seed", show_default="random (printed)", help="Random seed.")
THREADS_OPTION = typer.Option(1, "--threads", min=1, help=_THREADS_HELP)
_PITCH_HELP = "{} pitch{}: a MIDI number or a note name (C4 = 60, middle C)."
LOW_OPTION = typer.Option(pitch_name(SamplingOptions.low), "--low",
                          help=_PITCH_HELP.format("Lowest", ""))
HIGH_OPTION = typer.Option(pitch_name(SamplingOptions.high), "--high",
                           help=_PITCH_HELP.format("Highest", ""))
NEW_LOW_OPTION = typer.Option(pitch_name(SamplingOptions.low), "--low",
                              help=_PITCH_HELP.format("Lowest", " of the new notes"))
NEW_HIGH_OPTION = typer.Option(pitch_name(SamplingOptions.high), "--high",
                               help=_PITCH_HELP.format("Highest", " of the new notes"))
TUNE_OPTION = typer.Option(None, "--tune", show_default="the first readable tune",
                           help="Which tune of a multi-tune ABC file: its X: number or title.")
VERBOSE_OPTION = typer.Option(False, "--verbose", "-v", help="On a file that cannot be read, "
                              "also print the reading library's own message.")


def sampling_options(temperature: float | None, top_p: float, seed: int | None, best_of: int,
                     low: str, high: str):
    """Validated sampling options (low and high: MIDI numbers or note names); MusicError with
    a one-line message if any is out of range."""
    opts = SamplingOptions(temperature=temperature, top_p=top_p, seed=seed, best_of=best_of,
                           low=parse_pitch(low, "low"), high=parse_pitch(high, "high"))
    opts.validate()
    return opts


def write_tunes(comps: list, out: str, model: str | None = None) -> None:
    """Write compositions to OUT by its suffix (`-`: ABC on stdout); report on stderr, with the
    closest known tune from the index of `model` (None: the shipped model)."""
    from .tunefiles import nearest_line, report_line, write_output

    try:
        written, text = write_output(comps, out)
    except (OSError, *USER_ERRORS) as e:
        raise fail(e) from None
    if text is not None:
        typer.echo(text, nl=False)
    typer.echo(report_line(comps, written), err=True)
    nearest = nearest_line(comps, model)
    if nearest:
        typer.echo(nearest, err=True)


def compose_and_write(make, out: str, count: int, sampling: tuple, threads: int,
                      model: str | None, verbose: bool = False) -> None:
    """The body of compose, continue and infill: check OUT, validate the sampling options
    (temperature, top_p, seed, best_of, low, high), run `make(opts)` for (compositions, notes
    on the input), and write; a user's error is one line (with --verbose, the reading library's
    own message too)."""
    from .engine import set_threads
    from .modelfiles import CheckpointError
    from .tunefiles import check_output

    set_threads(threads)
    try:
        check_output(out, count)
        comps, notes = make(sampling_options(*sampling))
    except (CheckpointError, OSError, *USER_ERRORS) as e:
        raise fail(e, detail=verbose and getattr(e, "library", "")) from None
    for note in notes:
        typer.echo(note, err=True)
    write_tunes(comps, out, model)
