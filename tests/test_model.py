"""The model's step-by-step API, its loss decomposition, parameter budgets, and safe checkpoints."""

import json
import math
import pickle
from dataclasses import replace

import pytest
import torch

from composer.checkpoint import load_model, save_model
from composer.modelfiles import CheckpointError, default_model_dir
from composer.encoding import END, PAD, Vocab
from composer.formfeatures import feature_sizes
from composer.model import build_model, nll_terms
from composer.modelconfig import ModelConfig, count_params, match_joint, step_keys, weight_shapes

VOCAB = Vocab(durations=[6, 12, 18, 24, 36, 48], meters=["3/4", "4/4", "6/8"],
              modes=["dorian", "major", "minor"], styles=["airs", "jigs"])


def config(**kw) -> ModelConfig:
    v = VOCAB
    return ModelConfig(n_durations=v.n_durations, n_pitches=v.n_pitches, n_positions=v.n_positions,
                       n_meters=len(v.meters), n_modes=len(v.modes), n_styles=len(v.styles),
                       hidden=16, **kw)


def random_batch(lengths: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    """A padded batch shaped like the trainer's: PAD after each row's end, END at its last step."""
    g = torch.Generator().manual_seed(seed)
    b, t = len(lengths), max(lengths)
    nd, npi = VOCAB.n_durations, VOCAB.n_pitches
    batch = {"dur_in": torch.randint(3, nd, (b, t), generator=g),
             "pitch_in": torch.randint(2, npi, (b, t), generator=g),
             "pos_in": torch.randint(0, 96, (b, t), generator=g),
             "pos_out": torch.randint(0, 96, (b, t), generator=g),
             "dur_out": torch.randint(3, nd, (b, t), generator=g),
             "pitch_out": torch.randint(2, npi, (b, t), generator=g),
             "meter": torch.tensor([i % 3 for i in range(b)]),
             "mode": torch.tensor([(i + 1) % 3 for i in range(b)]),
             "style": torch.tensor([i % 2 for i in range(b)]),
             "type": torch.tensor([0] * b),
             "lengths": torch.tensor(lengths)}
    for k, size in {**feature_sizes(npi, nd), "closes": 4}.items():  # form inputs, any values
        batch[k] = torch.randint(0, size, (b, t), generator=g)
    for i, n in enumerate(lengths):
        batch["dur_out"][i, n - 1], batch["pitch_out"][i, n - 1] = END, PAD
        for k in ("dur_in", "pitch_in", "pos_in", "pos_out", "dur_out", "pitch_out"):
            batch[k][i, n:] = PAD
    return batch


@pytest.mark.parametrize("arch,cell", [("dual", "gru"), ("dual", "lstm"), ("dual", "rnn"),
                                       ("joint", "gru"), ("joint", "lstm")])
def test_stepwise_logits_equal_full_sequence_forward(arch, cell):
    torch.manual_seed(0)
    model = build_model(config(arch=arch, cell=cell)).eval()
    batch = random_batch([9, 6, 3])
    with torch.no_grad():
        dur_full, pitch_full = model(batch)
        state = model.init_state(3)
        for t in range(9):
            step = {k: batch[k][:, t] if batch[k].dim() == 2 else batch[k]
                    for k in (*step_keys(model.cfg), "closes")}
            dur, state = model.rhythm_step(step, state)
            pitch, state = model.melody_step(step, batch["dur_out"][:, t], state)
            torch.testing.assert_close(dur.log_softmax(-1), dur_full[:, t].log_softmax(-1),
                                       atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(pitch.log_softmax(-1), pitch_full[:, t].log_softmax(-1),
                                       atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["dual", "joint"])
def test_prime_returns_the_state_after_each_rows_last_step(arch):
    """Priming ragged fragments in one pass, then stepping, matches the full forward."""
    torch.manual_seed(1)
    model = build_model(config(arch=arch, cell="lstm")).eval()
    full = random_batch([8, 8, 8], seed=3)
    cut = [5, 2, 7]
    fragment = {k: v[:, :max(cut)].clone() if v.dim() == 2 else v for k, v in full.items()}
    fragment["lengths"] = torch.tensor(cut)
    with torch.no_grad():
        dur_full, pitch_full = model(full)
        _, _, state = model.prime(fragment)
        for i, c in enumerate(cut):  # one more step for each row, from its own position
            row = torch.tensor([i])
            step = {k: full[k][row, c] if full[k].dim() == 2 else full[k][row]
                    for k in (*step_keys(model.cfg), "closes")}
            dur, s1 = model.rhythm_step(step, state.select(row))
            pitch, _ = model.melody_step(step, full["dur_out"][row, c], s1)
            torch.testing.assert_close(dur.log_softmax(-1)[0], dur_full[i, c].log_softmax(-1),
                                       atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(pitch.log_softmax(-1)[0], pitch_full[i, c].log_softmax(-1),
                                       atol=1e-5, rtol=1e-5)


def test_joint_loss_decomposes_into_rhythm_and_pitch():
    """rhythm + pitch nats of the joint model equal the cross-entropy of the joint classes."""
    torch.manual_seed(2)
    model = build_model(config(arch="joint")).eval()
    batch = random_batch([7, 4])
    with torch.no_grad():
        rhythm, pitch, events = model.nll(batch)
        out, _ = model.rhythm(model.inputs(batch))
        joint = model._joint(out)  # [B, T, n_dur, n_pitch] log-probabilities
    total = 0.0
    for i, n in enumerate([7, 4]):
        for t in range(n):
            d, p = batch["dur_out"][i, t], batch["pitch_out"][i, t]
            total -= (joint[i, t, d].logsumexp(-1) if p == PAD else joint[i, t, d, p]).item()
    assert events.item() == 11
    assert math.isclose(rhythm.item() + pitch.item(), total, rel_tol=1e-5)


def test_nll_ignores_padding_and_counts_end_as_an_event():
    model = build_model(config()).eval()
    batch = random_batch([5, 3])
    with torch.no_grad():
        dur, pitch = model(batch)
        r, p, n = nll_terms(batch, dur, pitch)
        # garbage logits on padded steps must not change the loss
        dur[1, 3:] += 100.0
        pitch[1, 3:] -= 100.0
        r2, p2, _ = nll_terms(batch, dur, pitch)
    assert n.item() == 8
    assert torch.equal(r, r2) and torch.equal(p, p2)


@pytest.mark.parametrize("hidden,cell", [(256, "gru"), (512, "gru"), (256, "lstm"), (32, "gru")])
def test_joint_and_dual_parameter_counts_match_within_5_percent(hidden, cell):
    dual = replace(config(cell=cell), hidden=hidden, n_durations=40)
    joint = match_joint(dual)
    assert joint.arch == "joint"
    assert abs(count_params(joint) - count_params(dual)) <= 0.05 * count_params(dual)


# --- checkpoints -------------------------------------------------------------------------------
@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    cfg = config()
    model = build_model(cfg).eval()
    save_model(tmp_path, model, cfg, VOCAB, {"metrics": {"valid_total": 3.0}})
    return tmp_path, model


def test_save_load_round_trip_gives_identical_logits(saved):
    folder, model = saved
    loaded = load_model(folder)
    batch = random_batch([6, 4])
    with torch.no_grad():
        for a, b in zip(model(batch), loaded.model(batch)):
            assert torch.equal(a, b)
    assert loaded.vocab.durations == VOCAB.durations
    assert loaded.config["metrics"] == {"valid_total": 3.0}
    assert not list(folder.glob(".*tmp"))  # atomic writes leave no temp files


_KILLED_SAVE = """
import os, signal, sys, torch
import composer.checkpoint as ck
sys.path.insert(0, {tests!r})
from test_model import VOCAB, config
where = sys.argv[2]
def dying(f, name):
    def wrapped(*a, **k):
        out = f(*a, **k)
        if name == where:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    return wrapped
ck.save_tensors = dying(ck.save_tensors, "after weights")
ck.write_json = dying(ck.write_json, "after config")
torch.manual_seed(1)
cfg = config()
ck.save_model(sys.argv[1], ck.build_model(cfg).eval(), cfg, VOCAB, {{"metrics": {{"valid_total": 2.0}}}})
"""


@pytest.mark.parametrize("where,survivor", [("after weights", "old"), ("after config", "new")])
def test_a_save_killed_midway_leaves_the_old_model_or_the_new_one(saved, where, survivor):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    folder, old = saved
    (folder / ".config.json.abc123.tmp").write_text("{")  # what a killed atomic write leaves
    script = _KILLED_SAVE.format(tests=str(Path(__file__).parent))
    run = subprocess.run([sys.executable, "-c", script, str(folder), where], capture_output=True)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    loaded = load_model(folder)  # loads, and the weights are those its config describes
    torch.manual_seed(1)
    new = build_model(config()).eval()
    want = old if survivor == "old" else new
    assert loaded.config["metrics"]["valid_total"] == (3.0 if survivor == "old" else 2.0)
    for k, v in want.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k
    assert not list(folder.glob(".*.tmp"))  # the save removed what the killed write left
    save_model(folder, new, config(), VOCAB)  # the next save completes the folder
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_truncated_weights_give_an_error_naming_the_file(saved):
    folder, _ = saved
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(folder)


def test_corrupted_weights_give_an_error_naming_the_file(saved):
    folder, _ = saved
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-10:] = b"\xff" * 10  # header still parses; the hash recorded in config.json does not
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(folder)
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(folder)


def test_truncated_or_missing_config_gives_an_error_naming_the_file(saved):
    folder, _ = saved
    path = folder / "config.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="config.json"):
        load_model(folder)
    path.unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        load_model(folder)


def test_tampered_config_is_a_clear_error(saved):
    folder, _ = saved
    path = folder / "config.json"
    config = json.loads(path.read_text())
    # vocabulary and model sizes changed together: the weights no longer fit
    config["vocab"]["durations"].append(96)
    config["model"]["n_durations"] += 1
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"does not match .*config implies"):
        load_model(folder)
    # vocabulary changed alone: it disagrees with the model config
    config["model"]["n_durations"] -= 1
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="vocabulary"):
        load_model(folder)


