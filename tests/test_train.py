"""Training on the tiny dataset: learning, outputs, exact resume, errors, DDP with 2 processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from composer.checkpoint import load_model
from composer.dataset import Dataset
from composer.modelconfig import count_params
from composer.batches import Batches
from composer.train import TrainConfig, TrainError, train

QUIET = {"log": lambda _msg: None}


def tiny(data: str, out: Path, **kw) -> TrainConfig:
    base = dict(data=data, out=str(out), hidden=16, epochs=2, batch_size=8, lr=1e-2, seed=3,
                device="cpu", precision="fp32")
    return TrainConfig(**{**base, **kw})


def history(out) -> list[dict]:
    return [json.loads(line) for line in Path(out, "metrics.jsonl").read_text().splitlines()]


def resume_tensors(out) -> dict[str, np.ndarray]:
    state = json.loads(Path(out, "resume", "state.json").read_text())
    return load_file(str(Path(out, "resume", state["tensors"])))


def test_tiny_model_learns_and_writes_its_outputs(tiny_model_dir):
    lines = history(tiny_model_dir)
    assert [h["epoch"] for h in lines] == list(range(1, len(lines) + 1))
    assert lines[-1]["valid_total"] < lines[0]["valid_total"] - 1.0
    assert lines[-1]["train_total"] < lines[0]["train_total"] - 1.0
    for h in lines:
        assert h["train_total"] == pytest.approx(h["train_rhythm"] + h["train_pitch"])
        assert h["notes_per_s"] > 0 and h["seconds"] > 0
    png = Path(tiny_model_dir, "training.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = load_model(tiny_model_dir)
    cfg = loaded.config
    assert cfg["data"]["sha256"] and cfg["train"]["hidden"] == 32
    assert cfg["metrics"]["valid_total"] == min(h["valid_total"] for h in lines)
    assert cfg["training"]["stopped"] in ("epochs", "early stop")


def test_buckets_cover_every_window_once_with_little_padding(tiny_dataset_path):
    ds = Dataset.load(tiny_dataset_path)
    data = Batches(ds, ds.indices("train"), window=40)
    assert data.length.max() <= 40
    assert data.length.sum() == sum(ds.lengths()[ds.indices("train")] + 1)
    plan = data.plan(8, seed=0, epoch=0)
    assert sorted(np.concatenate(plan).tolist()) == list(range(len(data)))
    padded = sum(len(b) * data.length[b].max() for b in plan)
    assert padded < 1.3 * data.length.sum()
    assert [b.tolist() for b in plan] == [b.tolist() for b in data.plan(8, seed=0, epoch=0)]
    assert [b.tolist() for b in plan] != [b.tolist() for b in data.plan(8, seed=0, epoch=1)]
    # two processes: disjoint shares of the same plan, equally many batches each
    shares = [data.plan(8, 0, 0, rank=r, world_size=2) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1])
    assert not set(np.concatenate(shares[0])) & set(np.concatenate(shares[1]))


def test_type_balance_moves_the_types_toward_equal_shares_of_an_epoch(tiny_dataset_path):
    ds = Dataset.load(tiny_dataset_path)
    data = Batches(ds, ds.indices("train"), window=40)
    types = data.labels[:, 3]
    counts = np.bincount(types)
    assert (counts > 0).sum() >= 2 and counts.max() > counts[counts > 0].min()  # uneven types
    assert np.allclose(data.type_copies(0.0), 1.0)
    for balance in (0.5, 1.0):
        copies = data.type_copies(balance)
        assert copies.sum() == pytest.approx(len(data))  # an epoch as long as before
        share = np.array([copies[types == t].sum() for t in range(len(counts)) if counts[t]])
        natural = counts[counts > 0]
        assert np.ptp(share) < np.ptp(natural)  # the shares move toward equal ...
        ratio = copies.max() / copies.min()
        assert ratio <= 3.0 + 1e-9  # ... a rare type at most 3x as often
        if balance == 1.0 and natural.max() / natural.min() <= 3.0:
            assert share == pytest.approx(np.full(len(share), share.mean()))
    copies = data.type_copies(1.0)
    seen = np.zeros(len(data))
    for epoch in range(200):
        plan = data.plan(8, seed=0, epoch=epoch, copies=copies)
        seen += np.bincount(np.concatenate(plan), minlength=len(data))
        if epoch == 0:
            assert [b.tolist() for b in plan] == [b.tolist() for b in data.plan(8, 0, 0, copies=copies)]
    assert np.allclose(seen / 200, copies, atol=0.25)  # each item as often as asked, on average


def test_resume_after_one_epoch_gives_identical_weights(tiny_dataset_path, tmp_path):
    straight = train(tiny(tiny_dataset_path, tmp_path / "a", epochs=2, dropout=0.2), **QUIET)
    train(tiny(tiny_dataset_path, tmp_path / "b", epochs=1, dropout=0.2), **QUIET)
    resumed = train(tiny(tiny_dataset_path, tmp_path / "b", epochs=2, resume=True), **QUIET)
    a, b = resume_tensors(tmp_path / "a"), resume_tensors(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert straight["valid_total"] == resumed["valid_total"]
    assert history(tmp_path / "a") == [dict(h, seconds=h2["seconds"], notes_per_s=h2["notes_per_s"],
                                            valid_seconds=h2["valid_seconds"])
                                       for h, h2 in zip(history(tmp_path / "b"),
                                                        history(tmp_path / "a"))]


def test_resume_refuses_a_state_file_that_lacks_a_counter(tiny_dataset_path, tmp_path):
    train(tiny(tiny_dataset_path, tmp_path, epochs=1), **QUIET)
    state = tmp_path / "resume" / "state.json"
    saved = json.loads(state.read_text())
    saved["lr_decays"] = saved.pop("lr_scale")  # as a renamed field would be
    state.write_text(json.dumps(saved))
    with pytest.raises(TrainError, match="lacks lr_scale"):
        train(tiny(tiny_dataset_path, tmp_path, epochs=2, resume=True), **QUIET)


def test_resume_mid_epoch_restores_the_data_position(tiny_dataset_path, tmp_path):
    train(tiny(tiny_dataset_path, tmp_path / "a", epochs=2), **QUIET)
    # a zero time budget stops after the first batch, in the middle of epoch 1
    first = train(tiny(tiny_dataset_path, tmp_path / "b", epochs=2, max_minutes=0), **QUIET)
    assert first["stopped"] == "time budget" and first["steps"] == 1
    train(tiny(tiny_dataset_path, tmp_path / "b", epochs=2, resume=True), **QUIET)
    a, b = resume_tensors(tmp_path / "a"), resume_tensors(tmp_path / "b")
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_ctrl_c_between_batches_resumes_with_the_epoch_so_far(tiny_dataset_path, tmp_path,
                                                               monkeypatch):
    train(tiny(tiny_dataset_path, tmp_path / "a", epochs=1), **QUIET)
    collate, calls = Batches.collate, []

    def interrupted(self, items, device):  # Ctrl-C as the third batch is read
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return collate(self, items, device)

    monkeypatch.setattr(Batches, "collate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(tiny_dataset_path, tmp_path / "b", epochs=1), **QUIET)
    monkeypatch.setattr(Batches, "collate", collate)
    train(tiny(tiny_dataset_path, tmp_path / "b", epochs=1, resume=True), **QUIET)
    a, b = history(tmp_path / "a"), history(tmp_path / "b")
    # the two batches before the interrupt count in the epoch's training loss
    assert [h["train_total"] for h in a] == pytest.approx([h["train_total"] for h in b], rel=1e-12)
    ra, rb = resume_tensors(tmp_path / "a"), resume_tensors(tmp_path / "b")
    for k in ra:
        assert np.array_equal(ra[k], rb[k]), k


def test_checkpoints_within_an_epoch_do_not_change_training(tiny_dataset_path, tmp_path):
    train(tiny(tiny_dataset_path, tmp_path / "a", epochs=1), **QUIET)
    train(tiny(tiny_dataset_path, tmp_path / "b", epochs=1, checkpoint_minutes=0), **QUIET)
    a, b = resume_tensors(tmp_path / "a"), resume_tensors(tmp_path / "b")
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert len(list((tmp_path / "b" / "resume").iterdir())) == 2  # state.json + one tensor file


def test_joint_model_trains_with_a_matched_budget(tiny_dataset_path, tmp_path):
    result = train(tiny(tiny_dataset_path, tmp_path / "j", arch="joint", hidden=32, epochs=1),
                   **QUIET)
    loaded = load_model(tmp_path / "j")
    dual = count_params(type(loaded.cfg)(**{**loaded.cfg.to_dict(), "arch": "dual", "hidden": 32}))
    assert loaded.cfg.arch == "joint"
    assert abs(result["params"] - dual) <= 0.05 * dual
    assert result["valid_total"] == pytest.approx(result["valid_rhythm"] + result["valid_pitch"])


def test_bad_runs_are_refused(tiny_dataset_path, tmp_path):
    with pytest.raises(TrainError, match="nothing to resume"):
        train(tiny(tiny_dataset_path, tmp_path / "r", resume=True), **QUIET)
    train(tiny(tiny_dataset_path, tmp_path / "r", epochs=1), **QUIET)
    with pytest.raises(TrainError, match="--resume"):
        train(tiny(tiny_dataset_path, tmp_path / "r", epochs=1), **QUIET)
    other = tmp_path / "other.npz"
    other.write_bytes(Path(tiny_dataset_path).read_bytes() + b"")
    ds = Dataset.load(other)
    ds.split[:] = 0
    ds.save(other)
    with pytest.raises(TrainError, match="not the data file"):
        train(tiny(str(other), tmp_path / "r", epochs=2, resume=True), **QUIET)
    # a damaged resume checkpoint is named in the error
    state = tmp_path / "r" / "resume" / json.loads(
        (tmp_path / "r" / "resume" / "state.json").read_text())["tensors"]
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(ValueError, match=state.name):
        train(tiny(tiny_dataset_path, tmp_path / "r", epochs=2, resume=True), **QUIET)


def test_cli_reports_bad_input_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "composer", "train", "--data",
                           str(tmp_path / "missing.npz"), "--out", str(tmp_path / "m")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and "missing.npz" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ddp_with_two_processes_on_cpu(tiny_dataset_path, tmp_path):
    out = tmp_path / "ddp"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "composer", "train", "--data", tiny_dataset_path, "--out", str(out),
         "--hidden", "16", "--epochs", "3", "--batch-size", "4", "--lr", "0.01",
         "--device", "cpu", "--precision", "fp32", "--threads", "1", "--json"],
        capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == 1  # rank 0 alone reports and writes
    assert "2 process(es)" in proc.stderr
    lines = history(out)
    assert len(lines) == 3 and lines[-1]["valid_total"] < lines[0]["valid_total"]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.jsonl",
                                                     "model.safetensors", "resume", "similar.npz",
                                                     "training.png"]  # similar: the known tunes
    assert len(list((out / "resume").glob("state-*.safetensors"))) == 1
    assert load_model(out).config["train"]["world_size"] == 2
