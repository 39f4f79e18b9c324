"""Parsing source files for ingest: the readers run in worker processes, each file's tunes are
cached as plain JSON by the hash of its content, and a crashed reader costs only its own file."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from . import formats
from .encoding import ENCODER_VERSION
from .files import write_atomic
from .form import Form
from .music import Melody, Meter, Note

# --- parsing in worker processes -------------------------------------------------------------

def reader_fingerprint() -> str:
    """Part of every cache key: the encoder version and the code of the readers and of this
    module (a change re-parses)."""
    h = hashlib.sha256()
    readers = sorted(Path(formats.__file__).parent.glob("*.py"))  # every module of the formats package
    for path in (*readers, Path(__file__), Path(sys.modules[Melody.__module__].__file__),
                 Path(sys.modules[Form.__module__].__file__)):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"enc{ENCODER_VERSION}-fmt{formats.FORMATS_VERSION}-{h.hexdigest()[:16]}"


def tune_to_dict(t: "formats.ParsedTune") -> dict:
    """A ParsedTune as plain JSON-able data (what the cache stores and workers send back)."""
    m = t.melody
    mel = None if m is None else {
        "pitches": [n.pitch for n in m.notes], "durations": [n.duration for n in m.notes],
        "meter": str(m.meter), "tonic": m.tonic, "mode": m.mode, "pickup": m.pickup,
        "tempo": m.tempo, "title": m.title, "type": m.tune_type, "tonic_name": m.tonic_name,
        "form": m.form.to_dict() if m.form is not None else None}
    return {"number": t.number, "title": t.title, "error": t.error,
            "detail": "; ".join(x for x in (t.detail, t.library) if x),
            "melody": mel, "dropped": t.dropped, "lines": t.lines,
            "key_from_final": t.key_from_final}


def melody_from_dict(d: dict, style: str) -> Melody:
    notes = [Note(p, dur) for p, dur in zip(d["pitches"], d["durations"])]
    return Melody(notes=notes, meter=Meter.parse(d["meter"]), tonic=int(d["tonic"]), mode=d["mode"],
                  pickup=int(d["pickup"]), tempo=float(d["tempo"]), title=d["title"], style=style,
                  tune_type=d.get("type", ""), form=Form.from_dict(d.get("form")),
                  tonic_name=d.get("tonic_name"))


def parse_units(units: list[tuple[int, str, bytes]]) -> list[tuple[int, list[dict]]]:
    """Worker entry point: read each (unit id, file name, bytes) with formats.read_tunes."""
    out = []
    for uid, name, data in units:
        try:
            tunes = [tune_to_dict(t) for t in formats.read_tunes(name, data)]
        except Exception as e:  # the reader should not raise; never let one file stop the ingest
            tunes = [_failed("parse error", formats.one_line(e))]
        out.append((uid, tunes))
    return out


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end the worker if the ingest process dies (a killed parent would
    otherwise leave its workers waiting forever)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


READER_CRASHED = "reader crashed"  # not cached: a crash may come from the machine, not the file


def _failed(reason: str, detail: str = "") -> dict:
    return {"number": None, "title": "", "error": reason, "detail": detail, "melody": None}


def split_abc(data: bytes, per_chunk: int) -> list[bytes]:
    """Divide a multi-tune ABC file into pieces of `per_chunk` tunes, each with the file header."""
    starts = [m.start() for m in re.finditer(rb"^X:", data, re.M)]
    if len(starts) <= per_chunk:
        return [data]
    header = data[:starts[0]]
    bounds = starts[::per_chunk] + [len(data)]
    return [header + data[a:b] for a, b in zip(bounds, bounds[1:])]


def _run_units(units: list[tuple[int, str, bytes]], weights: list[int], workers: int,
               progress: bool, on_done) -> None:
    """Parse all units, in worker processes when that pays; on_done(unit id, tunes) for each."""
    bar = _progress_bar(sum(weights), progress)
    order = sorted(range(len(units)), key=lambda i: -weights[i])  # biggest first balances workers
    batches = _batches(order, weights, workers)
    try:
        if workers <= 1 or len(batches) <= 1:
            for batch in batches:
                for uid, tunes in parse_units([units[i] for i in batch]):
                    on_done(uid, tunes)
                bar.update(sum(weights[i] for i in batch))
            return
        suspects: list[int] = []  # units of the batches a crashed worker took down with it
        with ProcessPoolExecutor(max_workers=workers, initializer=_exit_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            pending = {pool.submit(parse_units, [units[i] for i in b]): b for b in batches}
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        batch = pending.pop(fut)
                        try:
                            done_units = fut.result()
                        except BrokenProcessPool:  # a reader crashed the interpreter
                            suspects += batch
                            continue
                        for uid, tunes in done_units:
                            on_done(uid, tunes)
                        bar.update(sum(weights[i] for i in batch))
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        for i in sorted(suspects):
            on_done(*_parse_alone(units[i]))
            bar.update(weights[i])
    finally:
        bar.close()


def _parse_alone(unit: tuple[int, str, bytes]) -> tuple[int, list[dict]]:
    """Parse one unit in a process of its own, so that a crash costs that unit only (a broken
    pool fails every batch it held, and most of those were innocent)."""
    with ProcessPoolExecutor(max_workers=1, initializer=_exit_with_parent,
                             initargs=(os.getpid(),)) as pool:
        try:
            [done] = pool.submit(parse_units, [unit]).result()
            return done
        except BrokenProcessPool:
            return unit[0], [_failed(READER_CRASHED, "the reader ended its process")]


def _batches(order: list[int], weights: list[int], workers: int) -> list[list[int]]:
    """Group small units so that many tiny files do not cost one round trip each."""
    target = max(1, sum(weights) // (workers * 32))  # a small last batch keeps the tail short
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_w = 0
    for i in order:
        cur.append(i)
        cur_w += weights[i]
        if cur_w >= target or len(cur) >= 64:
            batches.append(cur)
            cur, cur_w = [], 0
    return batches + ([cur] if cur else [])


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="tune", file=sys.stderr, desc="ingest", leave=False,
                disable=not enabled)


# --- cache -----------------------------------------------------------------------------------

def _cache_load(path: Path) -> list[dict] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))["tunes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged entries are simply parsed again


def _prune_cache(cache_dir: Path, keep: str) -> None:
    """Remove cache folders written by other versions of the readers or the encoder."""
    if cache_dir.is_dir():
        for old in cache_dir.glob("enc*-fmt*-*"):
            if old.name != keep and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)


def read_sources(paths: list[Path], cache_dir: Path, workers: int, abc_chunk_tunes: int,
                 progress: bool = False) -> tuple[list[list[dict]], int]:
    """Parsed tunes (as dicts) of every file, from the cache or the readers; and the cache hits.

    The cache holds one JSON file per source file, named by the hash of its content, in a folder
    named by the reader fingerprint; folders of other fingerprints are stale and get removed.
    """
    fingerprint = reader_fingerprint()
    _prune_cache(cache_dir, fingerprint)
    cache_dir = cache_dir / fingerprint
    per_file: list[list[dict]] = [[] for _ in paths]
    keys = [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths]
    units: list[tuple[int, str, bytes]] = []
    weights: list[int] = []
    where: list[tuple[int, int]] = []  # unit -> (file, piece of that file)
    pieces_done: dict[int, list] = {}  # file -> parsed pieces (None until parsed)
    hits = 0

    def store(fi: int) -> None:  # as soon as a file is complete, so an interrupted run keeps it
        if any(t.get("error") == READER_CRASHED for t in per_file[fi]):
            return
        write_atomic(cache_dir / f"{keys[fi]}.json",
                     json.dumps({"reader": fingerprint, "tunes": per_file[fi]}).encode())

    for fi, path in enumerate(paths):
        cached = _cache_load(cache_dir / f"{keys[fi]}.json")
        if cached is not None:
            per_file[fi], hits = cached, hits + 1
            continue
        data = path.read_bytes()
        if not data.strip():
            per_file[fi] = [_failed("empty file")]
            store(fi)
            continue
        is_abc = path.suffix.lower() == ".abc"
        pieces = split_abc(data, abc_chunk_tunes) if is_abc else [data]
        pieces_done[fi] = [None] * len(pieces)
        for k, piece in enumerate(pieces):
            units.append((len(units), str(path), piece))
            weights.append(max(1, len(re.findall(rb"(?m)^X:", piece))) if is_abc else 1)
            where.append((fi, k))

    def on_done(uid: int, tunes: list[dict]) -> None:
        fi, k = where[uid]
        pieces_done[fi][k] = tunes
        if all(p is not None for p in pieces_done[fi]):
            per_file[fi] = [t for p in pieces_done.pop(fi) for t in p]
            store(fi)

    if units:
        _run_units(units, weights, workers, progress, on_done)
    return per_file, hits
