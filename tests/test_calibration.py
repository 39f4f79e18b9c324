"""Each tune type's sampling temperature: chosen by the form of the tunes it gives, kept in the
model folder, used when no temperature is asked, and never over one that is."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from composer.calibration import calibrate, form_distance, save
from composer.dataset import Dataset
from composer.modelfiles import CheckpointError
from composer.requests import DEFAULT_TEMPERATURE, ComposeRequest, SamplingOptions
from composer.sample import Composer

from conftest import cli_fails, cli_ok

REAL = {"tonic_ending": 0.8, "bar_repeat": 0.3, "window_recur": 0.2, "phrase_sim": 0.5}


def test_form_distance_counts_too_much_repetition_as_too_little_and_only_missing_tonics():
    assert form_distance(dict(REAL), REAL) == 0.0
    double = {**REAL, "bar_repeat": 0.6, "window_recur": 0.4, "phrase_sim": 1.0}
    half = {**REAL, "bar_repeat": 0.15, "window_recur": 0.1, "phrase_sim": 0.25}
    assert form_distance(double, REAL) == pytest.approx(math.log(2))
    assert form_distance(half, REAL) == pytest.approx(math.log(2))
    assert form_distance({**REAL, "tonic_ending": 1.0}, REAL) == 0.0  # more tonic endings: no cost
    assert form_distance({**REAL, "tonic_ending": 0.4}, REAL) == pytest.approx(math.log(2))


@pytest.fixture()
def model_copy(tiny_model_dir, tmp_path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(tiny_model_dir, out)
    return out


def _tune(composer: Composer, temperature: float | None) -> list:
    """The notes of a seeded jig, after checking that it reports the temperature it drew at."""
    req = ComposeRequest(tune_type="jig", key="G",
                         sampling=SamplingOptions(seed=7, temperature=temperature))
    comp = composer.compose(req)
    assert comp.temperature == (temperature or composer.choices.temperature(None, "jig"))
    return [(n.pitch, n.duration) for n in comp.melody.notes]


def test_calibrate_keeps_the_temperature_whose_tunes_are_formed_most_like_real(model_copy,
                                                                             tiny_dataset_path):
    composer = Composer.load(model_copy)
    report = calibrate(composer, Dataset.load(tiny_dataset_path), split="all", types=["jig"],
                       temperatures=(0.5, 3.0), samples=4)
    [row] = report["rows"]
    assert row["real_tunes"] >= 20 and [t["temperature"] for t in row["tried"]] == [0.5, 3.0]
    for tried in row["tried"]:
        assert tried["distance"] == pytest.approx(form_distance(tried["generated"], row["real"]))
    best = min(row["tried"], key=lambda t: t["distance"])["temperature"]
    assert report["chosen"] == {"jig": best}
    save(model_copy, report)
    config = json.loads((model_copy / "config.json").read_text())
    assert config["sampling"]["temperature"] == {"jig": best}
    assert config["sampling"]["calibrated"]["split"] == "all"
    reloaded = Composer.load(model_copy)  # the weights' checksum still holds
    assert reloaded.choices.temperature(None, "jig") == best
    assert reloaded.choices.temperature(None, "reel") == DEFAULT_TEMPERATURE
    assert reloaded.options()["forms"]["jig"]["temperature"] == best


def test_calibrate_keeps_the_temperature_whose_tunes_are_formed_like_the_real_ones(
        model_copy, tiny_dataset_path, monkeypatch):
    """At 1.3 the 'composed' tunes are the real ones themselves (distance 0); at 0.7 and 2.0
    they are one bar over and over, or every note new."""
    from dataclasses import replace

    from composer import calibration
    from composer.music import Note

    def compose_like(composer, real, kind, samples, seed, sampling):
        t = sampling["temperature"]
        if t == 1.3:
            return list(real)
        if t == 0.7:
            return [replace(m, notes=[Note(60 + 7 * (i % 2), n.duration)
                                      for i, n in enumerate(m.notes)]) for m in real]
        return [replace(m, notes=[Note(48 + (5 * i) % 37, n.duration)
                                  for i, n in enumerate(m.notes)]) for m in real]

    monkeypatch.setattr(calibration, "compose_like", compose_like)
    report = calibrate(Composer.load(model_copy), Dataset.load(tiny_dataset_path), split="all",
                       types=["jig", "reel"], temperatures=(0.7, 1.3, 2.0), samples=4)
    assert report["chosen"] == {"jig": 1.3, "reel": 1.3}
    for row in report["rows"]:
        distances = {t["temperature"]: t["distance"] for t in row["tried"]}
        assert distances[1.3] == 0.0 and min(distances[0.7], distances[2.0]) > 0.1


def test_calibrating_again_keeps_the_other_types_and_refuses_changed_weights(model_copy):
    report = {"chosen": {"jig": 1.1}, "split": "train", "samples": 3, "seed": 1,
              "temperatures": [1.1],
              "weights_sha256": json.loads((model_copy / "config.json").read_text())["weights_sha256"]}
    save(model_copy, report)
    save(model_copy, {**report, "chosen": {"reel": 0.8}})
    config = json.loads((model_copy / "config.json").read_text())
    assert config["sampling"]["temperature"] == {"jig": 1.1, "reel": 0.8}
    with pytest.raises(CheckpointError, match="weights changed"):
        save(model_copy, {**report, "weights_sha256": "0" * 64})
    assert json.loads((model_copy / "config.json").read_text()) == config


def test_a_type_draws_at_its_temperature_unless_one_is_asked(model_copy):
    config = json.loads((model_copy / "config.json").read_text())
    config["sampling"] = {"temperature": {"jig": 2.5}}
    (model_copy / "config.json").write_text(json.dumps(config))
    composer = Composer.load(model_copy)
    assert _tune(composer, None) == _tune(composer, 2.5)
    assert _tune(composer, 0.9) != _tune(composer, 2.5)
    # a model with no calibration draws every type at the default
    del config["sampling"]
    (model_copy / "config.json").write_text(json.dumps(config))
    assert _tune(Composer.load(model_copy), None) == _tune(composer, DEFAULT_TEMPERATURE)


@pytest.mark.parametrize("section", [{"temperature": {"jig": 0}}, {"temperature": {"jig": "hot"}},
                                     {"temperature": {"polka": 1.0}}, {"temperature": [1.0]},
                                     {"temperature": 0}, "hot", [1.0]])
def test_a_bad_sampling_section_is_refused_in_words(model_copy, section):
    config = json.loads((model_copy / "config.json").read_text())
    config["sampling"] = section
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="invalid sampling section"):
        Composer.load(model_copy)
    cli_fails(["compose", "--model", model_copy, "--bars", 4, "-o", "-"], "invalid sampling section")


def test_calibrate_command_writes_the_choice_and_dry_run_does_not(model_copy, tiny_dataset_path):
    before = (model_copy / "config.json").read_bytes()
    args = ["calibrate", model_copy, "--data", tiny_dataset_path, "--split", "all", "--types", "jig",
            "--temperatures", "0.6,1.4", "--samples", 3]
    out = cli_ok([*args, "--dry-run", "--json"]).stdout
    chosen = json.loads(out)["chosen"]["jig"]
    assert chosen in (0.6, 1.4)
    assert (model_copy / "config.json").read_bytes() == before
    result = cli_ok(args)
    assert "jig" in result.stdout and "*" in result.stdout
    # a jig composed now says, with its seed, the temperature it was drawn at
    composed = cli_ok(["compose", "--model", model_copy, "--type", "jig", "--seed", 3, "-o", "-"])
    assert f"seed 3, temperature {chosen:g};" in composed.stderr
    assert json.loads((model_copy / "config.json").read_text())["sampling"]["temperature"] == {"jig": chosen}


@pytest.mark.parametrize("extra,needle", [
    (["--temperatures", "0,1"], "--temperatures"), (["--temperatures", "warm"], "--temperatures"),
    (["--split", "dev"], "unknown split"), (["--types", "jog"], "unknown tune type"),
])
def test_calibrate_command_errors_are_one_line(model_copy, tiny_dataset_path, extra, needle):
    cli_fails(["calibrate", model_copy, "--data", tiny_dataset_path, "--samples", 1, *extra], needle)
