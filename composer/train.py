"""Training loop: bucketed batches, validation, early stop, atomic checkpoints, resume, DDP."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from .checkpoint import load_training_state, save_model, save_training_state
from .files import write_atomic
from .modelfiles import read_json, sha256_file, write_json
from .batches import Batches
from .dataset import Dataset, style_counts, type_forms
from .model import bits, build_model
from .modelconfig import ModelConfig, count_params, match_joint, vocab_sizes
from .trainlog import Progress, plot_curves
from .trainstep import TrainError, autocast_for, train_step

RESUME_DIR = "resume"
# Fields that define the run; on --resume they come from the checkpoint, not the command line.
RUN_FIELDS = ("arch", "cell", "hidden", "layers", "dropout", "batch_size", "lr", "weight_decay",
              "clip", "warmup_steps", "lr_decay", "lr_patience", "window", "seed", "precision",
              "match_params", "form", "type_balance")


@dataclass
class TrainConfig:
    """Options of one training run (see `composer train --help`)."""

    data: str
    out: str
    arch: str = "dual"
    cell: str = "gru"
    form: str = "cadence"  # form inputs: none | position | lookback | cadence (modelconfig.ModelConfig)
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
    min_lr_scale: float = 1e-3  # stop once the plateau decays bring the LR this far below its peak
    min_delta: float = 1e-3  # bits/note that count as an improvement
    window: int = 512  # longest training sequence in steps; longer tunes are cut into windows
    seed: int = 0
    type_balance: float = 0.0  # 0: every train tune once an epoch; more: rarer types more often
    #                            (Batches.type_copies)
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


def _all_sum(values: list[float], device: torch.device, world: int) -> list[float]:
    if world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _lr(cfg: TrainConfig, st: "TrainState", warmup: int) -> float:
    """Linear warmup, then the base LR times the decays applied so far (plateau schedule).
    It depends only on the step and the saved scale, so a resumed run continues it exactly."""
    return cfg.lr * st.lr_scale * min(1.0, (st.step + 1) / max(1, warmup))


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
    if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise TrainError(f"--out {cfg.out} is a file; give the folder to write the model to")
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




@dataclass
class TrainState:
    """The trainer's counters and history: the resume file's state.json holds these fields
    (beside the tensors), and a resume without any of them is refused, not half-read."""

    epoch: int = 0  # epochs finished
    batch: int = 0  # batches of the current epoch done
    step: int = 0  # optimizer steps in all
    lr_scale: float = 1.0  # the plateau decays applied so far
    best: float = math.inf  # best validation bits/note
    best_epoch: int = 0
    bad: int = 0  # epochs without improvement (early stop)
    lr_bad: int = 0  # epochs without improvement since the last decay
    history: list = field(default_factory=list)  # one metrics record per epoch
    partial: list = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])  # the epoch so far:
    #                                       rhythm nats, pitch nats, events, seconds
    elapsed: float = 0.0  # seconds of training before this invocation

    @classmethod
    def from_saved(cls, saved: dict, where: Path) -> "TrainState":
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in saved]
        if missing:
            raise TrainError(f"{where} lacks {', '.join(missing)}: it was written by another "
                             "version of composer; start a new run")
        return cls(**{n: saved[n] for n in names})


@dataclass
class _Run:
    """What a training run sets up once and every epoch reads."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    mcfg: ModelConfig
    vocab: object
    amp: Callable
    train_set: Batches
    valid_set: Batches
    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DDP wrapper
    opt: torch.optim.Optimizer
    warmup: int
    n_params: int
    record: dict  # what config.json records of the run besides the metrics
    say: Callable[[str], None]
    main: bool
    started: float = field(default_factory=time.monotonic)
    last_save: float = field(default_factory=time.monotonic)
    consistent: bool = True  # False while a step changes weights and counters: no saving then

    def scalars(self, st: TrainState) -> dict:
        """What the resume state.json holds."""
        return dict(asdict(st), elapsed=st.elapsed + time.monotonic() - self.started,
                    train_config=self.record["train"], data_sha256=self.record["data"]["sha256"])

    def save_resume(self, st: TrainState) -> None:
        save_training_state(self.out / RESUME_DIR, self.model, self.opt, self.scalars(st))
        self.last_save = time.monotonic()


