"""A training run killed with SIGKILL mid-epoch resumes, finishes, and leaves every file intact."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from composer.checkpoint import load_model
from composer.dataset import Dataset
from composer.train import TrainConfig, train

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

EPOCHS = 3
RUN = ["--hidden", "16", "--batch-size", "1", "--lr", "0.01", "--seed", "5", "--dropout", "0",
       "--device", "cpu", "--precision", "fp32", "--threads", "1", "--epochs", str(EPOCHS)]


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def train_command(data: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "composer", "train", "--data", data, "--out", str(out), "--json",
            *RUN, *extra]


def read_state(out: Path) -> dict | None:
    try:
        return json.loads((out / "resume" / "state.json").read_text())
    except (OSError, ValueError):
        return None


def kill_mid_epoch(data: str, out: Path) -> dict:
    """Start a run that checkpoints after every batch; SIGKILL it once a resume checkpoint from
    inside the first epoch exists. Returns that checkpoint's state."""
    proc = subprocess.Popen(train_command(data, out, "--checkpoint-minutes", "0"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            state = read_state(out)
            if state and state["epoch"] == 0 and state["batch"] >= 3:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        returncode = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert returncode == -signal.SIGKILL, f"not killed mid-epoch: {proc.stderr.read()[-2000:]}"
    return state


def test_sigkill_mid_epoch_then_resume(tiny_dataset_path, tmp_path):
    data_sha = sha256(tiny_dataset_path)
    out = tmp_path / "run"
    killed_at = kill_mid_epoch(tiny_dataset_path, out)
    n_batches = len(Dataset.load(tiny_dataset_path).indices("train"))  # batch size 1
    assert 3 <= killed_at["batch"] < n_batches  # inside the first epoch

    # What the kill left behind is whole: the newest state and the tensors it names.
    state = read_state(out)
    assert state is not None and state["epoch"] == 0 and state["batch"] >= killed_at["batch"]
    assert load_file(str(out / "resume" / state["tensors"]))
    assert not (out / "config.json").exists()  # no epoch finished, so no model was written yet

    resumed = subprocess.run(train_command(tiny_dataset_path, out, "--resume"),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {out} at epoch 1, batch {state['batch']}" in resumed.stderr
    result = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert result["epochs"] == EPOCHS and result["stopped"] == "epochs"

    # The data file is untouched and every output parses and loads.
    assert sha256(tiny_dataset_path) == data_sha
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["sha256"] == data_sha and config["training"]["epochs"] == EPOCHS
    loaded = load_model(out)
    assert loaded.cfg.hidden == 16
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == list(range(1, EPOCHS + 1))
    final = read_state(out)
    assert final["epoch"] == EPOCHS and final["batch"] == 0
    assert [p.name for p in (out / "resume").glob("state-*.safetensors")] == [final["tensors"]]
    # A write the kill cut short leaves at most a hidden temp file, never a damaged real one.
    names = {p.name for p in out.iterdir()} | {p.name for p in (out / "resume").iterdir()}
    assert {n for n in names if not n.endswith(".tmp")} == {
        "config.json", "model.safetensors", "metrics.jsonl", "training.png", "resume", "similar.npz",
        "state.json", final["tensors"]}, names

    # And it is the run that was never interrupted.
    ref = tmp_path / "straight"
    train(TrainConfig(data=tiny_dataset_path, out=str(ref), hidden=16, batch_size=1, lr=0.01,
                      seed=5, dropout=0.0, device="cpu", precision="fp32", threads=1,
                      epochs=EPOCHS), log=lambda _msg: None)
    a = load_file(str(ref / "resume" / read_state(ref)["tensors"]))
    b = load_file(str(out / "resume" / final["tensors"]))
    assert a.keys() == b.keys()
    for k in a:
        if k.startswith(("model.", "opt.")):
            assert np.array_equal(a[k], b[k]), k
