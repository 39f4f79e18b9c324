"""Key estimation: the tonic and mode that a melody's pitch-class durations fit best."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..music import MODE_STEPS, Melody, Note

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


# The modes a closing note can give a tune. A close that makes the tune lydian, phrygian or
# locrian is taken for a close away from the tonic (a tune in G that closes on B), and the key
# stands; on a tie of note time the folk modes win, then the mode the signature writes, then
# this order.
_FINAL_MODES = ("major", "minor", "dorian", "mixolydian")
_OTHER_MODES = ("lydian", "phrygian", "locrian")
# A one-part tune keeps to the pentatonic scale of its signature (C D E G A under `K:C`) when at
# most this share of its note time falls outside it.
PENTATONIC_SHARE = 0.05
# Bars a one-part tune needs before its last note counts as its final: a shorter piece, such as
# a fragment to continue, stops where its writer stopped.
PENTATONIC_MIN_BARS = 8
_PENTATONIC_STEPS = (0, 2, 4, 7, 9)


def _scale(tonic: int, mode: str) -> frozenset[int]:
    return frozenset((tonic + step) % 12 for step in MODE_STEPS[mode])


def _is_pentatonic(hist: np.ndarray, signature: int) -> bool:
    """The tune keeps to the major pentatonic scale on `signature`, the tonic of the signature's
    major key: next to no note time on its fourth and seventh or outside it."""
    inside = sum(hist[(signature + step) % 12] for step in _PENTATONIC_STEPS)
    return inside >= (1 - PENTATONIC_SHARE) * hist.sum()


def with_final_key(melody: Melody, signature: int | None) -> Melody:
    """A tune whose key field gave only a signature (ABC `K:D`, a MusicXML key signature
    without a mode; `signature` is the tonic of its major key, None where the file gave no key
    at all), keyed by its final, as modal analysis reads a folk tune: when it closes (the last
    part's end, its second ending where it has two) on a pitch class other than the tonic the
    key gave, that note is the tonic, in the mode whose scale on it holds most of the tune's
    note time (on a tie, a folk mode, and the one the signature writes).

    - A tune of two parts or more: E dorian and A mixolydian are both written `K:D` in the Irish
      collections, and a B minor tune closes its A part on D as often as not.
    - A one-part tune of 8 bars or more only where it keeps to the pentatonic scale of its
      signature, whose final names the mode: Essen's Chinese songs write `K:C` for a song in
      the mode on D (shang), closing on D, and it reads as D dorian. A one-part tune in seven
      notes keeps its key whatever it ends on: Essen's key field names a German song's tonic,
      and many close on the third.

    Otherwise (a tune whose written end sends the player back; a close that would make the tune
    lydian, phrygian or locrian) the key stands."""
    form = melody.form
    if form is not None and form.da_capo:
        return melody
    close = melody.last_pitch()  # where the last part closes: the end of the written tune
    if close is None or melody.ends_on_tonic():
        return melody
    hist = _histogram(melody.notes)
    one_part = form is None or len(form.parts) < 2
    if one_part and (signature is None or melody.complete_bars() < PENTATONIC_MIN_BARS
                     or not _is_pentatonic(hist, signature)):
        return melody
    written = _scale(melody.tonic, melody.mode) if signature is None else _scale(signature, "major")
    scales = {m: _scale(close % 12, m) for m in _FINAL_MODES + _OTHER_MODES}
    mode = max(scales, key=lambda m: (sum(hist[p] for p in scales[m]), m in _FINAL_MODES,
                                      scales[m] == written))
    return (replace(melody, tonic=close % 12, mode=mode, tonic_name=None)
            if mode in _FINAL_MODES else melody)