def train(cfg: TrainConfig, log: Callable[[str], None] | None = None,
          progress: bool = False) -> dict:
    """Train as `cfg` says and return the final metrics (also saved in OUT/config.json).

    OUT gets the best model (model.safetensors + config.json), metrics.jsonl, training.png
    and resume/ (model, optimizer, RNG and data position). Only rank 0 writes files or logs.
    """
    main = cfg.rank == 0
    say = (log or print) if main else (lambda _msg: None)
    run, st = _setup(cfg, say, main)
    cfg = run.cfg
    prog = Progress(say, progress and main)
    stopped = None
    finished = False
    try:
        while stopped is None and st.epoch < cfg.epochs:
            stopped = _train_epoch(run, st, prog)
            if not stopped:
                stopped = _end_epoch(run, st)
        if stopped == "time budget" and main:
            run.save_resume(st)
            say(f"time budget of {cfg.max_minutes} min reached; continue with --resume")
        finished = True
    except KeyboardInterrupt:
        if main and run.consistent:  # st holds the epoch so far (see _train_epoch)
            run.save_resume(st)
            prog.end()
            say(f"interrupted; continue with --resume (checkpoint in {run.out / RESUME_DIR})")
        raise
    finally:
        if cfg.world_size > 1 and dist.is_initialized():
            if finished:  # a rank that leaves while another still works makes gloo abort
                dist.barrier()
            dist.destroy_process_group()
    return _finish(run, st, stopped or "epochs")


def _setup(cfg: TrainConfig, say: Callable[[str], None], main: bool) -> tuple[_Run, TrainState]:
    """Data, model, optimizer and state (fresh, or from the resume checkpoint)."""
    out = Path(cfg.out)
    device = _device(cfg)
    ds = Dataset.load(cfg.data)
    data_sha = sha256_file(cfg.data)
    cfg, meta = _resolve(cfg, data_sha)
    v = ds.vocab
    try:
        mcfg = ModelConfig(arch=cfg.arch, cell=cfg.cell, hidden=cfg.hidden, layers=cfg.layers,
                           dropout=cfg.dropout, form=cfg.form, **vocab_sizes(v))
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
    st = TrainState()
    if meta is not None:
        st = TrainState.from_saved(load_training_state(out / RESUME_DIR, model, opt, device),
                                   out / RESUME_DIR / "state.json")
        if cfg.rank:
            torch.manual_seed(cfg.seed + 1_000_003 * cfg.rank + st.step)
        say(f"resuming {out} at epoch {st.epoch + 1}, batch {st.batch}, step {st.step}")
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
    record = {"train": {k: val for k, val in asdict(cfg).items()
                        if k not in ("rank", "local_rank", "resume")},
              "params": n_params,
              "data": {"file": Path(cfg.data).name, "sha256": data_sha,
                       "train_sequences": len(train_set), "valid_sequences": len(valid_set),
                       "train_events": train_set.events, "style_counts": style_counts(ds),
                       "forms": type_forms(ds)}}
    return _Run(cfg, out, device, mcfg, v, amp, train_set, valid_set, model, net, opt, warmup,
                n_params, record, say, main), st


def _train_epoch(run: _Run, st: TrainState, prog: "Progress") -> str | None:
    """The batches of the current epoch from where it stands, with resumable checkpoints on
    the way; returns "time budget" if that ran out, else None. st.partial holds the epoch's
    sums when it returns, and when a Ctrl-C between steps stops it."""
    cfg, device = run.cfg, run.device
    plan = run.train_set.plan(cfg.batch_size, cfg.seed, st.epoch, True, cfg.rank, cfg.world_size,
                              run.train_set.type_copies(cfg.type_balance) if cfg.type_balance else None)
    acc = torch.tensor(st.partial[:3], dtype=torch.float64, device=device)
    seconds0, t_epoch = st.partial[3], time.monotonic()
    stopped = None
    run.model.train()
    try:
        for bi in range(st.batch, len(plan)):
            batch = run.train_set.collate(plan[bi], device)
            run.consistent = False
            acc += train_step(run.net, run.opt, batch, run.amp, cfg.clip,
                              _lr(cfg, st, run.warmup))
            st.step += 1
            st.batch = bi + 1
            run.consistent = True
            now = time.monotonic()
            if prog.due():
                a = acc.tolist()
                prog.update(st.epoch, bi + 1, len(plan), bits(a[0] + a[1], a[2]),
                            a[2] * cfg.world_size / max(seconds0 + now - t_epoch, 1e-9))
            over = cfg.max_minutes is not None and now - run.started > cfg.max_minutes * 60
            if cfg.world_size > 1 and cfg.max_minutes is not None:
                over = _all_sum([float(over)], device, cfg.world_size)[0] > 0
            if over:
                stopped = "time budget"
                break
            if run.main and now - run.last_save > cfg.checkpoint_minutes * 60:
                st.partial = [*acc.tolist(), seconds0 + now - t_epoch]
                run.save_resume(st)
    finally:  # also on Ctrl-C: what the epoch has done so far
        st.partial = [*acc.tolist(), seconds0 + time.monotonic() - t_epoch]
    prog.end()
    return stopped


