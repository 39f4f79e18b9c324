"""Evaluation: Markov baseline, model bits/note, vocabulary mismatch, distribution metrics, CLI."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from composer.checkpoint import save_model
from composer.cli import app
from composer.dataset import Dataset
from composer.encoding import Vocab, build_duration_vocab, count_durations, encode
from composer.conform import conform, map_label
from composer.distributions import distribution_similarity
from composer.evaluate import METRIC_KEYS, evaluate, evaluate_model
from composer.markov import MarkovModel, Steps
from composer.model import build_model
from composer.modelconfig import ModelConfig
from composer.music import Melody, Meter, Note

from conftest import make_tunes


def dataset_of(tunes: list[Melody], pitch_low: int = 36, pitch_high: int = 96) -> Dataset:
    """Like conftest.build_dataset, with a chosen pitch range; tune i%10 == 9 is test."""
    vocab = Vocab(durations=build_duration_vocab(count_durations(tunes), min_count=1),
                  meters=sorted({str(t.meter) for t in tunes}),
                  modes=sorted({t.mode for t in tunes}),
                  styles=sorted({t.style for t in tunes}),
                  types=sorted({t.tune_type or "other" for t in tunes}), pitch_low=pitch_low,
                  pitch_high=pitch_high)
    split = [0 if i % 10 < 8 else (1 if i % 10 == 8 else 2) for i in range(len(tunes))]
    return Dataset.from_tunes([encode(t, vocab) for t in tunes], vocab, split)


def uniform_bits(ds: Dataset, res: dict) -> float:
    """Bits/note of a uniform guess over END + durations and REST + pitches."""
    v = ds.vocab
    return (math.log2(len(v.durations) + 1)
            + math.log2(v.pitch_high - v.pitch_low + 2) * res["notes"] / res["events"])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_dataset_path) -> str:
    """An untrained small model with the tiny dataset's vocabulary (evaluation needs no skill)."""
    import torch

    torch.manual_seed(0)
    v = Dataset.load(tiny_dataset_path).vocab
    cfg = ModelConfig(n_durations=v.n_durations, n_pitches=v.n_pitches, n_positions=v.n_positions,
                      n_meters=len(v.meters), n_modes=len(v.modes), n_styles=len(v.styles),
                      n_types=len(v.types), hidden=16, layers=1)
    path = tmp_path_factory.mktemp("model") / "m"
    save_model(path, build_model(cfg), cfg, v)
    return str(path)


# --- Markov baseline ---------------------------------------------------------------------------
def test_markov_bits_are_finite_and_beat_uniform(tiny_dataset_path):
    ds = Dataset.load(tiny_dataset_path)
    model = MarkovModel.fit(ds)
    assert 1 <= model.order <= 4
    train = model.evaluate(ds, "train")
    assert train["bits_per_note"] < uniform_bits(ds, train) - 1.0
    assert train["bits_per_note"] == pytest.approx(train["rhythm_bits"] + train["pitch_bits"])
    assert train["tunes"] == len(ds.indices("train"))
    assert train["notes"] == int(ds.lengths()[ds.indices("train")].sum())
    assert train["events"] == train["notes"] + train["tunes"]
    test = model.evaluate(ds, "test")
    assert all(math.isfinite(test[k]) for k in METRIC_KEYS)
    assert 0 < test["duration_accuracy"] <= 1 and 0 < test["pitch_accuracy"] <= 1


def test_markov_distributions_sum_to_one(tiny_dataset_path):
    ds = Dataset.load(tiny_dataset_path)
    model = MarkovModel(ds, ds.indices("train"), max_order=3)
    steps = Steps.from_dataset(ds, ds.indices("test"))
    hist, pitch = model._levels(steps, 3)
    for top in range(4):
        assert np.allclose(model.rhythm.dist(hist, top).sum(1), 1)
        assert np.allclose(model.pitch.dist(pitch, top + 1).sum(1), 1)


def test_unseen_notes_get_finite_bits():
    tunes = make_tunes(20, seed=3)
    # the test tune (index 9) holds a pitch and a duration no training tune has
    odd = tunes[9]
    tunes[9] = Melody(odd.notes + [Note(odd.notes[-1].pitch + 23, 9), Note(None, 15)],
                      odd.meter, odd.tonic, odd.mode, odd.pickup, style=odd.style)
    ds = dataset_of(tunes)
    res = MarkovModel.fit(ds).evaluate(ds, "test")
    assert math.isfinite(res["bits_per_note"]) and res["bits_per_note"] < 40


def repetitive_tunes(n: int = 30) -> list[Melody]:
    """Every other note is C; what follows C is fixed by the note before that C."""
    cycle = [60, 62, 60, 64, 60, 65, 60, 67]
    rng = random.Random(1)
    out = []
    for _ in range(n):
        k = rng.randrange(len(cycle))
        pitches = (cycle * 8)[k:k + 48]
        out.append(Melody([Note(p, 12) for p in pitches], Meter(4, 4), style="s"))
    return out


