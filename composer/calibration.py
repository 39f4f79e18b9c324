"""Each tune type's sampling temperature, chosen by the form of the tunes it gives.

One temperature does not suit every type. A sharper draw (a lower temperature) repeats more:
at one temperature a model's jigs can recur in 8-note windows far more often than real jigs
while its airs repeat bars half as often as real airs. `calibrate` composes `samples` tunes of
each type at each candidate temperature (the type's usual form; keys and modes taken in turn
from the split's real tunes of the type, as the structure benchmark does) and keeps the
temperature whose tunes are formed most like those real tunes: the least `form_distance`.
The split should not be the one the structure benchmark reports on (test). The default is
train: it holds the most tunes of each type (the valid split of the folk corpus holds 27 reels
and 20 hornpipes, whose form figures differ from the train split's by up to a fifth), and only
form figures are compared, which a model does not learn tune by tune.
A type with fewer than MIN_REAL real tunes in the split is not calibrated: it keeps the
temperature an earlier calibration gave it, else DEFAULT_TEMPERATURE.
`save` writes the choice into the model folder's config.json ("sampling"), which
`ModelChoices.temperature` reads; a temperature the caller asks for always wins.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

from .dataset import Dataset
from .encoding import decode
from .modelfiles import CONFIG, CheckpointError, read_json, write_json
from .music import Melody, key_spelling
from .requests import (CALIBRATION_TEMPERATURES, DEFAULT_TEMPERATURE, ComposeRequest,
                       SamplingOptions)
from .structure import summarize

MIN_REAL = 20  # real tunes of a type in the split, below which its figures are too noisy
REPETITION = ("bar_repeat", "window_recur", "phrase_sim")


def real_tunes(ds: Dataset, split: str, tune_type: str) -> list[Melody]:
    """The split's tunes of one type, decoded."""
    return [decode(ds.tune(int(i)), ds.vocab) for i in ds.indices(split)
            if ds.vocab.types[ds.type[i]] == tune_type]


def compose_like(composer, real: Sequence[Melody], tune_type: str, samples: int, seed: int,
                 sampling: dict | None = None, bars: int | None = None,
                 endings: bool | None = None) -> list[Melody]:
    """`samples` tunes of `tune_type` (its usual form, or `bars` through-composed), keys and
    modes taken in turn from `real`, seeds seed, seed + 1, ..."""
    out = []
    for i in range(samples):
        ref = real[i % len(real)]
        req = ComposeRequest(tune_type=tune_type, key=key_spelling(ref.tonic, ref.mode),
                             endings=endings, bars=bars,
                             mode=composer.choices.fragment_mode(ref.mode),
                             sampling=SamplingOptions(seed=seed + i, **(sampling or {})))
        out.append(composer.compose(req).melody)
    return out


def form_distance(generated: dict, real: dict) -> float:
    """How far generated tunes' form is from real tunes': the mean |log(generated / real)| of
    bar repetition, window recurrence and phrase similarity (too little and too much count
    alike), plus log(real / generated) of tonic endings where they fall short of real."""
    def log_ratio(k: str) -> float:
        return math.log(max(generated[k], 1e-3) / max(real[k], 1e-3))

    repetition = sum(abs(log_ratio(k)) for k in REPETITION) / len(REPETITION)
    return repetition + max(0.0, -log_ratio("tonic_ending"))


def calibrate(composer, ds: Dataset, split: str = "train", types: Sequence[str] | None = None,
              temperatures: Sequence[float] = CALIBRATION_TEMPERATURES, samples: int = 200,
              seed: int = 5000, progress: Callable[[str], None] | None = None) -> dict:
    """Each type's best temperature (`form_distance` to the split's real tunes of the type),
    with every figure behind the choice."""
    rows, chosen = [], {}
    for kind in types or composer.vocab.types:
        kind = composer.forms.check(kind)
        real = real_tunes(ds, split, kind)
        row = {"type": kind, "real_tunes": len(real), "real": summarize(real) if real else None,
               "tried": []}
        rows.append(row)
        if len(real) < MIN_REAL:
            continue
        for t in temperatures:
            gen = summarize(compose_like(composer, real, kind, samples, seed, {"temperature": t}))
            row["tried"].append({"temperature": t, "generated": gen,
                                 "distance": form_distance(gen, row["real"])})
            if progress:
                progress(f"{kind} at {t:g}: distance {row['tried'][-1]['distance']:.3f}")
        best = min(row["tried"], key=lambda r: (r["distance"],
                                                abs(r["temperature"] - DEFAULT_TEMPERATURE)))
        chosen[kind] = row["temperature"] = best["temperature"]
    return {"split": split, "samples": samples, "seed": seed, "temperatures": list(temperatures),
            "min_real": MIN_REAL, "chosen": chosen, "rows": rows,
            "weights_sha256": composer.config.get("weights_sha256")}


def save(model_dir: str | Path, report: dict) -> None:
    """Write the chosen temperatures into the model folder's config.json (atomically), with
    how they were chosen. Types calibrated before and not chosen now keep their temperature;
    the others draw at DEFAULT_TEMPERATURE. Refused if the weights changed meanwhile."""
    path = Path(model_dir) / CONFIG
    config = read_json(path)
    if config.get("weights_sha256") != report["weights_sha256"]:
        raise CheckpointError(f"{path}: the model's weights changed while it was calibrated; "
                              "run `composer calibrate` again")
    before = config.get("sampling", {}).get("temperature", {})
    config["sampling"] = {"temperature": {**before, **report["chosen"]},
                          "calibrated": {k: report[k] for k in ("split", "samples", "seed",
                                                                "temperatures")}}
    write_json(path, config)


def format_report(report: dict) -> str:
    """The report as a table: per type, each temperature's figures as shares of real."""
    lines = [f"form against the {report['split']} split's real tunes of each type, "
             f"{report['samples']} tunes per type and temperature (seeds from {report['seed']}); "
             "tonic endings, then bar repetition, window recurrence and phrase similarity as "
             "shares of real; * the temperature kept", ""]
    for row in report["rows"]:
        if not row["tried"]:
            lines.append(f"{row['type']}: {row['real_tunes']} real tunes (fewer than "
                         f"{report['min_real']}): not calibrated, keeps its temperature")
            continue
        real = row["real"]
        lines.append(f"{row['type']} ({row['real_tunes']} real; tonic {real['tonic_ending']:.3f})")
        for tried in row["tried"]:
            g = tried["generated"]
            shares = ", ".join(f"{g[k] / real[k]:.2f}" if real[k] else "-" for k in REPETITION)
            mark = "*" if tried["temperature"] == row["temperature"] else " "
            lines.append(f"  {mark} {tried['temperature']:<5g} tonic {g['tonic_ending']:.3f}; "
                         f"{shares}; distance {tried['distance']:.3f}")
    return "\n".join(lines)

