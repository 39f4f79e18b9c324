"""Damaged and hostile model folders at the command line: one clear line and exit code 2.

tests/test_model.py covers load_model itself (truncated, corrupted, tampered, pickled files);
here each kind of bad folder goes through the commands a user runs.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load, save_file
from typer.testing import CliRunner

from composer.checkpoint import CheckpointError, load_model
from composer.cli import app
from composer.modelfiles import LOOKBACK_SINCE

runner = CliRunner()


def rewrite_weights(folder: Path, change) -> None:
    """Apply `change` to the tensors and record the new file's hash, as a careful forger would."""
    path = folder / "model.safetensors"
    tensors = change(load(path.read_bytes()))  # in memory: a memory map of it would break
    save_file(tensors, path)
    config = json.loads((folder / "config.json").read_text())
    config["weights_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "config.json").write_text(json.dumps(config))


def edit_config(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def transpose_first_matrix(tensors: dict) -> dict:
    """Same number of parameters, wrong shape."""
    name = next(k for k, v in tensors.items() if v.dim() == 2 and v.shape[0] != v.shape[1])
    return {**tensors, name: tensors[name].t().contiguous()}


def nan_weights(tensors: dict) -> dict:
    return {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
            for k, v in tensors.items()}


class _Code:
    def __reduce__(self):
        return (print, ("unpickled",))


def torch_save_as_weights(folder: Path) -> None:
    path = folder / "model.safetensors"
    torch.save(load(path.read_bytes()), path)


def only_a_pickle(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "model.pt").write_bytes(pickle.dumps(_Code()))


BAD_FOLDERS = {
    "config asks for another size": (
        lambda d: edit_config(d, lambda c: c["model"].update(hidden=c["model"]["hidden"] * 2)),
        "does not match"),
    "config asks for 10^9 units": (
        lambda d: edit_config(d, lambda c: c["model"].update(hidden=10**9)), "does not match"),
    "weights of the wrong shapes": (lambda d: rewrite_weights(d, transpose_first_matrix), "shape"),
    "NaN weights": (lambda d: rewrite_weights(d, nan_weights), "non-finite"),
    "durations of 0 ticks": (
        lambda d: edit_config(d, lambda c: c["vocab"].update(
            durations=[0] * len(c["vocab"]["durations"]))), "invalid vocabulary"),
    "unknown modes": (
        lambda d: edit_config(d, lambda c: c["vocab"].update(
            modes=["blues"] * len(c["vocab"]["modes"]))), "invalid vocabulary"),
    "pitch range beyond MIDI": (
        lambda d: edit_config(d, lambda c: c["vocab"].update(
            pitch_low=c["vocab"]["pitch_low"] + 200, pitch_high=c["vocab"]["pitch_high"] + 200)),
        "0..127"),
    "trained on the earlier look-back inputs": (
        lambda d: edit_config(d, lambda c: c.update(format_version=LOOKBACK_SINCE - 1)), "retrain it"),
    "format_version not a number": (
        lambda d: edit_config(d, lambda c: c.update(format_version="1")), "format_version"),
    "config nested 100,000 deep": (
        lambda d: (d / "config.json").write_text("[" * 100_000 + "]" * 100_000), "nested"),
    "config is not JSON": (lambda d: (d / "config.json").write_bytes(b"\xff\xfe{"), "config.json"),
    "torch.save file as the weights": (torch_save_as_weights, "pickle"),
    "only a pickle (model.pt)": (only_a_pickle, "pickle"),
}


@pytest.fixture()
def bad_folder(tiny_model_dir, tmp_path, request):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    damage, needle = BAD_FOLDERS[request.param]
    damage(folder)
    return folder, needle


def fails_cleanly(args: list[str], needle: str) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    err = result.stderr.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in result.output, err
    assert needle.lower() in err.lower(), err
    return err


@pytest.mark.parametrize("bad_folder", list(BAD_FOLDERS), indirect=True)
def test_compose_with_a_bad_model_folder(bad_folder):
    folder, needle = bad_folder
    with pytest.raises(CheckpointError, match="(?i)" + needle.replace(".", r"\.")):
        load_model(folder)
    err = fails_cleanly(["compose", "--model", folder, "--bars", "2"], needle)
    assert str(folder) in err  # the message names the folder (and the file)


@pytest.mark.parametrize("bad_folder", ["NaN weights", "only a pickle (model.pt)"], indirect=True)
def test_score_and_continue_with_a_bad_model_folder(bad_folder, tmp_path):
    folder, needle = bad_folder
    tune = tmp_path / "tune.abc"
    tune.write_text("X:1\nT:t\nM:6/8\nL:1/8\nK:D\nDEF GAB|A3 d3|]\n")
    fails_cleanly(["score", str(tune), "--model", folder], needle)
    fails_cleanly(["continue", str(tune), "--model", folder, "--bars", "2"], needle)


@pytest.mark.parametrize("bad_folder", ["weights of the wrong shapes"], indirect=True)
def test_the_installed_command_reports_a_bad_model_in_one_line(bad_folder):
    folder, needle = bad_folder
    proc = subprocess.run([sys.executable, "-m", "composer", "compose", "--model", str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
