"""Distribution similarity of two sets of tunes (Yang & Lerch 2018): per feature, the overlap
and the KL divergence of the intra-set and inter-set distance distributions."""

from __future__ import annotations

import math

import numpy as np

from .music import Melody, MusicError

FEATURES = ("pitch_class_histogram", "interval_histogram", "duration_histogram", "pitch_range",
            "notes_per_bar")
# Duration histogram bins in ticks (1/24 quarter): 32nd ... whole, triplets and dotted values.
DURATION_BINS = np.array([3, 4, 6, 8, 9, 12, 16, 18, 24, 32, 36, 48, 72, 96])
MAX_INTERVAL = 12  # interval histogram: -12..+12 semitones, larger leaps clipped


# --- distribution similarity (Yang & Lerch 2018) ---------------------------------------------
def tune_features(m: Melody) -> dict[str, np.ndarray]:
    """The per-tune features compared by distribution_similarity. Pitch classes are counted
    relative to the tune's tonic, so tunes in different keys compare by scale degree."""
    sounding = [n.pitch for n in m.notes if n.pitch is not None]
    pch = np.zeros(12)
    np.add.at(pch, [(p - m.tonic) % 12 for p in sounding], 1)
    ivh = np.zeros(2 * MAX_INTERVAL + 1)
    steps = np.clip(np.diff(sounding), -MAX_INTERVAL, MAX_INTERVAL) if len(sounding) > 1 else []
    np.add.at(ivh, np.asarray(steps, np.int64) + MAX_INTERVAL, 1)
    durh = np.zeros(len(DURATION_BINS))
    if m.notes:
        logd = np.log([n.duration for n in m.notes])
        np.add.at(durh, np.abs(logd[:, None] - np.log(DURATION_BINS)).argmin(1), 1)
    norm = lambda h: h / h.sum() if h.sum() else h  # noqa: E731
    bars = m.total_ticks / m.meter.bar_ticks
    return {"pitch_class_histogram": norm(pch), "interval_histogram": norm(ivh),
            "duration_histogram": norm(durh),
            "pitch_range": np.array([max(sounding) - min(sounding) if sounding else 0.0]),
            "notes_per_bar": np.array([len(m.notes) / bars if bars else 0.0])}


def _distances(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances: all pairs i<j within `a`, or all pairs between `a` and `b`."""
    if b is None:
        i, j = np.triu_indices(len(a), k=1)
        return np.sqrt(((a[i] - a[j]) ** 2).sum(-1))
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).ravel()


def _kde(samples: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian KDE (Scott's bandwidth, at least two grid steps) on an even grid, by binning
    then convolving, so it stays fast for hundreds of thousands of distances."""
    dx = grid[1] - grid[0]
    h = max(samples.std(ddof=1) * len(samples) ** -0.2 if len(samples) > 1 else 0.0, 2 * dx)
    counts = np.histogram(samples, bins=len(grid), range=(grid[0] - dx / 2, grid[-1] + dx / 2))[0]
    half = int(math.ceil(5 * h / dx))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * dx / h) ** 2)
    dens = np.convolve(counts, kernel, mode="full")[half:half + len(grid)]
    return dens / (dens.sum() * dx)


def compare_distributions(intra: np.ndarray, inter: np.ndarray, points: int = 2048) -> dict:
    """Overlapping area and KL divergence KL(intra || inter) of two distance samples' KDEs."""
    both = np.concatenate([intra, inter])
    span = float(both.max() - both.min()) or 1.0
    pad = 4 * max(span / 50, *(s.std() * len(s) ** -0.2 for s in (intra, inter) if len(s) > 1))
    grid = np.linspace(both.min() - pad, both.max() + pad, points)
    dx = grid[1] - grid[0]
    f, g = _kde(intra, grid), _kde(inter, grid)
    eps = 1e-12
    return {"overlap": float(np.minimum(f, g).sum() * dx),
            "kl": float((f * np.log((f + eps) / (g + eps))).sum() * dx)}


def distribution_similarity(generated: list[Melody], reference: list[Melody]) -> dict[str, dict]:
    """Yang & Lerch (2018): per feature, the overlapping area and KL divergence between the
    intra-set distances of the reference set and the inter-set distances (generated vs
    reference), plus the mean distances. Overlap 1 and KL 0: indistinguishable sets."""
    if len(generated) < 2 or len(reference) < 2:
        raise MusicError("distribution similarity needs at least 2 generated and 2 reference tunes")
    fg = [tune_features(m) for m in generated]
    fr = [tune_features(m) for m in reference]
    out = {}
    for name in FEATURES:
        g, r = np.stack([f[name] for f in fg]), np.stack([f[name] for f in fr])
        intra_r, intra_g, inter = _distances(r), _distances(g), _distances(g, r)
        out[name] = compare_distributions(intra_r, inter) | {
            "intra_reference": float(intra_r.mean()), "intra_generated": float(intra_g.mean()),
            "inter": float(inter.mean())}
    return out
