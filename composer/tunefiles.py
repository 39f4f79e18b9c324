"""The files of the command line: reading the tune a user names, writing what was composed."""

from __future__ import annotations

from pathlib import Path

from .formats import output_targets, read_melody, save, to_abc
from .formats.abc import abc_extras, iter_abc
from .music import Melody, MusicError
from .requests import Composition


def read_input(path: str | Path, tune: str | None = None) -> tuple[Melody, list[str]]:
    """The melody of a music file (the melody track of a multi-track MIDI), and what to tell
    the user about it. In a multi-tune ABC file `tune` picks one by X: number or title; without
    it the first readable tune is used, and the notes say which, and what the melody leaves
    out (chord symbols, decorations, ...)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"input file not found: {path}")
    if p.is_dir():
        raise MusicError(f"{path} is a folder, not a music file")
    data = p.read_bytes()
    if p.suffix.lower() != ".abc":
        if tune is not None:
            raise MusicError(f"--tune picks a tune of a multi-tune ABC file; {p.name} is not "
                             "one", field="tune")
        return read_melody(data, p.name), []
    tunes = list(iter_abc(data.decode("utf-8", errors="replace")))
    chosen = range(len(tunes))
    if tune is not None:
        want = str(tune).strip().lower()
        chosen = [i for i, (number, title, _, _) in enumerate(tunes)
                  if str(number) == want or (title or "").strip().lower() == want]
        if not chosen:
            listed = ", ".join(f"{n} {t or ''}".strip() for n, t, _, _ in tunes[:10])
            raise MusicError(f"no tune numbered or titled {tune!r} in {p.name}; it holds "
                             f"{len(tunes)}: {listed}{' ...' if len(tunes) > 10 else ''}",
                             field="tune")
    first_error = None
    for i in chosen:
        number, title, _, text = tunes[i]
        try:
            melody = read_melody(text().encode(), p.name)
        except MusicError as e:
            first_error = first_error or e
            continue
        notes = []
        if len(tunes) > 1:
            notes.append(f"using tune {i + 1} of {len(tunes)} in {p.name} (X:{number} "
                         f"{title or 'untitled'}); choose another with --tune")
        left_out = abc_extras(text())
        if left_out:
            notes.append("the melody leaves out " + ", ".join(f"{n} {k}" for k, n in left_out.items()))
        return melody, notes
    raise first_error


def check_output(out: str, count: int) -> None:
    """Refuse, before any work, an output the tunes could not be written to ('-' is stdout)."""
    if out != "-":
        output_targets(out, count)


def write_output(comps: list[Composition], out: str) -> tuple[list[Path], str | None]:
    """Save compositions by OUT's suffix; '-' returns ABC text to print instead. .json files carry
    the per-note surprisal, bits/note (notes + END, as `score` reports it), the seed and the
    temperature."""
    melodies = [c.melody for c in comps]
    if out == "-":
        return [], to_abc(melodies)
    extra = [{"bits_per_note": round(c.bits_per_note, 4), "seed": c.seed,
              "temperature": c.temperature, "fragment_notes": c.fragment_notes} for c in comps]
    return save(melodies, Path(out), surprisal=[c.surprisal for c in comps], extra=extra), None


def report_line(comps: list[Composition], written: list[Path]) -> str:
    """One line for the terminal: what was written (the type and style it was composed in),
    the seed, temperature and bits/note; many files are summarised by their first and last."""
    bits = [c.bits_per_note for c in comps]
    if len(written) > 4:
        where = f"{len(written)} files, {written[0]} .. {written[-1]}"
    else:
        where = ", ".join(str(p) for p in written) if written else "ABC to stdout"
    if len(bits) > 4:
        said = f"bits/note {min(bits):.2f}..{max(bits):.2f}, mean {sum(bits) / len(bits):.2f}"
    else:
        said = "bits/note " + ", ".join(f"{b:.2f}" for b in bits)
    m = comps[0].melody
    about = [m.tune_type if m.tune_type not in ("", "other") else "", m.style and f"style {m.style}"]
    about = ", ".join(x for x in about if x)
    drawn = f"seed {comps[0].seed}" + (f", temperature {comps[0].temperature:g}"
                                       if comps[0].temperature is not None else "")
    return f"wrote {where} ({about + '; ' if about else ''}{drawn}; {said})"


def known_tunes(model_dir: str | None, required: bool = False):
    """The known-tunes index (similar.SimilarIndex) of a model folder (None: the shipped
    model); None if it has none, or with `required` a MusicError that says how to build it."""
    from .modelfiles import default_model_dir
    from .similar import SimilarIndex

    folder = model_dir or default_model_dir()
    index = SimilarIndex.load(folder)
    if index is None and required:
        raise MusicError(f"the model in {folder} has no index of known tunes; build it with "
                         "`composer index DATA --model FOLDER`")
    return index


def nearest_line(comps: list[Composition], model_dir: str | None) -> str | None:
    """A line naming the known tune closest to each written tune (the most similar one, for
    many), from the model's index; None if the model has none."""
    from .modelchoices import style_name

    index = known_tunes(model_dir)
    if index is None:
        return None
    found = [(c, (index.nearest(c.melody, 1) or [None])[0]) for c in comps]
    found = [(c, m) for c, m in found if m is not None]
    if not found:
        return "closest known tune: none shares a phrase"
    said = lambda m: (f"{m.title!r} ({style_name(m.style)}), similarity "  # noqa: E731
                      f"{m.similarity:.2f}")
    if len(found) == 1:
        return f"closest known tune: {said(found[0][1])}"
    top = max(found, key=lambda cm: cm[1].similarity)
    return (f"closest known tunes: similarity {min(m.similarity for _, m in found):.2f}.."
            f"{top[1].similarity:.2f}; the most similar, to {top[0].melody.title!r}: "
            f"{said(top[1])}")
