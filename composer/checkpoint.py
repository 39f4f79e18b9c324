"""Models and training state in torch, without pickle: tensors in safetensors, the rest in JSON.

Every write is atomic (a temp file in the same folder, then os.replace). Reading and checking
a model folder is modelfiles' job; load_model builds the torch module from what it read.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .encoding import Vocab
from .files import remove_stale_temp_files, write_atomic
from .model import build_model
from .modelconfig import ModelConfig
from .modelfiles import (CONFIG, FORMAT, FORMAT_VERSION, NEXT_WEIGHTS, WEIGHTS, CheckpointError,
                         ModelWeights, _unreadable, read_bytes, read_json, read_weights,
                         write_json)


@dataclass
class LoadedModel:
    model: torch.nn.Module  # in eval mode, on the requested device
    cfg: ModelConfig
    vocab: Vocab
    config: dict  # the whole config.json


def parse_tensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise _unreadable(path, data, e) from None


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> bytes:
    """Write tensors as safetensors, atomically; returns the bytes written."""
    data = st_save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
    write_atomic(path, data)
    return data


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu"
                 ) -> dict[str, torch.Tensor]:
    path = Path(path)
    tensors = parse_tensors(path, read_bytes(path))
    return {k: v.to(device) for k, v in tensors.items()}


# --- models ----------------------------------------------------------------------------------
def save_model(directory: str | os.PathLike, model: torch.nn.Module, cfg: ModelConfig,
               vocab: Vocab, extra: dict | None = None) -> None:
    """Write the model into `directory` so that a save killed at any point leaves the old
    model or the new one, never a mix: the weights go to NEXT_WEIGHTS, then config.json (which
    records their sha256) replaces the old one, then NEXT_WEIGHTS is renamed to
    model.safetensors; load_model takes NEXT_WEIGHTS when only it matches the config. Each
    write is atomic, and temp files that killed writes left behind are removed first.
    `extra` (JSON-able) is merged into config.json.
    """
    directory = Path(directory)
    remove_stale_temp_files(directory)
    state = {k: v for k, v in model.state_dict().items()}
    weights = save_tensors(directory / NEXT_WEIGHTS, state)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "weights_sha256": hashlib.sha256(weights).hexdigest(),
              "model": cfg.to_dict(), "vocab": vocab.to_dict()}
    for k, v in (extra or {}).items():
        config.setdefault(k, v)
    write_json(directory / CONFIG, config)
    os.replace(directory / NEXT_WEIGHTS, directory / WEIGHTS)


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model saved by save_model into torch; raises CheckpointError naming the bad file."""
    return model_from_weights(read_weights(directory), device)


def model_from_weights(found: ModelWeights, device: str | torch.device = "cpu") -> LoadedModel:
    """The torch model of a model folder that modelfiles.read_weights read and checked."""
    model = build_model(found.cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in found.tensors.items()})
    model.to(device).eval()
    return LoadedModel(model, found.cfg, found.vocab, found.config)


# --- training state for resume -----------------------------------------------------------------
STATE = "state.json"


def save_training_state(folder: str | os.PathLike, model: torch.nn.Module,
                        opt: torch.optim.Optimizer, scalars: dict) -> None:
    """Write model, optimizer and RNG state without pickle: tensors (optimizer state flattened
    as opt.<param>.<name>) in state-<step>.safetensors, the rest in state.json. state.json is
    written last and names the tensor file, so a crash midway keeps the previous state whole.
    `scalars` (JSON-able, with a 'step') holds the trainer's counters and data position."""
    folder = Path(folder)
    remove_stale_temp_files(folder)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    sd = opt.state_dict()
    for i, st in sd["state"].items():
        for name, v in st.items():
            tensors[f"opt.{i}.{name}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    name = f"state-{scalars['step']:09d}.safetensors"
    save_tensors(folder / name, tensors)
    write_json(folder / STATE, dict(scalars, tensors=name, param_groups=sd["param_groups"]))
    for old in folder.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_training_state(folder: str | os.PathLike, model: torch.nn.Module,
                        opt: torch.optim.Optimizer, device: torch.device) -> dict:
    """Restore what save_training_state wrote (model, optimizer, torch RNG); returns the
    scalars. CheckpointError names the file that is missing, damaged or does not fit."""
    folder = Path(folder)
    meta = read_json(folder / STATE)
    try:
        path = folder / meta["tensors"]
        tensors = load_tensors(path)
        model.load_state_dict({k[6:]: v.to(device) for k, v in tensors.items()
                               if k.startswith("model.")})
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("opt."):
                _, i, name = k.split(".", 2)
                state.setdefault(int(i), {})[name] = v if name == "step" else v.to(device)
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        rng = tensors["rng.torch"]
    except CheckpointError:
        raise
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{folder / STATE} does not match this model ({e})") from None
    torch.set_rng_state(rng)
    if "rng.cuda" in tensors and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return meta
