"""What every reader and writer shares: limits, results, errors, constants and music21."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from types import SimpleNamespace

from ..music import MAX_BAR_TICKS, Melody, Meter, MusicError

FORMATS_VERSION = 3
"""Bump when a reader's output for the same file changes; it keys the ingest cache."""

READ_SUFFIXES = (".abc", ".mid", ".midi", ".xml", ".mxl", ".musicxml", ".krn")
WRITE_SUFFIXES = (".mid", ".abc", ".musicxml", ".xml", ".json", ".wav")
DEFAULT_TEMPO = 120.0


class FormatError(MusicError):
    """A file that is not readable music, or an output format that cannot be written here.
    `library` holds the reading library's own message, for --verbose and the server log."""

    def __init__(self, message: str = "", field: str | None = None, reason: str | None = None,
                 library: str = ""):
        super().__init__(message, field=field, reason=reason)
        self.library = library


# What a user is told when a reader library fails on a file, by suffix (its message is kept
# apart, in ParsedTune.library).
UNREADABLE = {".mid": "not a readable MIDI file (damaged or truncated)",
              ".midi": "not a readable MIDI file (damaged or truncated)",
              ".abc": "not readable as ABC notation (a tune needs X:, K: and notes)",
              ".xml": "not readable as MusicXML", ".musicxml": "not readable as MusicXML",
              ".mxl": "not readable as compressed MusicXML", ".krn": "not readable as Humdrum **kern"}


@dataclass
class ReadLimits:
    """Bounds on the work one input may cause."""

    max_file_bytes: int = 5 * 1024 * 1024
    max_tune_chars: int = 200_000  # one ABC tune
    max_notes: int = 20_000
    max_bars: int = 1_000  # one tune's length, long rests included
    max_tunes: int = 10_000  # tunes read from one file; the rest are reported, not parsed
    max_unpacked_bytes: int = 32 * 1024 * 1024  # what a compressed MusicXML file unpacks to


@dataclass
class ParsedTune:
    """One tune read from a file: its melody, or the short reason (`error`) it could not be used."""

    melody: Melody | None
    number: int | None  # ABC X: number, else the tune's index in its file (1 for single-tune files)
    title: str
    error: str | None = None  # "parse error", "empty file", "no notes", "drums only", "meter change", ...
    detail: str = ""  # in plain words, for the user
    library: str = ""  # the reading library's own message, where it failed
    dropped: list[str] = field(default_factory=list)  # form markers that could not be used
    lines: list[int] = field(default_factory=list)  # ticks where the source starts a line (ABC)
    key_from_final: bool = False  # a bare key signature, read from where the tune closes


class Skip(Exception):
    """Abandon one tune with a reason key and a detail."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def one_line(e: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:200]


def plausible_tempo(bpm: float | None) -> float:
    """A file's tempo in quarter notes per minute, or the default where it is missing or absurd."""
    return float(bpm) if bpm and 20 <= bpm <= 400 else DEFAULT_TEMPO


def parse_meter(text: str | None) -> Meter:
    """The meter a file names; Skip where it names none, or one the model cannot take."""
    t = (text or "").split("%")[0].strip()
    if not t or t.lower() in ("none", "free"):
        raise Skip("no meter", t)
    try:
        meter = Meter.parse(t)
    except MusicError:
        raise Skip("unsupported meter", t) from None
    if meter.bar_ticks > MAX_BAR_TICKS:
        raise Skip("unsupported meter", f"{meter} (bars longer than {MAX_BAR_TICKS // 96} whole notes)")
    return meter


@lru_cache(maxsize=1)
def music21_modules() -> SimpleNamespace:
    """music21 imported on first use (it takes a second); MIDI reading never needs it."""
    from music21 import (abcFormat, articulations, bar, chord, clef, converter, key, metadata,
                         meter, note, repeat, spanner, stream, tempo, tie)
    from music21.abcFormat import translate
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    class FastPart(stream.Part):
        """A Part that skips beaming: the ABC translator beams each part, ~70% of its time."""

        def makeBeams(self, *args, **kwargs):
            return None

    return SimpleNamespace(abcFormat=abcFormat, translate=translate, articulations=articulations,
                           bar=bar, spanner=spanner, chord=chord, clef=clef,
                           converter=converter, key=key, metadata=metadata, meter=meter, note=note,
                           repeat=repeat, stream=stream, tempo=tempo, tie=tie, FastPart=FastPart,
                           GeneralObjectExporter=GeneralObjectExporter)
