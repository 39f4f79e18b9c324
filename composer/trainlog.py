"""What training shows as it goes: a progress line and the learning curves."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import Callable

from .files import write_atomic


def plot_curves(history: list[dict], path: Path) -> None:
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



class Progress:
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
