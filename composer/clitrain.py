"""The commands that build models: ingest a corpus, train, evaluate (torch: the train extra),
calibrate each tune type's sampling temperature."""

from __future__ import annotations

import sys

import typer

from .clicommon import USER_ERRORS, app, fail, need_torch
from .requests import CALIBRATION_TEMPERATURES, LIMITS


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
        raise fail(e) from None
    typer.echo(json.dumps(summary) if as_json else corpus.format_summary(summary))


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

    torch = need_torch("evaluate")
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
        raise fail(e) from None
    typer.echo(json.dumps(report) if as_json else evaluate.format_report(report))


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
    type_balance: float = typer.Option(0.0, "--type-balance", min=0.0, max=1.0, help="How far each "
                                       "epoch moves tune types toward equal shares: 0 takes every "
                                       "tune once, 1 every type as often (rare types at most 3x)."),
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
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Train a model; launched by torchrun it trains on all processes with DDP."""
    import json
    import os

    need_torch("train")
    from .modelfiles import CheckpointError
    from .train import TrainConfig, TrainError, train

    # torchrun describes the process group in the environment.
    env = {k: int(os.environ.get(k, d)) for k, d in (("RANK", 0), ("WORLD_SIZE", 1),
                                                      ("LOCAL_RANK", 0))}
    cfg = TrainConfig(data=data, out=out, arch=arch, cell=cell, form=form, hidden=hidden, layers=layers,
                      dropout=dropout, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                      type_balance=type_balance, resume=resume, device=device, precision=precision,
                      window=window, patience=patience, max_minutes=max_minutes,
                      checkpoint_minutes=checkpoint_minutes, threads=threads, rank=env["RANK"],
                      world_size=env["WORLD_SIZE"], local_rank=env["LOCAL_RANK"])
    try:
        result = train(cfg, log=lambda msg: typer.echo(msg, err=True),
                       progress=sys.stderr.isatty())
    except (TrainError, CheckpointError, *USER_ERRORS) as e:
        raise fail(e) from None
    if cfg.rank == 0:
        from .dataset import Dataset
        from .similar import build_index

        result["index"] = str(build_index(Dataset.load(data), out))  # `composer similar`'s
        typer.echo(json.dumps(result) if as_json else _trained(result))


def _temperatures(text: str) -> list[float]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a list of numbers such as 0.8,0.9,1.0") from None
    t0, t1 = LIMITS["temperature"]
    if not values or not all(t0 < t <= t1 for t in values):
        raise typer.BadParameter(f"temperatures must be numbers above {t0:g} and at most {t1:g}")
    return values


@app.command("calibrate")
def calibrate_command(
    model_dir: str = typer.Argument(..., metavar="MODEL_DIR",
                                    help="Model folder; its config.json gets the temperatures."),
    data: str = typer.Option(..., "--data", help="Dataset file written by `composer ingest`."),
    split: str = typer.Option("train", "--split", help="train, valid, test or all: the real "
                              "tunes to compare with (keep test for the structure benchmark)."),
    types: str = typer.Option(None, "--types", show_default="every type of the model",
                              help="Comma-separated tune types."),
    temperatures: str = typer.Option(None, "--temperatures", show_default=", ".join(
                                         f"{t:g}" for t in CALIBRATION_TEMPERATURES),
                                     help="Comma-separated temperatures to try."),
    samples: int = typer.Option(200, "--samples", min=1, help="Tunes per type and temperature."),
    seed: int = typer.Option(5000, "--seed", help="Seed of the first tune."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Report only; leave config.json as it is."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Choose each tune type's sampling temperature: the one whose tunes repeat, echo and end
    most like the real tunes of the type (see composer/calibration.py)."""
    import json

    from . import calibration
    from .dataset import Dataset
    from .modelfiles import CheckpointError
    from .sample import Composer

    try:
        grid = _temperatures(temperatures) if temperatures else list(CALIBRATION_TEMPERATURES)
    except typer.BadParameter as e:
        raise fail(f"--temperatures: {e}") from None
    try:
        composer = Composer.load(model_dir)
        ds = Dataset.load(data)
        ds.indices(split)  # an unknown split, before any work
        kinds = [t.strip() for t in types.split(",")] if types else None
        report = calibration.calibrate(composer, ds, split, kinds, grid, samples, seed,
                                       progress=lambda m: typer.echo(m, err=True))
        if not dry_run:
            calibration.save(model_dir, report)
    except (CheckpointError, *USER_ERRORS) as e:
        raise fail(e) from None
    typer.echo(json.dumps(report) if as_json else calibration.format_report(report))
    if not dry_run:
        typer.echo(f"wrote the temperatures into {model_dir}/config.json", err=True)


_STOPS = {"epochs": "all epochs done", "early stop": "early stop: validation stopped improving",
          "learning rate bottomed out": "the learning rate fell to 1/1000 of its peak",
          "time budget": "time budget reached; continue with --resume"}


def _trained(r: dict) -> str:
    """The end of a training run in words, with the command to try the model."""
    lines = [f"trained {r['epochs']} epochs, {r['steps']:,} steps ({_STOPS.get(r['stopped'], r['stopped'])})"]
    if r.get("best_epoch"):
        lines.append(f"best epoch {r['best_epoch']}: valid {r['valid_total']:.3f} bits/note "
                     f"(rhythm {r['valid_rhythm']:.3f}, pitch {r['valid_pitch']:.3f}), "
                     f"train {r['train_total']:.3f}")
    lines += [f"model: {r['out']} ({r['params']:,} parameters); known tunes: {r['index']}",
              f"next: composer compose --model {r['out']} -o tune.mid"]
    return "\n".join(lines)
