"""Key estimation: the tonic and mode that a melody's pitch-class durations fit best."""

from __future__ import annotations

import numpy as np

from ..music import Note

# Aarden-Essen key profiles, the weights music21's analyze('key') correlates with.
_PROFILES = {
    "major": np.array([17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062,
                       0.145624, 8.15494, 0.232998, 4.95122]),
    "minor": np.array([18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161,
                       4.56621, 1.93186, 7.37619, 1.75623]),
}


def _key_score(hist: np.ndarray, tonic: int, mode: str) -> float:
    """Pearson correlation of a duration-weighted pitch-class histogram with a rotated profile."""
    profile = np.roll(_PROFILES[mode], tonic)
    if hist.std() == 0:
        return 0.0
    return float(np.corrcoef(hist, profile)[0, 1])


def _histogram(notes: list[Note]) -> np.ndarray:
    hist = np.zeros(12)
    for n in notes:
        if n.pitch is not None:
            hist[n.pitch % 12] += n.duration
    return hist


def estimate_key(notes: list[Note], tonic: int | None = None,
                 candidates: tuple[tuple[int, str], ...] | None = None) -> tuple[int, str]:
    """Most likely (tonic, 'major'|'minor'), optionally with a fixed tonic or among candidates."""
    hist = _histogram(notes)
    if candidates is None:
        tonics = range(12) if tonic is None else (tonic,)
        candidates = tuple((t, m) for t in tonics for m in ("major", "minor"))
    return max(candidates, key=lambda c: _key_score(hist, c[0], c[1]))


def signature_key(sharps: int, notes: list[Note]) -> tuple[int, str]:
    """Tonic and mode for a bare key signature: its major or relative minor, whichever fits."""
    major = (7 * sharps) % 12
    return estimate_key(notes, candidates=((major, "major"), ((major + 9) % 12, "minor")))
