"""Model folders without torch: the file names, config.json and its checks, and the weights
read as numpy arrays (safetensors), checked against the config before anything is built.

config.json holds the model config, the vocabularies, the sha256 of the weights file, and
whatever the trainer adds (hyper-parameters, data file hash, metrics). Loading checks every
file it reads, so a truncated, corrupted, tampered-with or pickled checkpoint gives a
CheckpointError naming the file instead of a crash or, worse, running code. Writing (and
everything else that needs torch) is in checkpoint.py.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load

from .encoding import Vocab
from .files import write_atomic
from .modelconfig import ModelConfig, reads_lookbacks, weight_shapes
from .music import MAX_DURATION, MODES, Meter, MusicError

WEIGHTS = "model.safetensors"
NEXT_WEIGHTS = "model.next.safetensors"  # the weights of a save under way (see save_model)
CONFIG = "config.json"
FORMAT = "composer-model"
# 2: closing bars look back less; 3: a look-back's match says whether the last note matched
FORMAT_VERSION = 3
LOOKBACK_SINCE = 3  # models that read look-backs need this version: the inputs changed then
# Files that torch.save / pickle write: never loaded, since unpickling can run code.
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupted, inconsistent or unsafe."""


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
    if reads_lookbacks(cfg) and config.get("format_version", 0) < LOOKBACK_SINCE:
        raise CheckpointError(f"{path}: this model was trained on an earlier definition of the "
                              "look-back inputs, which composer no longer computes; retrain it "
                              "with `composer train`")
    return config, cfg, vocab


def _interrupted_save(directory: Path, sha256: str) -> tuple[Path, bytes] | None:
    """The weights of a save killed after writing config.json, if they are there and match."""
    path = directory / NEXT_WEIGHTS
    if path.is_file():
        data = read_bytes(path)
        if hashlib.sha256(data).hexdigest() == sha256:
            return path, data
    return None


def parse_arrays(path: Path, data: bytes) -> dict[str, np.ndarray]:
    try:
        return st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise _unreadable(path, data, e) from None


@dataclass
class ModelWeights:
    """A model folder as read from disk: its config and its weights as numpy arrays."""

    cfg: ModelConfig
    vocab: Vocab
    config: dict  # the whole config.json
    tensors: dict[str, np.ndarray]


def read_weights(directory: str | os.PathLike) -> ModelWeights:
    """Read and check a model folder that save_model wrote; CheckpointError names the bad file."""
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
    tensors = parse_arrays(weights_path, data)  # a pickle is named as such before any mismatch
    if not matches:
        raise CheckpointError(f"{weights_path} is corrupted or does not belong to "
                              f"{directory / CONFIG} (sha256 mismatch)")
    want = weight_shapes(cfg)
    stored = sum(t.size for t in tensors.values())
    implied = sum(int(np.prod(shape)) for shape in want.values())
    if implied != stored:
        raise CheckpointError(f"{weights_path} does not match {directory / CONFIG}: the config "
                              f"implies {implied:,} parameters, the file holds {stored:,}")
    missing = sorted(set(want) - set(tensors))
    unexpected = sorted(set(tensors) - set(want))
    if missing or unexpected:
        raise CheckpointError(f"{weights_path} does not match {CONFIG}: missing "
                              f"{missing[:3]}, unexpected {unexpected[:3]}")
    for k, shape in want.items():
        if tuple(tensors[k].shape) != shape:
            raise CheckpointError(f"{weights_path} does not match {directory / CONFIG}: {k} has "
                                  f"shape {list(tensors[k].shape)} but the config implies "
                                  f"{list(shape)}")
        if tensors[k].dtype.kind != "f" or not np.isfinite(tensors[k]).all():
            # a diverged run or a tampered file: sampling from it would fail far from the cause
            raise CheckpointError(f"{weights_path}: {k} holds non-finite values (NaN or inf)"
                                  if tensors[k].dtype.kind == "f" else
                                  f"{weights_path}: {k} is not floating point")
    return ModelWeights(cfg, vocab, config, {k: v.astype(np.float32, copy=False)
                                             for k, v in tensors.items()})


def default_model_dir() -> Path:
    """The shipped default model: folder models/folk, installed as package data composer.models."""
    return Path(str(importlib.resources.files("composer.models") / "folk"))
