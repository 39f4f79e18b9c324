"""Save and load models and training state without pickle: tensors in safetensors, rest in JSON.

config.json holds the model config, the vocabularies, the sha256 of the weights file, and
whatever the trainer adds (hyper-parameters, data file hash, metrics). Every write is atomic
(a temp file in the same folder, then os.replace), and loading checks every file it reads,
so a truncated, corrupted, tampered-with or pickled checkpoint gives a CheckpointError
naming the file instead of a crash or, worse, running code.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .encoding import Vocab
from .files import remove_stale_temp_files, write_atomic
from .music import MAX_DURATION, MODES, Meter, MusicError
from .model import build_model
from .modelconfig import ModelConfig, count_params

WEIGHTS = "model.safetensors"
NEXT_WEIGHTS = "model.next.safetensors"  # the weights of a save under way (see save_model)
CONFIG = "config.json"
FORMAT = "composer-model"
FORMAT_VERSION = 1
# Files that torch.save / pickle write: never loaded, since unpickling can run code.
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupted, inconsistent or unsafe."""


@dataclass
class LoadedModel:
    model: torch.nn.Module  # in eval mode, on the requested device
    cfg: ModelConfig
    vocab: Vocab
    config: dict  # the whole config.json


# --- atomic files ----------------------------------------------------------------------------
def write_json(path: str | os.PathLike, obj: dict) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _looks_pickled(head: bytes) -> bool:
    # pickle protocol 2+ starts with 0x80; torch.save writes a zip archive ("PK").
    return head[:1] == b"\x80" or head[:2] == b"PK"


def read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    return path.read_bytes()


