"""Tune types: reel, jig, hornpipe ... as an ABC R: field names them, or as meter and collection say."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .music import MusicError

TUNE_TYPES = ("reel", "jig", "slip jig", "hornpipe", "polka", "slide", "strathspey", "waltz",
              "mazurka", "march", "air", "song", "other")
"""Tune types, normalised; `other` is any tune whose type is not known."""

# R: field words (lower case, no punctuation) -> tune type; the first word that matches wins.
_TYPE_WORDS = (
    ("slip jig", "slip jig"), ("slipjig", "slip jig"), ("hop jig", "slip jig"),
    ("double jig", "jig"), ("single jig", "jig"), ("jig", "jig"), ("reel", "reel"),
    ("hornpipe", "hornpipe"), ("clog", "hornpipe"), ("polka", "polka"), ("slide", "slide"),
    ("strathspey", "strathspey"), ("fling", "strathspey"), ("waltz", "waltz"),
    ("mazurka", "mazurka"), ("march", "march"), ("walkaround", "march"), ("air", "air"),
    ("lament", "air"), ("song", "song"), ("lied", "song"), ("ballad", "song"),
    ("romanze", "song"), ("xiaodiao", "song"), ("shange", "song"),
)
# What an untyped tune's meter says of its type.
_METER_TYPES = {"6/8": "jig", "9/8": "slip jig", "12/8": "slide"}
# What a collection says of an untyped tune (after its meter).
COLLECTION_TYPES = {"essenFolksong": "song", "airdsAirs": "air", "oneills1850": "air"}


def normalize_type(field: str | None, meter: str = "", collection: str = "") -> str:
    """The tune type named by an R: field ('Double Jig' -> 'jig', 'Liebes - Lied' -> 'song');
    where it names none, what the collection and then the meter say; else 'other'."""
    text = " ".join(re.sub(r"[^a-z ]+", " ", (field or "").lower()).split())
    if collection == "essenFolksong":
        return "song"  # Essen's R: names a song's subject (Liebes - Lied, Ballade), not a dance
    for word, kind in _TYPE_WORDS:
        if re.search(rf"\b{word}", text):
            return kind
    if meter in _METER_TYPES:
        return _METER_TYPES[meter]
    return COLLECTION_TYPES.get(collection, "other")


def check_type(name: str, known: Sequence[str] = TUNE_TYPES) -> str:
    """A tune type as the user wrote it ('Slip-Jig'), normalised; MusicError if unknown."""
    key = " ".join(re.sub(r"[-_]+", " ", (name or "").strip().lower()).split())
    if key not in known:
        raise MusicError(f"unknown tune type {name!r}; valid types: {', '.join(known)}",
                         field="type")
    return key
