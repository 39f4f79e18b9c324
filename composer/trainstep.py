"""One optimisation step, and the precision it runs at (bf16 autocast or fp32): what training
and the training benchmark share."""

from __future__ import annotations

import contextlib

import torch

from .model import nll_terms


class TrainError(ValueError):
    """A training run that cannot start: bad options, nothing to resume, data changed."""


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