def _unreadable(path: Path, data: bytes, reason: object) -> CheckpointError:
    """The error for a file that did not parse: a pickle gets its own message."""
    if _looks_pickled(data[:2]):
        return CheckpointError(f"{path} is a pickle/torch.save file; refusing to load it "
                               "(unpickling can run code)")
    return CheckpointError(f"{path} is truncated or corrupted ({reason})")


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


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    data = read_bytes(path)
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _unreadable(path, data, f"not valid JSON: {e}") from None
    except RecursionError:  # thousands of nested brackets
        raise CheckpointError(f"{path} is not a composer JSON file (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return obj


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


def _check_vocab(cfg: ModelConfig, vocab: Vocab, path: Path) -> None:
    problem = _vocab_problem(vocab)
    if problem:
        raise CheckpointError(f"{path} has an invalid vocabulary: {problem}")
    pairs = [("durations", cfg.n_durations, vocab.n_durations),
             ("pitches", cfg.n_pitches, vocab.n_pitches),
             ("positions", cfg.n_positions, vocab.n_positions),
             ("meters", cfg.n_meters, len(vocab.meters)), ("modes", cfg.n_modes, len(vocab.modes)),
             ("styles", cfg.n_styles, len(vocab.styles))]
    if cfg.form != "none":
        pairs.append(("tune types", cfg.n_types, len(vocab.types)))
    for name, n_model, n_vocab in pairs:
        if n_model != n_vocab:
            raise CheckpointError(f"{path}: the model has {n_model} {name} but the vocabulary "
                                  f"has {n_vocab}")


def _vocab_problem(vocab: Vocab) -> str | None:
    """What is wrong with vocabulary values that a tampered file could change without changing
    any size; each would surface later as a wrong tune or a confusing sampler error."""
    if not all(type(v) is int for v in (vocab.pitch_low, vocab.pitch_high)):
        return "pitch_low and pitch_high must be whole MIDI pitches"
    try:
        if not all(0 < d <= MAX_DURATION for d in vocab.durations) or len(
                set(vocab.durations)) < len(vocab.durations):
            return f"durations must be distinct tick counts in 1..{MAX_DURATION}"
        if not 0 <= vocab.pitch_low <= vocab.pitch_high <= 127:
            return "the pitch range must lie within MIDI pitches 0..127"
        if not all(isinstance(x, str) and x for x in [*vocab.meters, *vocab.modes, *vocab.styles]):
            return "meters, modes and styles must be non-empty strings"
        if any(m not in MODES for m in vocab.modes):
            return f"modes must be among {', '.join(MODES)}"
        for m in vocab.meters:
            Meter.parse(m)
        if any(len(set(xs)) < len(xs) for xs in (vocab.meters, vocab.modes, vocab.styles)):
            return "meters, modes and styles must not repeat"
    except MusicError as e:
        return str(e)
    except TypeError as e:
        return f"a value has the wrong type ({e})"
    return None


def read_config(directory: str | os.PathLike) -> tuple[dict, ModelConfig, Vocab]:
    """Parse and validate config.json: (whole config, model config, vocabulary)."""
    path = Path(directory) / CONFIG
    config = read_json(path)
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a composer model config (format "
                              f"{config.get('format')!r})")
    if not isinstance(config.get("format_version", 0), int):
        raise CheckpointError(f"{path}: format_version must be a number")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer version (format "
                              f"{config['format_version']}); please upgrade composer")
    try:
        cfg = ModelConfig.from_dict(config["model"])
        vocab = Vocab.from_dict(config["vocab"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} has an invalid model or vocab section ({e})") from None
    _check_vocab(cfg, vocab, path)
    return config, cfg, vocab


def _interrupted_save(directory: Path, sha256: str) -> tuple[Path, bytes] | None:
    """The weights of a save killed after writing config.json, if they are there and match."""
    path = directory / NEXT_WEIGHTS
    if path.is_file():
        data = read_bytes(path)
        if hashlib.sha256(data).hexdigest() == sha256:
            return path, data
    return None


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model saved by save_model; raises CheckpointError naming the bad file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"model directory not found: {directory}")
    weights_path = directory / WEIGHTS
    if not weights_path.exists():
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise CheckpointError(f"{directory / pickles[0]} is a pickle-format file; refusing to "
                                  f"load it (pickle can run code); expected {WEIGHTS}")
        raise CheckpointError(f"checkpoint file not found: {weights_path}")
    config, cfg, vocab = read_config(directory)
    data = read_bytes(weights_path)
    expected = config.get("weights_sha256")
    matches = not expected or hashlib.sha256(data).hexdigest() == expected
    if not matches and (found := _interrupted_save(directory, expected)):
        (weights_path, data), matches = found, True
    tensors = parse_tensors(weights_path, data)  # a pickle is named as such before any mismatch
    if not matches:
        raise CheckpointError(f"{weights_path} is corrupted or does not belong to "
                              f"{directory / CONFIG} (sha256 mismatch)")
    # Compare sizes before allocating anything: a tampered config could ask for a huge model.
    stored = sum(t.numel() for t in tensors.values())
    if count_params(cfg) != stored:
        raise CheckpointError(f"{weights_path} does not match {directory / CONFIG}: the config "
                              f"implies {count_params(cfg):,} parameters, the file holds {stored:,}")
    model = build_model(cfg)
    want = model.state_dict()
    missing = sorted(set(want) - set(tensors))
    unexpected = sorted(set(tensors) - set(want))
    if missing or unexpected:
        raise CheckpointError(f"{weights_path} does not match {CONFIG}: missing "
                              f"{missing[:3]}, unexpected {unexpected[:3]}")
    for k, v in want.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{weights_path} does not match {directory / CONFIG}: {k} has "
                                  f"shape {list(tensors[k].shape)} but the config implies "
                                  f"{list(v.shape)}")
        if tensors[k].is_floating_point() and not bool(torch.isfinite(tensors[k]).all()):
            # a diverged run or a tampered file: sampling from it would fail far from the cause
            raise CheckpointError(f"{weights_path}: {k} holds non-finite values (NaN or inf)")
    model.load_state_dict(tensors)
    model.to(device).eval()
    return LoadedModel(model, cfg, vocab, config)


def default_model_dir() -> Path:
    """The shipped default model: folder models/folk, installed as package data composer.models."""
    return Path(str(importlib.resources.files("composer.models") / "folk"))


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
