"""Interpolated modified Kneser-Ney n-gram baseline over (duration, pitch) notes; numpy only.

The model predicts each note the way the network does, in two factors:
  P(d, p | ctx) = P(d | ctx) * P(p | d, ctx)
where ctx is the `order` previous notes (a note is its (duration, pitch) token pair, BOS
starts a tune) and the duration stream ends with END. Order k is thus a (k+1)-gram over notes;
MarkovModel.fit chooses k in 1..max_order (default 4) by bits/note on the valid split.

Both factors are interpolated modified Kneser-Ney (Chen & Goodman 1998): each context length,
from `order` down to none, mixes its discounted counts with the next shorter one (continuation
counts below the longest), and the shortest with a uniform distribution over the vocabulary,
so a note never seen in training still gets finite bits. The pitch factor's contexts always
include the note's own duration: (d, ctx_k) backs off to (d, ctx_k-1) ... to (d), then to
no context.

Bits are counted like model.nll_terms: per predicted event (every note and each tune's END),
so rhythm_bits + pitch_bits = bits_per_note.

Everything is vectorised: contexts get dense integer ids through np.unique, counts are sorted
key arrays, and a distribution over the vocabulary is filled per context from CSR ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .dataset import Dataset, DatasetError
from .encoding import BOS, END, N_SPECIAL, PAD, REST

DEFAULT_ORDER = 4  # the "order up to 4"; longer contexts still help a little
MAX_ORDER = 8
_CHUNK = 32768  # evaluation rows per block (bounds the [rows, vocab] matrices)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + n) for each (s, n)."""
    lengths = np.asarray(lengths, np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offs = np.cumsum(lengths) - lengths
    return np.repeat(np.asarray(starts, np.int64) - offs, lengths) + np.arange(total)


@dataclass
class Steps:
    """The prediction steps of a set of tunes, flat: one per note plus one END per tune."""

    d_out: np.ndarray  # target duration token (END at each tune's last step)
    p_out: np.ndarray  # target pitch token (PAD at END steps)
    e_in: np.ndarray  # current note as one event id d * n_pitches + p (BOS event at step 0)
    t: np.ndarray  # step index within its tune
    tunes: int

    @classmethod
    def from_dataset(cls, ds: Dataset, indices: np.ndarray) -> "Steps":
        indices = np.asarray(indices, np.int64)
        lens = ds.lengths()[indices].astype(np.int64)
        notes = _ranges(ds.offsets[indices], lens)
        d = ds.durations[notes].astype(np.int64)
        p = ds.pitches[notes].astype(np.int64)
        step_start = np.cumsum(lens + 1) - (lens + 1)
        at = _ranges(step_start, lens)  # step predicting each note
        n_steps = int((lens + 1).sum())
        npitch = ds.vocab.n_pitches
        d_out = np.full(n_steps, END, np.int64)
        p_out = np.full(n_steps, PAD, np.int64)
        e_in = np.full(n_steps, BOS * npitch + BOS, np.int64)
        d_out[at], p_out[at] = d, p
        e_in[at + 1] = d * npitch + p
        t = np.arange(n_steps) - np.repeat(step_start, lens + 1)
        return cls(d_out, p_out, e_in, t, len(indices))

    def lag(self, j: int) -> np.ndarray:
        """The note j steps before the current one (0 = current); 0 before the tune starts."""
        out = np.zeros_like(self.e_in)
        ok = self.t >= j
        out[ok] = self.e_in[np.flatnonzero(ok) - j]
        return out


class _Ids:
    """Dense ids for (parent id, symbol) pairs, learned on training steps."""

    def __init__(self, parent: np.ndarray, symbol: np.ndarray, radix: int):
        self.radix = radix
        self.keys, self.train = np.unique(parent * radix + symbol, return_inverse=True)

    def lookup(self, parent: np.ndarray, symbol: np.ndarray) -> np.ndarray:
        """Ids of pairs seen in training, -1 for unseen ones (or an unseen parent)."""
        keys = parent * self.radix + symbol
        pos = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        found = (parent >= 0) & (self.keys[pos] == keys) if len(self.keys) else parent < -1
        return np.where(found, pos, -1)


class _Table:
    """Counts c(h, w) of one context length, with modified-KN discounts applied in advance."""

    def __init__(self, hist: np.ndarray, target: np.ndarray, n_hist: int, vocab: int,
                 counts: np.ndarray | None = None):
        if counts is None:
            keys, counts = np.unique(hist * vocab + target, return_counts=True)
        else:
            keys = hist * vocab + target
        h = keys // vocab
        self.w = keys % vocab
        self.indptr = np.concatenate([[0], np.cumsum(np.bincount(h, minlength=n_hist))])
        disc = _discounts(counts)[np.minimum(counts, 3) - 1]
        self.kept = counts - disc  # discounted counts, > 0
        self.total = np.bincount(h, weights=counts, minlength=n_hist)
        # gamma(h): the mass moved to the shorter context
        self.gamma = np.bincount(h, weights=disc, minlength=n_hist) / np.maximum(self.total, 1)
        self.keys = keys  # sorted by (h, w)

    def mix(self, hist: np.ndarray, lower: np.ndarray) -> np.ndarray:
        """Interpolate: rows whose context was seen get (c - D)/c(h) + gamma(h) * lower."""
        out = lower.copy()
        rows = np.flatnonzero(hist >= 0)
        rows = rows[self.total[hist[rows]] > 0]
        if len(rows) == 0:
            return out
        h = hist[rows]
        start, n = self.indptr[h], self.indptr[h + 1] - self.indptr[h]
        k = _ranges(start, n)
        r = np.repeat(np.arange(len(rows)), n)
        dense = np.zeros((len(rows), lower.shape[1]))
        dense[r, self.w[k]] = self.kept[k]
        out[rows] = dense / self.total[h][:, None] + self.gamma[h][:, None] * lower[rows]
        return out


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Modified Kneser-Ney discounts (D1, D2, D3+) from the count-of-counts, kept in (0, i)."""
    n = np.bincount(np.minimum(counts, 5), minlength=6)[1:5].astype(float)
    y = n[0] / (n[0] + 2 * n[1]) if n[0] + n[1] > 0 else 0.5
    d = [i + 1 - (i + 2) * y * n[i + 1] / n[i] if n[i] > 0 else 0.5 for i in range(3)]
    return np.array([min(max(x, 0.05), i + 0.95) for i, x in enumerate(d)])


class _Interpolated:
    """One factor (rhythm or pitch): a nested list of context levels, shortest first."""

    def __init__(self, levels: list[np.ndarray], target: np.ndarray, allowed: np.ndarray,
                 vocab: int):
        self.vocab = vocab
        self.base = allowed.astype(float) / allowed.sum()
        n_hist = [int(h.max()) + 1 for h in levels]
        self.raw = [_Table(h, target, n, vocab) for h, n in zip(levels, n_hist)]
        # Continuation counts for the shorter contexts: in how many distinct longer
        # contexts was w seen after h?
        self.cont = []
        for lo in range(len(levels) - 1):
            parent = np.zeros(n_hist[lo + 1], np.int64)
            parent[levels[lo + 1]] = levels[lo]
            longer = self.raw[lo + 1]
            keys, n = np.unique(parent[longer.keys // vocab] * vocab + longer.w,
                                return_counts=True)
            self.cont.append(_Table(keys // vocab, keys % vocab, n_hist[lo], vocab, counts=n))

    def dist(self, levels: list[np.ndarray], top: int) -> np.ndarray:
        """[rows, vocab] probabilities using context levels 0..top (top uses raw counts)."""
        p = np.broadcast_to(self.base, (len(levels[0]), self.vocab))
        for lv in range(top + 1):
            p = (self.raw[lv] if lv == top else self.cont[lv]).mix(levels[lv], p)
        return p


def _score(dist: np.ndarray, target: np.ndarray) -> tuple[float, int]:
    """(-sum ln P(target), number of argmax hits)."""
    rows = np.arange(len(target))
    return float(-np.log(dist[rows, target]).sum()), int((dist.argmax(1) == target).sum())


class MarkovModel:
    """The n-gram baseline; `order` previous notes of context (1..MAX_ORDER)."""

    def __init__(self, ds: Dataset, indices: np.ndarray, max_order: int = DEFAULT_ORDER):
        if not 1 <= max_order <= MAX_ORDER:
            raise DatasetError(f"Markov order must be in 1..{MAX_ORDER}, got {max_order}")
        steps = Steps.from_dataset(ds, indices)
        if steps.tunes == 0:
            raise DatasetError("the train split is empty; the Markov baseline needs tunes")
        self.vocab = ds.vocab
        self.max_order = self.order = max_order
        nd, npitch = ds.vocab.n_durations, ds.vocab.n_pitches
        self.radix = nd * npitch
        hist = [np.zeros(len(steps.t), np.int64)]
        self.ctx_ids = []
        for j in range(max_order):
            self.ctx_ids.append(_Ids(hist[-1], steps.lag(j), self.radix))
            hist.append(self.ctx_ids[-1].train)
        has_pitch = steps.p_out != PAD
        self.dur_ids = [_Ids(h, steps.d_out, nd) for h in hist]
        pitch_levels = [np.zeros(int(has_pitch.sum()), np.int64)]
        pitch_levels += [ids.train[has_pitch] for ids in self.dur_ids]
        d_ok = np.arange(nd) >= N_SPECIAL
        d_ok[END] = True
        p_ok = np.arange(npitch) >= N_SPECIAL
        p_ok[REST] = True
        self.rhythm = _Interpolated(hist, steps.d_out, d_ok, nd)
        self.pitch = _Interpolated(pitch_levels, steps.p_out[has_pitch], p_ok, npitch)

    @classmethod
    def fit(cls, ds: Dataset, max_order: int = DEFAULT_ORDER, select: bool = True
            ) -> "MarkovModel":
        """Fit on the train split; with `select`, choose the order (1..max_order) with the
        lowest bits/note on the valid split (if it has tunes)."""
        model = cls(ds, ds.indices("train"), max_order)
        valid = ds.indices("valid")
        if select and len(valid):
            steps = Steps.from_dataset(ds, valid)
            scores = {k: model.evaluate_steps(steps, k)["bits_per_note"]
                      for k in range(1, max_order + 1)}
            model.order = min(scores, key=scores.get)
        return model

    def _levels(self, steps: Steps, order: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        hist = [np.zeros(len(steps.t), np.int64)]
        for j in range(order):
            hist.append(self.ctx_ids[j].lookup(hist[-1], steps.lag(j)))
        has_pitch = steps.p_out != PAD
        pitch = [np.zeros(int(has_pitch.sum()), np.int64)]
        pitch += [ids.lookup(h, steps.d_out)[has_pitch] for ids, h in zip(self.dur_ids, hist)]
        return hist, pitch

    def evaluate(self, ds: Dataset, split: str = "test") -> dict:
        """Bits/note (rhythm, pitch, total), duration and pitch accuracy, tunes and notes.
        `ds` must share this model's vocabulary (the file it was fit on)."""
        if ds.vocab.to_dict() != self.vocab.to_dict():
            raise DatasetError("the Markov baseline must be evaluated on its own dataset file")
        return self.evaluate_steps(Steps.from_dataset(ds, ds.indices(split)), self.order)

    def evaluate_steps(self, steps: Steps, order: int) -> dict:
        hist, pitch = self._levels(steps, order)
        has_pitch = steps.p_out != PAD
        p_target = steps.p_out[has_pitch]
        r_nats = p_nats = 0.0
        r_hits = p_hits = 0
        for a in range(0, len(steps.t), _CHUNK):
            b = slice(a, a + _CHUNK)
            nats, hits = _score(self.rhythm.dist([h[b] for h in hist], order), steps.d_out[b])
            r_nats, r_hits = r_nats + nats, r_hits + hits
        for a in range(0, len(p_target), _CHUNK):
            b = slice(a, a + _CHUNK)
            nats, hits = _score(self.pitch.dist([h[b] for h in pitch], order + 1), p_target[b])
            p_nats, p_hits = p_nats + nats, p_hits + hits
        events, notes = len(steps.t), len(p_target)
        rhythm, pitch_bits = (x / max(events, 1) / math.log(2) for x in (r_nats, p_nats))
        return {"bits_per_note": rhythm + pitch_bits, "rhythm_bits": rhythm,
                "pitch_bits": pitch_bits, "duration_accuracy": r_hits / max(events, 1),
                "pitch_accuracy": p_hits / max(notes, 1), "tunes": steps.tunes, "notes": notes,
                "events": events, "order": order}
