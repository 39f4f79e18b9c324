"""The sampler and the trainer beyond the default dual GRU in fp32: joint and LSTM models,
bf16 training, and compose_many over several batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from composer import sample
from composer.sample import Composer, ComposeRequest, SamplingOptions
from composer.train import TrainConfig, train
from composer.trainstep import TrainError, autocast_for


def _train(tmp_path_factory, data: str, name: str, **overrides) -> str:
    out = tmp_path_factory.mktemp("variant") / name
    settings = dict(data=data, out=str(out), hidden=16, epochs=1, batch_size=8, lr=1e-2,
                    dropout=0.0, seed=0, device="cpu", precision="fp32")
    train(TrainConfig(**{**settings, **overrides}), log=lambda _msg: None)
    return str(out)


@pytest.fixture(scope="module", params=[("joint", "gru"), ("dual", "lstm"), ("joint", "lstm")],
                ids=lambda p: "-".join(p))
def variant_dir(request, tmp_path_factory, tiny_dataset_path) -> str:
    arch, cell = request.param
    return _train(tmp_path_factory, tiny_dataset_path, f"{arch}-{cell}", arch=arch, cell=cell)


def test_composer_composes_continues_and_scores_with_each_arch_and_cell(variant_dir, tiny_tunes):
    c = Composer.load(variant_dir)
    config = json.loads((Path(variant_dir) / "config.json").read_text())
    assert (c.cfg.arch, c.cfg.cell) == (config["model"]["arch"],
                                                          config["model"]["cell"])
    for best_of in (1, 3):
        comp = c.compose(ComposeRequest(bars=4, meter="6/8", tune_type="jig",
                                        sampling=SamplingOptions(seed=2, best_of=best_of)))
        assert comp.melody.complete_bars() == 4
        # the bits reported while sampling are the ones scoring the finished tune gives
        assert c.score(comp.melody).bits_per_note == pytest.approx(comp.bits_per_note, abs=1e-4)
    fragment = next(t for t in tiny_tunes if str(t.meter) == "4/4" and not t.pickup)
    cont = c.continue_melody(fragment, bars=2, sampling=SamplingOptions(seed=1))
    assert cont.melody.notes[:len(fragment.notes)] == fragment.notes
    assert cont.melody.complete_bars() == fragment.complete_bars() + 2


def test_compose_many_over_several_batches(tiny_model_dir, monkeypatch):
    c = Composer.load(tiny_model_dir)
    req = ComposeRequest(bars=2, meter="3/4", sampling=SamplingOptions(seed=7, best_of=2))
    monkeypatch.setattr(sample, "_MAX_ROWS", 4)  # two tunes (of best-of-2) per batch
    tunes = c.compose_many(req, 5)  # three batches: 2 + 2 + 1 tunes
    assert len(tunes) == 5 and all(t.melody.complete_bars() == 2 for t in tunes)
    assert len({tuple(t.melody.notes) for t in tunes}) == 5  # later batches get their own seeds
    # the first batch is the one a request for two tunes samples, and it is repeatable
    assert [t.melody.notes for t in c.compose_many(req, 2)] == [t.melody.notes for t in tunes[:2]]
    assert [t.melody.notes for t in c.compose_many(req, 5)] == [t.melody.notes for t in tunes]


def test_autocast_picks_bf16_only_where_asked_or_where_it_pays(monkeypatch):
    cpu = torch.device("cpu")
    assert autocast_for("fp32", cpu)().__class__.__name__ == "nullcontext"
    with autocast_for("bf16", cpu)():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    monkeypatch.setattr("composer.trainstep._cpu_has_bf16", lambda: True)
    with autocast_for("auto", cpu, hidden=256)():
        assert torch.is_autocast_enabled("cpu")
    with autocast_for("auto", cpu, hidden=32)():  # too narrow to gain
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setattr("composer.trainstep._cpu_has_bf16", lambda: False)
    with autocast_for("auto", cpu, hidden=256)():
        assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(TrainError, match="unknown precision 'fp8'"):
        autocast_for("fp8", cpu)


def test_bf16_training_learns_like_fp32(tmp_path_factory, tiny_dataset_path):
    runs = {p: _train(tmp_path_factory, tiny_dataset_path, p, precision=p, epochs=2)
            for p in ("fp32", "bf16")}
    results = {p: json.loads((Path(d) / "config.json").read_text()) for p, d in runs.items()}
    assert results["bf16"]["train"]["precision"] == "bf16"
    fp32, bf16 = (results[p]["metrics"]["valid_total"] for p in ("fp32", "bf16"))
    assert abs(bf16 - fp32) < 0.05 * fp32, (fp32, bf16)
    # a bf16-trained model is saved in fp32 and samples like any other
    comp = Composer.load(runs["bf16"]).compose(ComposeRequest(bars=2, sampling=SamplingOptions(seed=1)))
    assert comp.melody.complete_bars() == 2
