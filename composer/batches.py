"""Training items as flat stream arrays in bucketed, padded batches; training and evaluation
both read tunes through them."""

from __future__ import annotations

import numpy as np
import torch

from .dataset import Dataset
from .encoding import PAD
from .formfeatures import CLOSES_KEY, FORM_KEYS

STREAM_KEYS = ("dur_in", "pitch_in", "pos_in", "pos_out", "dur_out", "pitch_out") + FORM_KEYS + (
    CLOSES_KEY,)
LABELS = ("meter", "mode", "style", "type")
MAX_TYPE_COPIES = 3.0  # a rare type's tunes at most this many times as often as the commonest's


class Batches:
    """Items (whole tunes, or windows of long tunes) as flat stream arrays, in bucketed batches."""

    def __init__(self, ds: Dataset, tunes: np.ndarray, window: int):
        parts = [ds.streams(int(i)) for i in tunes]
        self.flat = {k: np.concatenate([p[k] for p in parts] or [np.zeros(0, np.int64)])
                     for k in STREAM_KEYS}
        labels = np.array([[p[k] for k in LABELS] for p in parts], np.int64).reshape(-1, len(LABELS))
        lens = np.array([len(p["dur_in"]) for p in parts], np.int64)
        offs = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        start, length, owner = [], [], []
        for j, (o, n) in enumerate(zip(offs, lens)):
            for a in range(0, int(n), window):
                start.append(o + a), length.append(min(window, n - a)), owner.append(j)
        self.start = np.array(start, np.int64)
        self.length = np.array(length, np.int64)
        self.labels = labels[np.array(owner, np.int64)] if owner else labels
        self.events = int((self.flat["dur_out"] != PAD).sum())

    def __len__(self) -> int:
        return len(self.start)

    def type_copies(self, balance: float) -> np.ndarray:
        """How many times an epoch takes each item, on average, for tune types to move toward
        equal shares: an item of a type with n items counts (n_max / n) ** balance, at most
        MAX_TYPE_COPIES times the largest type's, scaled so an epoch holds as many items as
        the set (0: every item once)."""
        types = self.labels[:, LABELS.index("type")]
        counts = np.bincount(types)
        copies = np.minimum((counts.max() / counts[types]) ** balance, MAX_TYPE_COPIES)
        return copies * len(copies) / copies.sum()

    def plan(self, batch_size: int, seed: int, epoch: int, shuffle: bool = True,
             rank: int = 0, world_size: int = 1, copies: np.ndarray | None = None
             ) -> list[np.ndarray]:
        """Item indices of each batch of one epoch, the same on every process for a given
        (seed, epoch); each process takes every world_size-th batch (equal counts for all).
        With `copies` (type_copies), item i comes floor(copies[i]) times, once more with the
        probability of the fraction."""
        rng = np.random.default_rng([seed, epoch])
        items = np.arange(len(self))
        if copies is not None:
            items = np.repeat(items, np.floor(copies).astype(np.int64)
                              + (rng.random(len(items)) < copies % 1))
        n = len(items)
        order = items[rng.permutation(n)] if shuffle else items
        # Sort by length within large chunks (ties in random order), cut into batches, and
        # shuffle the batches. In the sparse tail of long tunes a batch also ends where the
        # next item is 1.3x shorter than its longest (once it holds a quarter batch).
        chunk = batch_size * 100
        batches = []
        for c in np.array_split(order, max(1, -(-n // chunk))):
            c = c[np.argsort(-self.length[c], kind="stable")]
            first = 0
            for i in range(1, len(c) + 1):
                if i == len(c) or i - first == batch_size or (
                        1.3 * self.length[c[i]] < self.length[c[first]]
                        and i - first >= batch_size // 4):
                    batches.append(c[first:i])
                    first = i
        if shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if world_size > 1:
            keep = len(batches) - len(batches) % world_size if shuffle else len(batches)
            batches = batches[:keep][rank::world_size]
        return batches

    def collate(self, items: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
        """Padded [B, T] tensors (PAD after each item's end) plus labels and lengths."""
        length = self.length[items]
        t = np.arange(int(length.max()))
        idx = self.start[items, None] + t[None]
        mask = t[None] < length[:, None]
        idx = np.where(mask, idx, 0)
        out = {k: torch.from_numpy(np.where(mask, v[idx], 0)) for k, v in self.flat.items()}
        lab = self.labels[items]
        out.update({k: torch.from_numpy(lab[:, i]) for i, k in enumerate(LABELS)})
        out["lengths"] = torch.from_numpy(length)
        return {k: v.to(device, non_blocking=True) for k, v in out.items()}