def _end_epoch(run: _Run, st: TrainState) -> str | None:
    """Validate, keep the best model, decay the LR on a plateau, log and checkpoint; returns
    "early stop" when patience has run out."""
    cfg, device = run.cfg, run.device
    tr = _all_sum(st.partial[:3], device, cfg.world_size)
    seconds = st.partial[3]
    t_val = time.monotonic()
    va = _evaluate(run.model, run.valid_set, cfg, device, run.amp) if len(run.valid_set) else tr
    rec = {"epoch": st.epoch + 1, "step": st.step, "lr": _lr(cfg, st, run.warmup),
           "train_rhythm": bits(tr[0], tr[2]), "train_pitch": bits(tr[1], tr[2]),
           "train_total": bits(tr[0] + tr[1], tr[2]),
           "valid_rhythm": bits(va[0], va[2]), "valid_pitch": bits(va[1], va[2]),
           "valid_total": bits(va[0] + va[1], va[2]),
           "notes_per_s": tr[2] / max(seconds, 1e-9), "seconds": round(seconds, 3),
           "valid_seconds": round(time.monotonic() - t_val, 3)}
    st.history.append(rec)
    improved = rec["valid_total"] < st.best - cfg.min_delta
    if improved:
        st.best, st.best_epoch, st.bad, st.lr_bad = rec["valid_total"], st.epoch + 1, 0, 0
        if run.main:
            save_model(run.out, run.model, run.mcfg, run.vocab, dict(run.record, metrics=rec))
    else:
        st.bad += 1
        st.lr_bad += 1
        if st.lr_bad >= cfg.lr_patience:
            st.lr_scale *= cfg.lr_decay
            st.lr_bad = 0
    st.epoch, st.batch, st.partial = st.epoch + 1, 0, [0.0, 0.0, 0.0, 0.0]
    if run.main:
        write_atomic(run.out / "metrics.jsonl",
                     "".join(json.dumps(h) + "\n" for h in st.history).encode())
        plot_curves(st.history, run.out / "training.png")
        run.save_resume(st)
    figures = (f"valid {rec['valid_total']:.3f} bits/note (rhythm {rec['valid_rhythm']:.3f}, "
               f"pitch {rec['valid_pitch']:.3f})" if len(run.valid_set) else
               "bits/note (no valid split: the model is chosen on training loss)")
    run.say(f"epoch {rec['epoch']}/{cfg.epochs}: train {rec['train_total']:.3f} {figures}, "
            f"{rec['notes_per_s']:,.0f} notes/s, {seconds:.0f} s" + (" *" if improved else ""))
    if st.bad >= cfg.patience:
        return "early stop"
    if st.lr_scale < cfg.min_lr_scale:
        return "learning rate bottomed out"
    return None


def _finish(run: _Run, st: TrainState, stopped: str) -> dict:
    """The run's result, also recorded in OUT/config.json."""
    best = next((h for h in st.history if h["epoch"] == st.best_epoch), {})
    result = {"out": str(run.out), "stopped": stopped, "epochs": st.epoch, "steps": st.step,
              "best_epoch": st.best_epoch, "params": run.n_params, **best}
    if run.main:
        if not st.best_epoch:  # no epoch finished yet: ship the current weights anyway
            save_model(run.out, run.model, run.mcfg, run.vocab, dict(run.record, metrics={}))
        config = read_json(run.out / "config.json")
        config["training"] = {k: result[k] for k in ("stopped", "epochs", "steps", "best_epoch")}
        write_json(run.out / "config.json", config)
    return result
