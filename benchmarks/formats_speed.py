"""Time the per-request writers: MIDI, ABC and JSON for melodies of 16 to 256 notes.

usage: python benchmarks/formats_speed.py [--repeat N] [--json]
The web API writes MIDI for every composition; the goal is well under 2 ms for a 64-note tune.
"""

from __future__ import annotations

import argparse
import json
import timeit

from composer import formats
from composer.music import Melody, Meter, Note


def melody(notes: int) -> Melody:
    """A 6/8 tune with a pickup, rests and repeated pitches."""
    pattern = [Note(62, 12), Note(66, 12), Note(69, 12), Note(69, 24), Note(None, 12), Note(71, 8)]
    return Melody([pattern[i % len(pattern)] for i in range(notes)], Meter(6, 8), tonic=2,
                  mode="dorian", pickup=12, tempo=110, title="Benchmark Jig")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=300, help="calls per measurement")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    writers = {"midi": formats.to_midi_bytes, "abc": lambda m: formats.to_abc([m]),
               "json": formats.to_json_dict}
    rows = []
    for name, write in writers.items():
        for notes in (16, 64, 256):
            m = melody(notes)
            best = min(timeit.repeat(lambda: write(m), number=args.repeat, repeat=3)) / args.repeat
            rows.append({"writer": name, "notes": notes, "ms_per_call": best * 1000})
    if args.json:
        print(json.dumps({"rows": rows}))
        return
    print(f"{'writer':<6} {'notes':>5} {'ms/call':>8}")
    for r in rows:
        print(f"{r['writer']:<6} {r['notes']:>5} {r['ms_per_call']:>8.3f}")


if __name__ == "__main__":
    main()
