"""Training loop: bucketed batches, validation, early stop, atomic checkpoints, resume, DDP."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from .checkpoint import (load_training_state, read_json, save_model, save_training_state,
                         sha256_file, write_atomic, write_json)
from .batches import Batches
from .dataset import Dataset
from .form import TuneShape, form_stats
from .model import ModelConfig, bits, build_model, count_params, match_joint, nll_terms
from .music import Meter

RESUME_DIR = "resume"
# Fields that define the run; on --resume they come from the checkpoint, not the command line.
RUN_FIELDS = ("arch", "cell", "hidden", "layers", "dropout", "batch_size", "lr", "weight_decay",
              "clip", "warmup_steps", "lr_decay", "lr_patience", "window", "seed", "precision",
              "match_params", "form")


class TrainError(ValueError):
    """A training run that cannot start: bad options, nothing to resume, data changed."""


@dataclass
class TrainConfig:
    """Options of one training run (see `composer train --help`)."""

    data: str
    out: str
    arch: str = "dual"
    cell: str = "gru"
    form: str = "cadence"  # form inputs: none | position | lookback | cadence (model.ModelConfig)
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.1
    epochs: int = 30
    batch_size: int = 64  # tunes (or windows of long tunes) per batch, per process
    lr: float = 2e-3
    weight_decay: float = 0.01
    clip: float = 1.0  # gradient norm clip
    warmup_steps: int = 200
    lr_decay: float = 0.5  # LR factor each time validation stalls for lr_patience epochs
    lr_patience: int = 1
    patience: int = 4  # early stop after this many epochs without a better validation loss
    min_delta: float = 1e-3  # bits/note that count as an improvement
    window: int = 512  # longest training sequence in steps; longer tunes are cut into windows
    seed: int = 0
    resume: bool = False
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on CUDA and on CPUs with native bf16) | bf16 | fp32
    max_minutes: float | None = None  # this invocation stops (resumably) after this long
    checkpoint_minutes: float = 10.0  # resumable checkpoint within long epochs
    threads: int | None = None  # CPU threads per process (default: cores / processes)
    match_params: bool = True  # arch=joint: pick its hidden size to match the dual model's size
    rank: int = 0  # set from the torchrun environment by the command line
    world_size: int = 1
    local_rank: int = 0


# --- helpers ---------------------------------------------------------------------------------
def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise TrainError(f"unknown device {cfg.device!r}; valid: auto, cpu, cuda")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda was asked for but CUDA is not available")
    if cfg.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", cfg.local_rank)


def autocast_for(precision: str, device: torch.device, hidden: int = 256):
    """A context factory for the forward pass: bf16 autocast or nothing (fp32). 'auto' picks
    bf16 on CUDA, and on CPUs with native bf16 for models wide enough (hidden >= 128) to gain
    from it (about twice as fast there); fp32 elsewhere."""
    if precision not in ("auto", "bf16", "fp32"):
        raise TrainError(f"unknown precision {precision!r}; valid: auto, bf16, fp32")
    bf16 = precision == "bf16" or (precision == "auto" and (
        device.type == "cuda" or (hidden >= 128 and _cpu_has_bf16())))
    if not bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _all_sum(values: list[float], device: torch.device, world: int) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _plot(history: list[dict], path: Path) -> None:
    """Learning curves (bits/note per epoch) to a PNG, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2))
    FigureCanvasAgg(fig)
    ep = [h["epoch"] for h in history]
    for ax, part in zip(fig.subplots(1, 3), ("total", "rhythm", "pitch")):
        for split, style in (("train", "-"), ("valid", "--")):
            ax.plot(ep, [h[f"{split}_{part}"] for h in history], style, marker="o", label=split)
        ax.set_title(f"{part} bits/note")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.axes[0].legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    write_atomic(path, buf.getvalue())


class _Progress:
    """A one-line progress bar on a terminal, or a plain log line every 30 s otherwise."""

    def __init__(self, log: Callable[[str], None], bar: bool):
        self.log, self.bar, self.last = log, bar, time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.last >= (0.5 if self.bar else 30.0)

    def update(self, epoch: int, done: int, total: int, loss_bits: float, rate: float) -> None:
        self.last = time.monotonic()
        text = (f"epoch {epoch + 1} {done}/{total} loss {loss_bits:.3f} bits/note "
                f"{rate:,.0f} notes/s")
        if self.bar:
            filled = int(20 * done / max(total, 1))
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (20 - filled)}] {text}   ")
            sys.stderr.flush()
        else:
            self.log(text)

    def end(self) -> None:
        if self.bar:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _lr(cfg: TrainConfig, s: dict, warmup: int) -> float:
    """Linear warmup, then the base LR times the decays applied so far (plateau schedule).
    It depends only on the step and the saved scale, so a resumed run continues it exactly."""
    return cfg.lr * s["lr_scale"] * min(1.0, (s["step"] + 1) / max(1, warmup))


