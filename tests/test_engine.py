"""The numpy engine computes the torch model: the same log-probabilities step by step and over
whole tunes, on random checkpoints of every shape it runs and on the shipped model, and the
same tunes for the same seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from composer.checkpoint import save_model
from composer.encoding import Vocab
from composer.engine import Engine, supports
from composer.formfeatures import CLOSES_SIZE, feature_sizes
from composer.model import build_model
from composer.modelconfig import ModelConfig, form_keys, label_keys, reads_closes
from composer.modelfiles import CheckpointError, read_weights
from composer.sample import Composer, ComposeRequest, SamplingOptions
from composer.torchnet import TorchNet

VOCAB = Vocab(durations=[6, 12, 18, 24, 36, 48, 72], meters=["6/8", "4/4"], modes=["major", "minor"],
              styles=["a", "b", "c"], types=["jig", "reel", "other"], pitch_low=50, pitch_high=80)


def _random_checkpoint(folder, form: str, layers: int, hidden: int, seed: int) -> str:
    cfg = ModelConfig(n_durations=VOCAB.n_durations, n_pitches=VOCAB.n_pitches,
                      n_positions=VOCAB.n_positions, n_meters=2, n_modes=2, n_styles=3, n_types=3,
                      form=form, hidden=hidden, layers=layers)
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():  # weights well away from zero, so that any slip shows
        for p in model.parameters():
            p.normal_(0, 0.4)
    save_model(folder, model, cfg, VOCAB)
    return str(folder)


def _random_steps(cfg: ModelConfig, rng, n: int) -> dict[str, np.ndarray]:
    sizes = feature_sizes(cfg.n_pitches, cfg.n_durations)
    steps = {"dur_in": rng.integers(3, cfg.n_durations, n), "pitch_in": rng.integers(2, cfg.n_pitches, n),
             "pos_in": rng.integers(0, 96, n), "pos_out": rng.integers(0, 96, n),
             "dur_out": rng.integers(3, cfg.n_durations, n)}
    steps.update({k: rng.integers(0, sizes[k], n) for k in form_keys(cfg)})
    if reads_closes(cfg):
        steps["closes"] = rng.integers(0, CLOSES_SIZE, n)
    return steps


@pytest.mark.parametrize("form,layers,hidden", [("none", 1, 8), ("position", 2, 16),
                                                ("lookback", 3, 12), ("cadence", 2, 20)])
def test_engine_log_probabilities_equal_the_torch_model(tmp_path, form, layers, hidden):
    folder = _random_checkpoint(tmp_path / "m", form, layers, hidden, seed=layers)
    weights = read_weights(folder)
    engine, torchnet = Engine(weights), TorchNet(Composer.load(folder, engine="torch").net.model)
    cfg, rng = weights.cfg, np.random.default_rng(hidden)
    labels = tuple(int(rng.integers(0, 2)) for _ in label_keys(cfg))
    steps = _random_steps(cfg, rng, 30)
    for a, b in zip(engine.read(steps, labels, 30)[:2], torchnet.read(steps, labels, 30)[:2]):
        logp = lambda x: x - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)) - x.max(1, keepdims=True)  # noqa: E731
        assert np.abs(logp(a) - logp(b)).max() < 1e-4
    # step by step on a batch, through a compaction
    rows = 5
    lab = np.tile(np.array(labels), (rows, 1))
    e, t = engine.batch(rows, lab), torchnet.batch(rows, lab)
    n_form = len(form_keys(cfg))
    for i in range(8):
        if i == 4:
            keep = np.array([0, 2, 3])
            e, t, rows, lab = e.select(keep), t.select(keep), 3, lab[keep]
        s = _random_steps(cfg, rng, rows)
        form_in = np.stack([s[k] for k in form_keys(cfg)], 1) if n_form else None
        args = (s["dur_in"], s["pitch_in"], s["pos_in"], s["pos_out"], form_in)
        assert np.allclose(e.rhythm(*args), t.rhythm(*args), atol=1e-4)
        closes = s.get("closes")
        assert np.allclose(e.melody(s["dur_out"], closes), t.melody(s["dur_out"], closes), atol=1e-4)


def test_the_shipped_model_runs_on_the_engine_and_gives_the_torch_tunes():
    numpy_path, torch_path = Composer.load(None), Composer.load(None, engine="torch")
    assert isinstance(numpy_path.net, Engine)
    same = 0
    for seed in range(10):
        req = ComposeRequest(bars=8, tune_type="jig", sampling=SamplingOptions(seed=seed))
        a, b = numpy_path.compose(req), torch_path.compose(req)
        same += a.melody.notes == b.melody.notes
        assert abs(numpy_path.score(a.melody).bits_per_note
                   - torch_path.score(a.melody).bits_per_note) < 1e-4
    assert same >= 9  # a float rounding may flip a rare draw


def test_models_the_engine_does_not_run_say_so_and_take_the_torch_path(tmp_path):
    cfg = ModelConfig(n_durations=VOCAB.n_durations, n_pitches=VOCAB.n_pitches,
                      n_positions=VOCAB.n_positions, n_meters=2, n_modes=2, n_styles=3, n_types=3,
                      arch="joint", hidden=8)
    save_model(tmp_path, build_model(cfg), cfg, VOCAB)
    assert "dual" in supports(cfg)
    with pytest.raises(CheckpointError, match="the numpy engine runs dual models"):
        Composer.load(tmp_path, engine="numpy")
    c = Composer.load(tmp_path)
    assert isinstance(c.net, TorchNet)
    assert c.compose(ComposeRequest(bars=2, meter="6/8", sampling=SamplingOptions(seed=1))
                     ).melody.complete_bars() == 2