class _Boom:
    def __reduce__(self):
        return (print, ("pickle code ran",))


def test_pickle_files_are_refused(saved, tmp_path_factory):
    folder, model = saved
    # a weights file that is really a pickle
    (folder / "model.safetensors").write_bytes(pickle.dumps(_Boom(), protocol=4))
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(folder)
    # a torch.save file
    torch.save(model.state_dict(), folder / "model.safetensors")
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(folder)
    # a folder with only a model.pt
    other = tmp_path_factory.mktemp("pt")
    torch.save(model.state_dict(), other / "model.pt")
    with pytest.raises(CheckpointError, match="model.pt.*pickle"):
        load_model(other)


def test_missing_folder_and_default_dir():
    with pytest.raises(CheckpointError, match="not found"):
        load_model("/nonexistent/model")
    assert default_model_dir().name == "folk"
    assert default_model_dir().parent.name == "models"


@pytest.mark.parametrize("form", ["none", "position", "lookback", "cadence"])
@pytest.mark.parametrize("arch,cell,layers", [("dual", "gru", 2), ("dual", "lstm", 1),
                                              ("dual", "rnn", 3), ("joint", "gru", 2),
                                              ("joint", "lstm", 1)])
def test_count_params_from_config_matches_the_built_model(arch, cell, layers, form):
    cfg = ModelConfig(n_durations=11, n_pitches=23, n_positions=96, n_meters=3, n_modes=2,
                      n_styles=4, n_types=3, arch=arch, cell=cell, hidden=24, layers=layers,
                      form=form)
    assert count_params(cfg) == sum(p.numel() for p in build_model(cfg).parameters())
    assert weight_shapes(cfg) == {k: tuple(v.shape) for k, v in build_model(cfg).state_dict().items()}
