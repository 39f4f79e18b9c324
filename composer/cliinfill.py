"""The co-composing commands: infill (new bars between kept ones) and similar (is this a known
tune?)."""

from __future__ import annotations

import typer

from .modelchoices import style_name
from .similar import bar_ranges
from .clicommon import (BEST_OF_OPTION, MODEL_OPTION, NEW_HIGH_OPTION, NEW_LOW_OPTION, OUT_OPTION,
                        SEED_OPTION, TEMPERATURE_OPTION, THREADS_OPTION, TOP_P_OPTION, TUNE_OPTION,
                        USER_ERRORS, VERBOSE_OPTION, app, compose_and_write, fail)


@app.command("infill")
def infill_command(
    input: str = typer.Argument(..., metavar="INPUT",
                                help="Tune: .mid .abc .musicxml .xml .json"),
    bars: str = typer.Option(..., "--bars", help="Bars to write anew, e.g. 5-6 or 3,7-8 (bar 1 "
                             "is the first full bar; every other note is kept)."),
    tune: str = TUNE_OPTION,
    out: str = OUT_OPTION,
    model: str = MODEL_OPTION,
    count: int = typer.Option(1, "--count", "-n", help="Versions to write (1..8)."),
    candidates: int = typer.Option(128, "--candidates", help="Candidates drawn for each gap and "
                                   "weighed by how well they lead into the bars after it."),
    temperature: float | None = TEMPERATURE_OPTION,
    top_p: float = TOP_P_OPTION,
    seed: int = SEED_OPTION,
    best_of: int = BEST_OF_OPTION,
    low: str = NEW_LOW_OPTION,
    high: str = NEW_HIGH_OPTION,
    threads: int = THREADS_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Write chosen bars of a tune anew, to fit the bars before and after them; every other
    note stays as it is, and a repeated part changes in both playings."""
    from .infill import parse_bars, tune_bars
    from .sample import Composer
    from .tunefiles import read_input

    def make(opts):
        melody, notes = read_input(input, tune)
        ranges = parse_bars(bars, tune_bars(melody))
        return Composer.load(model).infill(melody, ranges, opts, count=count,
                                           candidates=candidates), notes

    compose_and_write(make, out, count, (temperature, top_p, seed, best_of, low, high), threads,
                      model, verbose)


@app.command("similar")
def similar_command(
    input: str = typer.Argument(..., metavar="INPUT", help="Tune: .mid .abc .musicxml .xml .json"),
    tune: str = TUNE_OPTION,
    model: str = MODEL_OPTION,
    count: int = typer.Option(5, "--count", "-n", min=1, max=50, help="Tunes to list."),
    as_json: bool = typer.Option(False, "--json", help="Print the matches as one JSON object."),
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Is this a known tune? The most similar tunes of the corpus the model was built from, in
    any key, with the bars where they agree."""
    import json

    from .tunefiles import known_tunes, read_input

    try:
        melody, notes = read_input(input, tune)
        index = known_tunes(model, required=True)
        matches = index.nearest(melody, count)
    except (OSError, *USER_ERRORS) as e:
        raise fail(e, detail=verbose and getattr(e, "library", "")) from None
    for note in notes:
        typer.echo(note, err=True)
    if as_json:
        typer.echo(json.dumps({"tune": melody.title, "matches": [m.to_dict() for m in matches]}))
        return
    typer.echo(f"known tunes like {melody.title or input} ({len(index):,} in the index):")
    for i, m in enumerate(matches, 1):
        typer.echo(f"{i}. {m.title or '(untitled)'} -- {style_name(m.style)}, {m.source}; "
                   f"similarity {m.similarity:.2f}; bars in common: {bar_ranges(m.bars) or 'none'}")


@app.command("index")
def index_command(
    data: str = typer.Argument(..., metavar="DATA", help="The dataset file the model was "
                               "trained on (composer ingest --out)."),
    model: str = typer.Option(..., "--model", help="Model folder to write the index into."),
) -> None:
    """Build the index of known tunes that `similar` searches (`train` builds it too)."""
    from .dataset import Dataset
    from .similar import build_index

    try:
        path = build_index(Dataset.load(data), model)
    except (OSError, *USER_ERRORS) as e:
        raise fail(e) from None
    typer.echo(f"wrote {path}")
