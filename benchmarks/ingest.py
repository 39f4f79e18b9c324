"""Ingest speed: cold and warm ingest of the default corpus, and a folder of small MIDI files.

Usage: python benchmarks/ingest.py [--workers 2] [--midi-files 1000] [--skip-corpus]
                                  [--sources SRC ...] [--json]

Targets (2-core machine): cold <= 5 min, warm <= 10 s, >= 200 MIDI files/s.
Everything is written to a temporary folder, so the project's data/ and cache are untouched.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import mido

from composer import corpus


def write_midi_folder(folder: Path, n: int, seed: int = 0) -> None:
    """`n` small one-track MIDI files (12-48 notes, 6/8 or 4/4, quantized)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        mid = mido.MidiFile(ticks_per_beat=480)
        track = mido.MidiTrack()
        mid.tracks.append(track)
        num, den = rng.choice([(6, 8), (4, 4)])
        track.append(mido.MetaMessage("time_signature", numerator=num, denominator=den))
        track.append(mido.MetaMessage("set_tempo", tempo=500000))
        pitch = rng.randrange(60, 72)
        for _ in range(rng.randrange(12, 49)):
            pitch = max(50, min(84, pitch + rng.choice([-4, -2, -1, 1, 2, 3])))
            ticks = rng.choice([240, 240, 480, 720] if num == 6 else [240, 480, 480, 960])
            track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
            track.append(mido.Message("note_off", note=pitch, velocity=0, time=ticks))
        mid.save(folder / f"tune{i:04d}.mid")


def timed(sources: list[str], out: Path, cache: Path, workers: int) -> tuple[float, dict]:
    t0 = time.perf_counter()
    summary = corpus.ingest(sources, out, workers=workers, cache_dir=cache)
    return time.perf_counter() - t0, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--midi-files", type=int, default=1000)
    ap.add_argument("--skip-corpus", action="store_true", help="only the MIDI folder")
    ap.add_argument("--sources", nargs="+", default=[], metavar="SRC",
                    help="ingest these sources instead of the default corpus (e.g. a subset)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    corpus_name = " ".join(args.sources) or "default corpus"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if not args.skip_corpus:
            sec, s = timed(args.sources, tmp / "folk.npz", tmp / "cache", args.workers)
            rows.append((f"cold ingest, {corpus_name}", s["files"], s["tunes_kept"], sec,
                         f"{s['tunes_read'] / sec:.0f} tunes/s", "<= 300 s", sec <= 300))
            sec, s = timed(args.sources, tmp / "folk2.npz", tmp / "cache", args.workers)
            rows.append(("warm re-ingest (cache)", s["files"], s["tunes_kept"], sec,
                         f"{s['tunes_read'] / sec:.0f} tunes/s", "<= 10 s", sec <= 10))
        write_midi_folder(tmp / "midi", args.midi_files)
        sec, s = timed([str(tmp / "midi")], tmp / "midi.npz", tmp / "midi-cache", args.workers)
        rate = s["files"] / sec
        rows.append((f"{args.midi_files} small MIDI files, cold", s["files"], s["tunes_kept"], sec,
                     f"{rate:.0f} files/s", ">= 200 files/s", rate >= 200))
    if args.json:
        keys = ("case", "files", "kept", "seconds", "rate", "target", "ok")
        print(json.dumps({"workers": args.workers, "corpus": corpus_name,
                          "rows": [dict(zip(keys, row)) for row in rows]}))
        return
    print(f"workers: {args.workers}")
    print(f"{'case':32} {'files':>6} {'kept':>6} {'seconds':>8}  {'rate':>14}  {'target':>15}  ok")
    for name, files, kept, sec, rate, target, ok in rows:
        verdict = "yes" if ok else "NO"
        print(f"{name:32} {files:6d} {kept:6d} {sec:8.2f}  {rate:>14}  {target:>15}  {verdict}")


if __name__ == "__main__":
    main()