def test_higher_order_helps_on_repetitive_data():
    ds = dataset_of(repetitive_tunes())
    model = MarkovModel(ds, ds.indices("train"), max_order=4)
    steps = Steps.from_dataset(ds, ds.indices("test"))
    by_order = {k: model.evaluate_steps(steps, k)["pitch_bits"] for k in (1, 2, 3)}
    assert by_order[2] < by_order[1] - 0.5
    assert by_order[3] < by_order[1] - 0.5
    assert MarkovModel.fit(ds).order >= 2


# --- model evaluation --------------------------------------------------------------------------
def test_model_bits_do_not_depend_on_batching(model_dir, tiny_dataset_path):
    from composer.checkpoint import load_model

    loaded = load_model(model_dir)
    ds = Dataset.load(tiny_dataset_path)
    idx = ds.indices("all")
    big = evaluate_model(loaded.model, ds, idx, batch_size=len(idx))
    small = evaluate_model(loaded.model, ds, idx, batch_size=7)
    assert big["bits_per_note"] == pytest.approx(small["bits_per_note"], rel=1e-5)
    assert big["pitch_accuracy"] == small["pitch_accuracy"]
    assert big["notes"] == ds.n_notes and big["events"] == ds.n_notes + len(ds)


def test_evaluate_json_has_model_and_markov(model_dir, tiny_dataset_path):
    result = CliRunner().invoke(app, ["evaluate", model_dir, "--data", tiny_dataset_path,
                                      "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    ds = Dataset.load(tiny_dataset_path)
    for key in ("model", "markov"):
        for metric in METRIC_KEYS:
            assert math.isfinite(report[key][metric])
        assert report[key]["tunes"] == len(ds.indices("test"))
    assert report["model"]["notes"] == report["markov"]["notes"]
    assert report["model"]["events"] == report["markov"]["events"]
    # an untrained model is near uniform; the Markov model is well below that
    assert report["markov"]["bits_per_note"] < report["model"]["bits_per_note"]


def test_evaluate_table_and_no_baseline(model_dir, tiny_dataset_path):
    result = CliRunner().invoke(app, ["evaluate", model_dir, "--data", tiny_dataset_path,
                                      "--split", "valid", "--baseline", "none"])
    assert result.exit_code == 0, result.output
    assert "bits/note" in result.stdout and "markov" not in result.stdout
    report = evaluate(model_dir, tiny_dataset_path, split="all", baseline="none")
    assert report["markov"] is None and report["model"]["tunes"] == 60


@pytest.mark.parametrize("args, message", [
    (["--split", "dev"], "unknown split"),
    (["--baseline", "lstm"], "unknown baseline"),
])
def test_evaluate_bad_options_exit_2(model_dir, tiny_dataset_path, args, message):
    result = CliRunner().invoke(app, ["evaluate", model_dir, "--data", tiny_dataset_path, *args])
    assert result.exit_code == 2 and message in result.output


def test_evaluate_missing_files_exit_2(model_dir, tiny_dataset_path, tmp_path):
    for argv in (["evaluate", model_dir, "--data", str(tmp_path / "none.npz")],
                 ["evaluate", str(tmp_path / "nomodel"), "--data", tiny_dataset_path]):
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 2, result.output
        assert "error:" in result.output and "Traceback" not in result.output


# --- a dataset in another vocabulary -----------------------------------------------------------
def test_vocabulary_mismatch_is_snapped_and_counted(model_dir, tiny_dataset_path, tmp_path):
    tunes = make_tunes(20, seed=7)
    # test tunes (i % 10 == 9): a quintuplet-like duration, a pitch far above the model's range,
    # a meter and a style the model does not know
    for i in (9, 19):
        t = tunes[i]
        notes = list(t.notes)
        notes[0] = Note(100 + t.tonic, notes[0].duration)
        notes[1:3] = [Note(notes[1].pitch, 5), Note(notes[2].pitch, notes[1].duration
                                                     + notes[2].duration - 5)]
        tunes[i] = Melody(notes, Meter(2, 2) if i == 9 else t.meter, t.tonic, t.mode, t.pickup,
                          style="reels")
    path = tmp_path / "other.npz"
    dataset_of(tunes, pitch_low=30, pitch_high=110).save(path)
    report = evaluate(model_dir, path, split="test")
    data = report["data"]
    assert data["snapped_notes"] >= 4 and data["snapped_tunes"] == 2
    assert data["unknown_labels"]["style"] == {"reels": 2}
    assert data["unknown_labels"]["meter"] == {"2/2": 1}
    assert data["skipped_tunes"] == 0
    assert report["model"]["tunes"] == 2 and math.isfinite(report["model"]["bits_per_note"])
    assert report["model"]["notes"] == report["markov"]["notes"]


def test_conform_keeps_bars_and_maps_labels(tiny_dataset_path):
    ds = dataset_of(make_tunes(10, seed=2), pitch_low=30, pitch_high=110)
    model_vocab = Dataset.load(tiny_dataset_path).vocab
    out = conform(ds, model_vocab, ds.indices("all"))
    for i in range(len(ds)):
        a, b = ds.tune(i), out.dataset.tune(i)
        assert (a.positions == b.positions).all() and a.end_position == b.end_position
    assert map_label(["3/4", "4/4", "6/8"], "meter", "2/2") == "4/4"
    assert map_label(["3/4", "4/4", "6/8"], "meter", "3/8") in ("3/4", "6/8")
    assert map_label(["airs", "jigs"], "style", "reels") == "airs"
    assert map_label(["default", "jigs"], "style", "reels") == "default"


# --- distribution similarity -------------------------------------------------------------------
def test_similar_sets_overlap_and_different_sets_do_not():
    a, b = make_tunes(120, seed=11), make_tunes(120, seed=12)
    same = distribution_similarity(a, b)
    assert set(same) == {"pitch_class_histogram", "interval_histogram", "duration_histogram",
                         "pitch_range", "notes_per_bar"}
    for feature, r in same.items():
        assert r["overlap"] > 0.85, feature
        assert 0 <= r["kl"] < 0.1, feature
    rng = random.Random(0)
    leaps = [Melody([Note(60 + rng.choice([0, 6, 13, -11]), rng.choice([3, 96]))
                     for _ in range(30)], Meter(3, 4)) for _ in range(120)]
    other = distribution_similarity(leaps, b)
    for feature in ("pitch_class_histogram", "interval_histogram", "duration_histogram"):
        assert other[feature]["overlap"] < 0.5, feature
        assert other[feature]["kl"] > 1.0, feature
        assert other[feature]["inter"] > same[feature]["inter"]


def test_similarity_of_a_set_with_itself_is_near_one():
    # not exactly 1: the inter-set distances include each tune's zero distance to itself
    a = make_tunes(40, seed=4)
    for r in distribution_similarity(a, a).values():
        assert r["overlap"] > 0.95 and r["kl"] < 0.05
        assert r["inter"] == pytest.approx(r["intra_reference"] * (1 - 1 / len(a)))


def test_detect_key_finds_an_obvious_key():
    from composer.evaluate import detect_key

    arpeggio = [Note(p, 12) for p in [62, 66, 69, 74, 69, 66, 62, 61, 62, 64, 66, 62] * 2]
    assert detect_key(arpeggio) == "2 major"  # D major: pitch class 2
    assert detect_key([Note(None, 24)]) is None


def test_split_at_bar_respects_pickup():
    m = Melody([Note(60, 24)] + [Note(62, 24)] * 12, Meter(3, 4), pickup=24)
    first, rest = m.split_at_bar(2)
    assert len(first) == 7 and len(rest) == 6


# --- generated tunes -------------------------------------------------------------------------
def test_generated_tunes_follow_their_templates(model_dir, tiny_dataset_path):
    from composer.checkpoint import load_model
    from composer.evaluate import generate_like, pick_templates
    from composer.sample import Composer

    ds = Dataset.load(tiny_dataset_path)
    templates = pick_templates(ds, ds.indices("test"), 8, seed=1)
    assert len(templates) == 8  # all 6 test tunes, then again in a new order
    generated, counts = generate_like(Composer(load_model(model_dir)), templates, seed=3)
    assert counts["requested_bars_exact"] == 1.0 and counts["requests"] == 8
    for t, g in zip(templates, generated):
        assert (str(g.meter), g.tonic, g.mode, g.style) == (str(t.meter), t.tonic, t.mode, t.style)
        assert g.complete_bars() == t.complete_bars() and g.pickup == t.pickup


def test_evaluate_samples_and_continuations(model_dir, tiny_dataset_path):
    result = CliRunner().invoke(app, ["evaluate", model_dir, "--data", tiny_dataset_path,
                                      "--baseline", "none", "--samples", "5",
                                      "--continuations", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    s = report["samples"]
    assert s["requests"] == 5 and s["reference_tunes"] == 5 and s["requested_bars_exact"] == 1.0
    for r in s["features"].values():
        assert 0 <= r["overlap"] <= 1.0001 and r["kl"] >= 0
    c = report["continuations"]
    assert c["tunes"] == 3
    assert 0 <= c["continuation_key_match"] <= 1 and 0 <= c["real_key_match"] <= 1


def test_bits_match_what_training_reported(tiny_model_dir, tiny_dataset_path):
    config = json.loads((Path(tiny_model_dir) / "config.json").read_text())
    report = evaluate(tiny_model_dir, tiny_dataset_path, split="valid", baseline="none")
    m = config["metrics"]
    assert report["model"]["bits_per_note"] == pytest.approx(m["valid_total"], rel=1e-4)
    assert report["model"]["rhythm_bits"] == pytest.approx(m["valid_rhythm"], rel=1e-4)
    assert report["model"]["pitch_bits"] == pytest.approx(m["valid_pitch"], rel=1e-4)
    assert report["data"]["trained_on_this_file"] is True
