"""Read ABC, MIDI, MusicXML and kern into melodies; write melodies as MIDI, ABC, MusicXML, JSON or WAV."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Iterator
from numbers import Real
from pathlib import Path

from ..files import write_atomic
from ..form import played
from ..music import Melody
from .abc import read_abc, split_abc, to_abc
from .common import (DEFAULT_TEMPO, FORMATS_VERSION, READ_SUFFIXES, UNREADABLE, WRITE_SUFFIXES,
                     FormatError, ParsedTune, ReadLimits, Skip, one_line)
from .guards import check_length
from .keys import estimate_key
from .midi import choose_grid, read_midi, to_midi_bytes
from .score import read_score
from .writers import (SOUNDFONT_DIR, find_soundfont, to_json_dict, to_musicxml_bytes,
                      to_wav_bytes)

__all__ = ["DEFAULT_TEMPO", "FORMATS_VERSION", "READ_SUFFIXES", "SOUNDFONT_DIR", "WRITE_SUFFIXES",
           "FormatError", "ParsedTune", "ReadLimits", "choose_grid", "estimate_key", "find_soundfont",
           "iter_tunes", "read_melody", "read_tunes", "render", "save", "split_abc", "to_abc", "to_json_dict", "to_midi_bytes",
           "to_musicxml_bytes", "to_wav_bytes"]


def read_tunes(path: str | os.PathLike, data: bytes | None = None,
               limits: ReadLimits | None = None) -> list[ParsedTune]:
    """Every tune in one file (read from disk unless `data` is given); never raises for bad content.

    Multi-tune ABC files give one ParsedTune per X: field; other formats give one. A tune that
    cannot be used has `melody=None` and a reason in `error`. A missing file raises FileNotFoundError.
    The work is bounded by `limits` (file size, tunes per file, notes and bars per tune).
    """
    return list(iter_tunes(path, data, limits))


def iter_tunes(path: str | os.PathLike, data: bytes | None = None,
               limits: ReadLimits | None = None) -> Iterator[ParsedTune]:
    """read_tunes, one tune at a time: a caller that needs only the first good tune stops there."""
    limits = limits or ReadLimits()
    path = Path(path)
    suffix, name = path.suffix.lower(), path.stem
    if suffix not in READ_SUFFIXES:
        yield ParsedTune(None, None, name, "unsupported type",
                         f"'{suffix or path.name}'; readable: {' '.join(READ_SUFFIXES)}")
        return
    try:
        size = path.stat().st_size if data is None else len(data)
        if size > limits.max_file_bytes:
            yield ParsedTune(None, None, name, "file too large", f"{size} bytes > {limits.max_file_bytes}")
            return
        data = path.read_bytes() if data is None else data
    except FileNotFoundError:
        raise
    except OSError as e:  # a folder, no permission, ...
        yield ParsedTune(None, None, name, "read error", one_line(e))
        return
    if not data.strip():
        yield ParsedTune(None, None, name, "empty file")
        return
    try:
        if suffix == ".abc":
            tunes: Iterable[ParsedTune] = read_abc(data, name, limits)
        elif suffix in (".mid", ".midi"):
            tunes = [read_midi(data, name, limits)]
        else:
            tunes = [read_score(data, suffix, name, limits)]
        for tune in tunes:
            yield _bounded(tune, limits)
    except Exception as e:  # a reader bug must never abort a whole ingest
        yield ParsedTune(None, None, name, "parse error", library=one_line(e))


def _bounded(tune: ParsedTune, limits: ReadLimits) -> ParsedTune:
    """The tune, or its refusal when a few bytes described an enormous length."""
    if tune.melody is not None:
        try:
            check_length(tune.melody, limits)
        except Skip as e:
            return ParsedTune(None, tune.number, tune.title, e.reason, e.detail)
    return tune


def read_melody(data: bytes, filename: str, limits: ReadLimits | None = None) -> Melody:
    """The first usable tune of an uploaded file; FormatError with a one-line reason otherwise.
    Tunes after the first usable one are not parsed."""
    suffix = Path(filename).suffix.lower()
    if suffix not in READ_SUFFIXES:
        raise FormatError(f"unsupported file type '{suffix or filename}'; "
                          f"use one of {' '.join(READ_SUFFIXES)}")
    first = None
    for t in iter_tunes(filename, data, limits):
        if t.melody is not None:
            return t.melody
        first = first or t
    if first is None:  # every reader gives at least one entry; a safeguard only
        raise FormatError(f"{Path(filename).name}: no notes")
    if first.error == "parse error":  # say what is wrong, or what the file is not
        plain = first.detail or UNREADABLE.get(suffix, "not readable")
        raise FormatError(f"{Path(filename).name}: {plain}", library=first.library)
    detail = f" ({first.detail})" if first.detail else ""
    raise FormatError(f"{Path(filename).name}: {first.error}{detail}", library=first.library)


def render(m: Melody, suffix: str) -> bytes:
    """One melody as the bytes of a file of this suffix (see `save`)."""
    return _render(m, suffix.lower(), None, None)


def _render(m: Melody, suffix: str, surprisal, extra: dict | None) -> bytes:
    """One melody as a file. ABC and MusicXML are written with repeat signs; MIDI, WAV and
    JSON are as played (repeats expanded; each JSON note keeps its written note's surprisal)."""
    if suffix in (".musicxml", ".xml"):
        return to_musicxml_bytes(m)
    if suffix == ".abc":
        return to_abc([m]).encode()
    heard, sources = played(m)
    if suffix == ".mid":
        return to_midi_bytes(heard)
    if suffix == ".wav":
        return to_wav_bytes(heard)
    bits = None if surprisal is None else [surprisal[i] for i in sources if i < len(surprisal)]
    form = {"form": m.form.letters() if m.form is not None else "A", "type": m.tune_type,
            "written_notes": len(m.notes)}
    return (json.dumps({**to_json_dict(heard, bits), **form, **(extra or {})}, indent=1)
            + "\n").encode()



def _per_melody(surprisal, count: int) -> list:
    """One surprisal list (or None) per melody; a single melody may pass its list unwrapped."""
    if surprisal is None:
        return [None] * count
    first = surprisal[0] if len(surprisal) else None
    if count == 1 and isinstance(first, (tuple, list)) and len(first) == 2 and isinstance(first[0], Real):
        return [surprisal]
    if len(surprisal) != count:
        raise FormatError(f"{len(surprisal)} surprisal lists for {count} melodies")
    return list(surprisal)


def output_targets(path: str | os.PathLike, count: int) -> list[Path]:
    """The files that saving `count` melodies to `path` writes (one multi-tune .abc, else
    numbered files when there are several), checked before any work is done: a known suffix,
    an existing folder, and no target that is a folder or read-only. A symbolic link is
    written through (its target is replaced, the link stays)."""
    path = Path(path)
    if path.is_dir():
        raise FormatError(f"{path} is a folder; give a file name, such as "
                          f"{path / ('tune' + (path.suffix or '.mid'))}")
    suffix = path.suffix.lower()
    if suffix not in WRITE_SUFFIXES:
        raise FormatError(f"unknown output type '{suffix or path.name}'; "
                          f"use one of {' '.join(WRITE_SUFFIXES)}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist")
    width = len(str(count))
    targets = [path] if count == 1 or suffix == ".abc" else [
        path.with_name(f"{path.stem}-{i:0{width}d}{path.suffix}") for i in range(1, count + 1)]
    for target in targets:
        if target.is_dir():
            raise FormatError(f"{target} is a folder, not a file")
        if target.exists() and not target.stat().st_mode & stat.S_IWUSR:
            raise FormatError(f"{target} is read-only; choose another name, or make it "
                              "writable first")
    return targets


def save(melodies: list[Melody], path: str | os.PathLike, surprisal=None,
         extra: list[dict] | None = None) -> list[Path]:
    """Write melodies by the path's suffix, atomically; returns the files written.

    Several melodies go into one multi-tune .abc file, or numbered files (tune-1.mid, tune-2.mid).
    `surprisal` is one list of (rhythm, pitch) bits per melody (or one list for a single melody).
    `extra` holds one dict per melody of fields added to (or replacing) its .json object.
    """
    if not melodies:
        raise FormatError("no melodies to write")
    path = Path(path)
    targets = output_targets(path, len(melodies))
    per_melody = _per_melody(surprisal, len(melodies))
    if path.suffix.lower() == ".abc":
        write_atomic(path, to_abc(melodies).encode())
        return targets
    suffix = path.suffix.lower()
    for m, s, x, target in zip(melodies, per_melody, extra or [None] * len(melodies), targets):
        write_atomic(target, _render(m, suffix, s, x))
    return targets