def train_step(net, opt: torch.optim.Optimizer, batch: dict[str, torch.Tensor], amp,
               clip: float, lr: float) -> torch.Tensor:
    """One optimisation step on a batch; returns (rhythm nats, pitch nats, events) as a
    float64 tensor on the batch's device (no host sync)."""
    with amp():
        r, p, n = nll_terms(batch, *net(batch))
    opt.zero_grad(set_to_none=True)
    ((r + p) / n).backward()
    params = [q for g in opt.param_groups for q in g["params"]]
    torch.nn.utils.clip_grad_norm_(params, clip)
    for g in opt.param_groups:
        g["lr"] = lr
    opt.step()
    return torch.stack([r.detach(), p.detach(), n]).double()


def _evaluate(model, data: Batches, cfg: TrainConfig, device, amp) -> list[float]:
    """Summed (rhythm nats, pitch nats, events) over all processes' shares of `data`."""
    model.eval()
    acc = torch.zeros(3, dtype=torch.float64, device=device)
    with torch.no_grad(), amp():
        for items in data.plan(cfg.batch_size, cfg.seed, 0, False, cfg.rank, cfg.world_size):
            acc += torch.stack(model.nll(data.collate(items, device))).double()
    return _all_sum(acc.tolist(), device, cfg.world_size)


def _resolve(cfg: TrainConfig, data_sha: str) -> tuple[TrainConfig, dict | None]:
    """On --resume, the run-defining options come from the checkpoint."""
    state_path = Path(cfg.out) / RESUME_DIR / "state.json"
    if not cfg.resume:
        if state_path.exists():
            raise TrainError(f"{cfg.out} already holds a training run; pass --resume to continue "
                             "it, or choose another --out")
        return cfg, None
    if not state_path.exists():
        raise TrainError(f"nothing to resume: {state_path} not found")
    meta = read_json(state_path)
    if meta.get("data_sha256") != data_sha:
        raise TrainError(f"{cfg.data} is not the data file the run in {cfg.out} was trained on")
    saved = meta.get("train_config", {})
    return TrainConfig(**{**asdict(cfg), **{k: saved[k] for k in RUN_FIELDS if k in saved}}), meta


def type_forms(ds: Dataset) -> dict[str, dict]:
    """What the training tunes of each type are like: usual meter, form, pickup and style
    (form.form_stats); composing reads it from the checkpoint."""
    v = ds.vocab
    shapes = []
    for i in ds.indices("train"):
        meter = v.meters[ds.meter[i]]
        bar = Meter.parse(meter).bar_ticks
        shapes.append(TuneShape(v.types[ds.type[i]], meter, ds.forms[i],
                                (bar - int(ds.start[i])) % bar, v.styles[ds.style[i]]))
    return form_stats(shapes)


def style_counts(ds: Dataset) -> dict[str, int]:
    """Training tunes per style label; the sampler's default style is the most common one."""
    counts = np.bincount(ds.style[ds.indices("train")], minlength=len(ds.vocab.styles))
    return {name: int(c) for name, c in zip(ds.vocab.styles, counts)}


