"""The files of the command line: reading the tune a user names, writing what was composed."""

from __future__ import annotations

from pathlib import Path

from .formats import output_targets, read_melody, save, to_abc
from .music import Melody, MusicError
from .requests import Composition


def read_input(path: str | Path) -> Melody:
    """The melody of a music file (first tune; the melody track of a multi-track MIDI)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"input file not found: {path}")
    if p.is_dir():
        raise MusicError(f"{path} is a folder, not a music file")
    return read_melody(p.read_bytes(), p.name)


def check_output(out: str, count: int) -> None:
    """Refuse, before any work, an output the tunes could not be written to ('-' is stdout)."""
    if out != "-":
        output_targets(out, count)


def write_output(comps: list[Composition], out: str) -> tuple[list[Path], str | None]:
    """Save compositions by OUT's suffix; '-' returns ABC text to print instead. .json files carry
    the per-note surprisal, bits/note (notes + END, as `score` reports it) and the seed."""
    melodies = [c.melody for c in comps]
    if out == "-":
        return [], to_abc(melodies)
    extra = [{"bits_per_note": round(c.bits_per_note, 4), "seed": c.seed,
              "fragment_notes": c.fragment_notes} for c in comps]
    return save(melodies, Path(out), surprisal=[c.surprisal for c in comps], extra=extra), None


def report_line(comps: list[Composition], written: list[Path]) -> str:
    """One line for the terminal: what was written, the seed and bits/note."""
    bits = ", ".join(f"{c.bits_per_note:.2f}" for c in comps)
    where = ", ".join(str(p) for p in written) if written else "ABC to stdout"
    return f"wrote {where} (seed {comps[0].seed}; bits/note {bits})"
