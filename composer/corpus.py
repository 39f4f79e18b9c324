"""Ingest music21 collections, folders and files into a dataset file: parallel, cached, split."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import formats
from .dataset import SPLITS, Dataset
from .encoding import (DEFAULT_PITCH_HIGH, DEFAULT_PITCH_LOW, ENCODER_VERSION, Vocab,
                       build_duration_vocab, encode)
from .form import Form, TuneShape, apply_phrase_lines, bars_after_pickup, form_stats
from .music import MAX_BAR_TICKS, Melody, Meter, MusicError, nearest_shift
from .parsing import melody_from_dict, read_sources
from .tunetype import normalize_type

PHRASE_LINE_COLLECTIONS = ("essenFolksong",)  # these write one phrase per line
DEFAULT_COLLECTIONS = ("oneills1850", "ryansMammoth", "essenFolksong", "airdsAirs", "miscFolk")
COLLECTION_PREFIX = "music21:"


class CorpusError(ValueError):
    """A source that cannot be ingested: unknown collection, or nothing to read in it."""


@dataclass
class IngestOptions:
    """Filters and work split of an ingest; the defaults are what `composer ingest` uses."""

    min_notes: int = 8  # fewer sounding notes: "too short"
    max_notes: int = 2000  # more notes (rests included): "too long"
    min_meter_tunes: int = 10  # a meter with fewer kept tunes is "rare meter" ...
    rare_meter_share: float = 0.05  # ... unless it holds at least this share of a small corpus
    min_duration_count: int = 5  # duration vocabulary threshold (lowered for tiny corpora)
    split_percent: tuple[int, int, int] = (90, 5, 5)  # train / valid / test
    split_key_notes: int = 16  # notes of the opening that key the split
    fill_empty_splits: bool = True  # a small corpus's empty valid or test split gets train tunes
    abc_chunk_tunes: int = 24  # tunes per work unit when a big ABC file is divided


@dataclass
class SourceFile:
    """One file to read, with the names it is known by in the dataset."""

    path: Path
    source: str  # e.g. 'music21:oneills1850/0001-0050.abc' or 'jigs/tune.abc'
    style: str


@dataclass
class _Record:
    """Running state of one ingest."""

    skipped: Counter = field(default_factory=Counter)
    markers: Counter = field(default_factory=Counter)  # form markers dropped, by reason
    tunes_read: int = 0
    log: list[str] = field(default_factory=list)

    def skip(self, reason: str, where: str, detail: str = "") -> None:
        self.tunes_read += 1
        self.skipped[reason] += 1
        self.log.append(f"skipped {where}: {reason}" + (f" ({detail})" if detail else ""))


# --- sources ---------------------------------------------------------------------------------

def collection_names() -> list[str]:
    """Names of the music21 corpus collections (folders of its core corpus)."""
    from music21 import common

    root = Path(common.getCorpusFilePath())
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(("_", ".")))


def resolve_sources(sources: list[str], style: str | None = None) -> list[SourceFile]:
    """Expand SOURCE arguments into files; FileNotFoundError / CorpusError for bad ones."""
    files: list[SourceFile] = []
    for src in sources or [COLLECTION_PREFIX + c for c in DEFAULT_COLLECTIONS]:
        if src.startswith(COLLECTION_PREFIX):
            files += _collection_files(src[len(COLLECTION_PREFIX):], style)
            continue
        path = Path(src)
        if path.is_file():
            files.append(SourceFile(path, path.name, style or path.resolve().parent.name))
        elif path.is_dir():
            label = style or path.resolve().name
            found = sorted(p for p in path.rglob("*")
                           if p.suffix.lower() in formats.READ_SUFFIXES and p.is_file())
            files += [SourceFile(p, p.relative_to(path).as_posix(), label) for p in found]
        else:
            raise FileNotFoundError(f"no such file or folder: {src}")
    return files


def _collection_files(name: str, style: str | None) -> list[SourceFile]:
    from music21 import corpus

    paths = [Path(str(p)) for p in corpus.getComposer(name)] if name else []
    paths = sorted(p for p in paths if p.suffix.lower() in formats.READ_SUFFIXES)
    if not paths:
        raise CorpusError(f"unknown music21 collection {name!r}; valid collections: "
                          f"{', '.join(collection_names())}")
    root = paths[0].parent
    while not all(root in p.parents for p in paths):
        root = root.parent
    prefix = COLLECTION_PREFIX + name
    return [SourceFile(p, f"{prefix}/{p.relative_to(root).as_posix()}", style or name)
            for p in paths]


def collection_of(source: str) -> str:
    """The music21 collection a source names ('music21:oneills1850/...' -> 'oneills1850'), or ''."""
    return source[len(COLLECTION_PREFIX):].split("/")[0] if source.startswith(COLLECTION_PREFIX) else ""


def _with_form(mel: Melody, t: dict, source: str, rec: "_Record") -> Melody:
    """The melody's tune type normalised, its form checked against its bars, and phrases from
    its lines where the collection writes one phrase per line; unusable markers are counted."""
    collection = collection_of(source)
    mel.tune_type = normalize_type(mel.tune_type, str(mel.meter), collection)
    rec.markers.update(t.get("dropped") or [])
    bar = mel.meter.bar_ticks
    bars = bars_after_pickup(mel.start_position, mel.total_ticks, bar)
    if mel.form is None or mel.form.written_bars != bars:
        if mel.form is not None:
            rec.markers["form that does not fit the bars"] += 1
        mel.form = Form.through(max(1, bars))
    if collection in PHRASE_LINE_COLLECTIONS and t.get("lines"):
        form, ok = apply_phrase_lines(mel.form, t["lines"], bar, mel.start_position)
        if ok:
            mel.form = form
        else:
            rec.markers["phrase lines that do not fit the parts"] += 1
    return mel


# --- from parsed tunes to the dataset --------------------------------------------------------

def split_key(melody: Melody, n_notes: int = 16) -> str:
    """Hash of the opening: (interval from the previous sounding pitch, duration) of the first
    `n_notes` notes. It ignores key and transposition, so copies of a tune in two collections,
    and variants that differ only after the opening, always fall in the same split."""
    prev, items = None, []
    for note in melody.notes[:n_notes]:
        if note.pitch is None:
            items.append(("r", note.duration))
        else:
            items.append((None if prev is None else note.pitch - prev, note.duration))
            prev = note.pitch
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def split_of(key: str, percent: tuple[int, int, int] = (90, 5, 5)) -> int:
    """0 train, 1 valid, 2 test, from a split key (deterministic, about `percent`)."""
    bucket = int(key[:12], 16) % sum(percent)
    return 0 if bucket < percent[0] else (1 if bucket < percent[0] + percent[1] else 2)


def fill_empty_splits(split: list[int], keys: list[str]) -> list[str]:
    """In a small corpus the hash can leave valid or test empty. Move train tunes there (those
    with the smallest split key, and every copy of it, so the choice is stable), one key per
    empty split while train keeps one, in place; returns the warnings to show."""
    warnings = []
    for target, name in ((1, "valid"), (2, "test")):
        train_keys = sorted({k for k, s in zip(keys, split) if s == 0})
        if target in split or len(train_keys) < 2:
            continue
        moved = [i for i, k in enumerate(keys) if k == train_keys[0]]
        for i in moved:
            split[i] = target
        warnings.append(f"the {name} split was empty; moved {len(moved)} tune(s) there from train")
    empty = [name for target, name in ((1, "valid"), (2, "test")) if target not in split]
    if empty:
        warnings.append(f"the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} "
                        "empty: too few distinct tunes to hold any out")
    elif len(split) < 200:
        warnings.append(f"only {len(split)} tunes: the valid and test figures rest on "
                        f"{split.count(1)} and {split.count(2)} of them and will be noisy "
                        "(a few hundred tunes is a useful minimum)")
    return warnings


def _check(d: dict, meter: Meter, opts: IngestOptions, pitch_span: int) -> str | None:
    """Skip reason of a parsed melody (as a dict of note lists), or None to keep it."""
    if meter.bar_ticks > MAX_BAR_TICKS:
        return "unsupported meter"
    sounding = [p for p in d["pitches"] if p is not None]
    if len(sounding) < opts.min_notes:
        return "too short"
    if len(d["pitches"]) > opts.max_notes:
        return "too long"
    if min(d["durations"]) <= 0:
        return "rhythm not representable"
    if min(sounding) < 0 or max(sounding) > 127 or max(sounding) - min(sounding) > pitch_span:
        return "pitch out of range"
    return None


def signature(d: dict) -> tuple:
    """encoding.melody_signature of a melody given as a dict of note lists, without building
    Note objects (this is the hot loop of a warm ingest)."""
    shift = nearest_shift(int(d["tonic"]), 0)
    return tuple(zip([None if p is None else p + shift for p in d["pitches"]], d["durations"]))


def _select(files: list[SourceFile], parsed: list[list[dict]], opts: IngestOptions,
            rec: _Record) -> list[tuple[Melody, dict]]:
    """Melodies that pass the filters, first copy of each duplicate only, with their metadata."""
    kept: list[tuple[Melody, dict]] = []
    seen: dict[tuple, str] = {}
    span = DEFAULT_PITCH_HIGH - DEFAULT_PITCH_LOW
    for sf, tunes in zip(files, parsed):
        if not tunes:
            rec.skip("no tunes", sf.source)
        for i, t in enumerate(tunes):
            number = t.get("number") if t.get("number") is not None else i + 1
            where = f"{sf.source}#{number}" + (f" {t['title']!r}" if t.get("title") else "")
            d = t.get("melody")
            if t.get("error") or d is None:
                rec.skip(str(t.get("error") or "no melody"), where, t.get("detail") or "")
                continue
            try:
                reason = _check(d, Meter.parse(d["meter"]), opts, span)
                sig = signature(d) if reason is None else None
                mel = melody_from_dict(d, sf.style) if reason is None and sig not in seen else None
            except (MusicError, KeyError, TypeError, ValueError) as e:
                reason = getattr(e, "reason", None) or "parse error"
                rec.skip(reason, where, formats.one_line(e))
                continue
            if reason is None and sig in seen:
                reason = "duplicate"
            if reason:
                rec.skip(reason, where, f"of {seen[sig]}" if reason == "duplicate" else "")
                continue
            seen[sig] = where
            mel = _with_form(mel, t, sf.source, rec)
            kept.append((mel, {"title": t.get("title") or mel.title, "source": sf.source,
                               "number": number, "style": sf.style, "meter": str(mel.meter),
                               "mode": mel.mode, "key": mel.key_name(), "type": mel.tune_type,
                               "form": mel.form.letters(),
                               **({"key_from_final": True} if t.get("key_from_final") else {})}))
    return kept


def ingest(sources: list[str] | None, out: str | os.PathLike, workers: int | None = None,
           style: str | None = None, verbose: bool = False, progress: bool = False,
           cache_dir: str | os.PathLike | None = None,
           options: IngestOptions | None = None) -> dict:
    """Read, filter, deduplicate, encode and split the tunes of `sources`; save the dataset to
    `out` (atomically) and return the summary. Skipped tunes are named on stderr if `verbose`."""
    t0 = time.perf_counter()
    opts = options or IngestOptions()
    out = Path(out)
    if out.is_dir():
        raise CorpusError(f"--out {out} is a folder; give the dataset file to write, such as "
                          f"{out / 'folk.npz'}")
    cache = Path(cache_dir) if cache_dir is not None else out.parent / "cache"
    workers = max(1, workers or os.cpu_count() or 1)
    files = resolve_sources(list(sources or []), style)
    if not files:
        raise CorpusError(f"no {'/'.join(formats.READ_SUFFIXES)} files in {', '.join(sources or [])}")
    parsed, hits = read_sources([sf.path for sf in files], cache, workers, opts.abc_chunk_tunes,
                                progress)
    rec = _Record()
    kept = _select(files, parsed, opts, rec)
    kept = _drop_rare_meters(kept, opts, rec)
    vocab, enc_tunes, metas, snapped = _encode_all(kept, opts, rec)
    if verbose:
        for line in rec.log:
            print(line, file=sys.stderr)
    if not enc_tunes:
        raise CorpusError(f"no tunes kept from {rec.tunes_read} read"
                          + (f" (skipped: {_reasons(rec.skipped)})" if rec.skipped else ""))
    keys = [split_key(m, opts.split_key_notes) for m, _ in metas]
    split = [split_of(k, opts.split_percent) for k in keys]
    warnings = fill_empty_splits(split, keys) if opts.fill_empty_splits else []
    summary = {
        "tunes_read": rec.tunes_read + len(enc_tunes),
        "tunes_kept": len(enc_tunes),
        "skipped": dict(sorted(rec.skipped.items(), key=lambda kv: (-kv[1], kv[0]))),
        "notes": int(sum(len(e.durations) for e in enc_tunes)),
        "splits": {name: split.count(i) for i, name in enumerate(SPLITS)},
        "files": len(files), "cached_files": hits,
        "snapped_tunes": snapped, "durations": len(vocab.durations),
        "meters": dict(Counter(e.meter for e in enc_tunes).most_common()),
        "modes": dict(Counter(e.mode for e in enc_tunes).most_common()),
        "styles": dict(Counter(e.style for e in enc_tunes).most_common()),
        "types": dict(Counter(e.tune_type for e in enc_tunes).most_common()),
        "forms": form_stats([TuneShape(m.tune_type, str(m.meter), m.form, m.pickup, m.style)
                             for m, _ in metas]),
        "markers_dropped": dict(rec.markers.most_common()),
        "da_capo": sum(bool(m.form and m.form.da_capo) for m, _ in metas),
        "keys_from_final": sum(bool(m.get("key_from_final")) for _, m in metas),
        "out": str(out), "workers": workers, "warnings": warnings,
    }
    info = {"encoder_version": ENCODER_VERSION, "sources": list(sources or [])}
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    info["summary"] = summary
    Dataset.from_tunes(enc_tunes, vocab, split, tunes=[m for _, m in metas], info=info).save(out)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def _drop_rare_meters(kept: list[tuple[Melody, dict]], opts: IngestOptions,
                      rec: _Record) -> list[tuple[Melody, dict]]:
    """Drop meters with too few tunes to learn from; in a small corpus a meter holding a fair
    share of it is kept however few its tunes."""
    counts = Counter(str(m.meter) for m, _ in kept)
    need = min(opts.min_meter_tunes, math.ceil(opts.rare_meter_share * len(kept)))
    out = []
    for mel, meta in kept:
        if counts[meta["meter"]] < need:
            rec.skip("rare meter", f"{meta['source']}#{meta['number']}", meta["meter"])
        else:
            out.append((mel, meta))
    return out


def _encode_all(kept: list[tuple[Melody, dict]], opts: IngestOptions, rec: _Record):
    """Duration vocabulary from the kept tunes, then encode each (snapping rare durations)."""
    if not kept:
        return None, [], [], 0
    counts = Counter(n.duration for m, _ in kept for n in m.notes)
    min_count = max(1, min(opts.min_duration_count, len(kept) // 20))
    try:
        durations = build_duration_vocab(counts, min_count)
    except MusicError:
        durations = build_duration_vocab(counts, 1)
    allowed = set(durations)
    work = Vocab(durations=durations)
    enc_tunes, metas, snapped = [], [], 0
    for mel, meta in kept:
        try:
            enc = encode(mel, work, snap=True)
        except MusicError as e:
            rec.skip("rhythm not representable", f"{meta['source']}#{meta['number']}", formats.one_line(e))
            continue
        snapped += not allowed.issuperset(n.duration for n in mel.notes)
        enc_tunes.append(enc)
        metas.append((mel, meta))
    vocab = Vocab(durations=durations, meters=sorted({e.meter for e in enc_tunes}) or ["4/4"],
                  modes=sorted({e.mode for e in enc_tunes}) or ["major"],
                  styles=sorted({e.style for e in enc_tunes}) or ["default"],
                  types=sorted({e.tune_type for e in enc_tunes}) or ["other"])
    return vocab, enc_tunes, metas, snapped


def _reasons(skipped: Counter | dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(skipped.items(), key=lambda kv: -kv[1]))


def format_summary(s: dict) -> str:
    """The summary as a few human-readable lines."""
    splits = ", ".join(f"{k} {v}" for k, v in s["splits"].items())
    lines = [
        f"read {s['tunes_read']} tunes from {s['files']} files ({s['cached_files']} from cache)",
        f"kept {s['tunes_kept']} tunes, {s['notes']} notes; splits: {splits}",
        f"skipped {sum(s['skipped'].values())}: {_reasons(s['skipped']) or 'none'}",
        f"{s['snapped_tunes']} tunes had rare durations snapped; {s['durations']} durations, "
        f"meters: {', '.join(s['meters'])}",
        f"tune types: {_reasons(s.get('types', {})) or 'none'}",
        f"form markers dropped: {_reasons(s.get('markers_dropped', {})) or 'none'}; "
        f"{s.get('da_capo', 0)} tunes go back at their written end (D.C., D.S., Fine)",
        f"{s.get('keys_from_final', 0)} keys read from the tune's final (a bare key signature, "
        "and the tune closes on another note)",
        f"wrote {s['out']} in {s['seconds']:.1f} s",
        *(f"warning: {w}" for w in s.get("warnings", [])),
    ]
    return "\n".join(lines)