def train(cfg: TrainConfig, log: Callable[[str], None] | None = None,
          progress: bool = False) -> dict:
    """Train as `cfg` says and return the final metrics (also saved in OUT/config.json).

    OUT gets the best model (model.safetensors + config.json), metrics.jsonl, training.png
    and resume/ (model, optimizer, RNG and data position). Only rank 0 writes files or logs.
    """
    main = cfg.rank == 0
    say = (log or print) if main else (lambda _msg: None)
    out = Path(cfg.out)
    device = _device(cfg)
    ds = Dataset.load(cfg.data)
    data_sha = sha256_file(cfg.data)
    cfg, meta = _resolve(cfg, data_sha)
    v = ds.vocab
    try:
        mcfg = ModelConfig(arch=cfg.arch, cell=cfg.cell, hidden=cfg.hidden, layers=cfg.layers,
                           dropout=cfg.dropout, n_durations=v.n_durations, n_pitches=v.n_pitches,
                           n_positions=v.n_positions, n_meters=len(v.meters),
                           n_modes=len(v.modes), n_styles=len(v.styles),
                           n_types=len(v.types), form=cfg.form)
        if cfg.arch == "joint" and cfg.match_params:
            mcfg = match_joint(mcfg)
    except ValueError as e:
        raise TrainError(str(e)) from None
    amp = autocast_for(cfg.precision, device, mcfg.hidden)
    if device.type == "cpu":  # small matrices gain nothing from threads, and lose on busy CPUs
        torch.set_num_threads(cfg.threads or (1 if mcfg.hidden < 128 else
                                              max(1, (os.cpu_count() or 1) // cfg.world_size)))
    train_set = Batches(ds, ds.indices("train"), cfg.window)
    valid_set = Batches(ds, ds.indices("valid"), cfg.window)
    if not len(train_set):
        raise TrainError(f"{cfg.data} has no tunes in its train split")
    if cfg.world_size > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=cfg.rank,
                                world_size=cfg.world_size)
        if device.type == "cuda":
            torch.cuda.set_device(device)
    torch.manual_seed(cfg.seed)
    model = build_model(mcfg).to(device)
    if cfg.rank:  # same initial weights everywhere, different dropout masks per process
        torch.manual_seed(cfg.seed + 1_000_003 * cfg.rank)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    s = dict(epoch=0, batch=0, step=0, lr_scale=1.0, best=math.inf, best_epoch=0, bad=0,
             lr_bad=0, history=[], partial=[0.0, 0.0, 0.0, 0.0], elapsed=0.0)
    if meta is not None:
        saved = load_training_state(out / RESUME_DIR, model, opt, device)
        s.update({k: val for k, val in saved.items() if k in s})
        if cfg.rank:
            torch.manual_seed(cfg.seed + 1_000_003 * cfg.rank + s["step"])
        say(f"resuming {out} at epoch {s['epoch'] + 1}, batch {s['batch']}, step {s['step']}")
    net = model
    if cfg.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    # warm up over at most one epoch, so small datasets still reach the peak LR
    warmup = min(cfg.warmup_steps, len(train_set) // (cfg.batch_size * cfg.world_size) + 1)
    n_params = count_params(mcfg)
    say(f"training {mcfg.arch}/{mcfg.cell} {mcfg.layers}x{mcfg.hidden} ({n_params:,} parameters) "
        f"on {len(train_set)} train / {len(valid_set)} valid sequences, {device}, "
        f"{'bf16' if amp is not contextlib.nullcontext else 'fp32'}, {cfg.world_size} process(es)")
    if not len(valid_set):
        say("warning: no valid split; selecting the model on training loss")
    train_cfg = {k: val for k, val in asdict(cfg).items()
                 if k not in ("rank", "local_rank", "resume")}
    extra = {"train": train_cfg, "params": n_params,
             "data": {"file": Path(cfg.data).name, "sha256": data_sha,
                      "train_sequences": len(train_set), "valid_sequences": len(valid_set),
                      "train_events": train_set.events, "style_counts": style_counts(ds),
                      "forms": type_forms(ds)}}

    def scalars() -> dict:
        return dict(s, elapsed=s["elapsed"] + time.monotonic() - t0, train_config=train_cfg,
                    data_sha256=data_sha)

    t0 = time.monotonic()
    last_save = t0
    prog = _Progress(say, progress and main)
    stopped, stepping = None, False
    acc = torch.zeros(3, dtype=torch.float64, device=device)
    try:
        while stopped is None and s["epoch"] < cfg.epochs:
            epoch = s["epoch"]
            plan = train_set.plan(cfg.batch_size, cfg.seed, epoch, True, cfg.rank, cfg.world_size)
            acc = torch.tensor(s["partial"][:3], dtype=torch.float64, device=device)
            seconds0, t_epoch = s["partial"][3], time.monotonic()
            model.train()
            for bi in range(s["batch"], len(plan)):
                batch = train_set.collate(plan[bi], device)
                stepping = True  # weights and counters change together; don't save midway
                acc += train_step(net, opt, batch, amp, cfg.clip, _lr(cfg, s, warmup))
                s["step"] += 1
                s["batch"] = bi + 1
                stepping = False
                now = time.monotonic()
                if prog.due():
                    a = acc.tolist()
                    prog.update(epoch, bi + 1, len(plan), bits(a[0] + a[1], a[2]),
                                a[2] * cfg.world_size / max(seconds0 + now - t_epoch, 1e-9))
                over = cfg.max_minutes is not None and now - t0 > cfg.max_minutes * 60
                if cfg.world_size > 1 and cfg.max_minutes is not None:
                    over = _all_sum([float(over)], device, cfg.world_size)[0] > 0
                if over:
                    stopped = "time budget"
                    break
                if main and now - last_save > cfg.checkpoint_minutes * 60:
                    s["partial"] = [*acc.tolist(), seconds0 + now - t_epoch]
                    save_training_state(out / RESUME_DIR, model, opt, scalars())
                    last_save = now
            prog.end()
            seconds = s["partial"][3] = seconds0 + time.monotonic() - t_epoch
            s["partial"][:3] = acc.tolist()
            if stopped:
                break
            tr = _all_sum(s["partial"][:3], device, cfg.world_size)
            t_val = time.monotonic()
            va = _evaluate(model, valid_set, cfg, device, amp) if len(valid_set) else tr
            rec = {"epoch": epoch + 1, "step": s["step"], "lr": _lr(cfg, s, warmup),
                   "train_rhythm": bits(tr[0], tr[2]), "train_pitch": bits(tr[1], tr[2]),
                   "train_total": bits(tr[0] + tr[1], tr[2]),
                   "valid_rhythm": bits(va[0], va[2]), "valid_pitch": bits(va[1], va[2]),
                   "valid_total": bits(va[0] + va[1], va[2]),
                   "notes_per_s": tr[2] / max(seconds, 1e-9), "seconds": round(seconds, 3),
                   "valid_seconds": round(time.monotonic() - t_val, 3)}
            s["history"].append(rec)
            improved = rec["valid_total"] < s["best"] - cfg.min_delta
            if improved:
                s.update(best=rec["valid_total"], best_epoch=epoch + 1, bad=0, lr_bad=0)
                if main:
                    save_model(out, model, mcfg, v, dict(extra, metrics=rec))
            else:
                s["bad"] += 1
                s["lr_bad"] += 1
                if s["lr_bad"] >= cfg.lr_patience:
                    s["lr_scale"] *= cfg.lr_decay
                    s["lr_bad"] = 0
            s.update(epoch=epoch + 1, batch=0, partial=[0.0, 0.0, 0.0, 0.0])
            if main:
                write_atomic(out / "metrics.jsonl",
                             "".join(json.dumps(h) + "\n" for h in s["history"]).encode())
                _plot(s["history"], out / "training.png")
                save_training_state(out / RESUME_DIR, model, opt, scalars())
                last_save = time.monotonic()
            say(f"epoch {epoch + 1}/{cfg.epochs}: train {rec['train_total']:.3f} valid "
                f"{rec['valid_total']:.3f} bits/note (rhythm {rec['valid_rhythm']:.3f}, pitch "
                f"{rec['valid_pitch']:.3f}), {rec['notes_per_s']:,.0f} notes/s, {seconds:.0f} s"
                + (" *" if improved else ""))
            if s["bad"] >= cfg.patience:
                stopped = "early stop"
        if stopped == "time budget" and main:
            save_training_state(out / RESUME_DIR, model, opt, scalars())
            say(f"time budget of {cfg.max_minutes} min reached; continue with --resume")
    except KeyboardInterrupt:
        if main and not stepping:
            s["partial"][:3] = acc.tolist()
            save_training_state(out / RESUME_DIR, model, opt, scalars())
            prog.end()
            say(f"interrupted; continue with --resume (checkpoint in {out / RESUME_DIR})")
        raise
    finally:
        if cfg.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()
    stopped = stopped or "epochs"
    best = next((h for h in s["history"] if h["epoch"] == s["best_epoch"]), {})
    result = {"out": str(out), "stopped": stopped, "epochs": s["epoch"], "steps": s["step"],
              "best_epoch": s["best_epoch"], "params": n_params, **best}
    if main:
        if not s["best_epoch"]:  # no epoch finished yet: ship the current weights anyway
            save_model(out, model, mcfg, v, dict(extra, metrics={}))
        config = read_json(out / "config.json")
        config["training"] = {k: result[k] for k in ("stopped", "epochs", "steps", "best_epoch")}
        write_json(out / "config.json", config)
    return result
