"""Which form a tune gets: the one a user names, the usual form of its type, or a fragment's.

The usual meter, form, part length and share of first and second endings of each tune type
come from the corpus the model was trained on (`form.form_stats`, kept in the checkpoint's
config). Pure Python; no torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .form import PHRASE_BARS, Form, Part
from .music import MusicError
from .tunetype import check_type

# What a type the corpus did not describe gets: two 8-bar parts, each played twice.
FALLBACK = {"meter": "4/4", "form": "AABB", "part_bars": 8, "phrase_bars": PHRASE_BARS,
            "endings": 0.0}
DEFAULT_BARS = 16  # of a through-composed tune
ENDINGS_SHARE = 0.5  # a type whose repeated parts mostly have endings gets them by default


@dataclass
class TypeForms:
    """The tune types a model knows, with what the corpus says of each."""

    types: list[str]
    stats: dict[str, dict] = field(default_factory=dict)

    def check(self, name: str) -> str:
        return check_type(name, self.types)

    def usual(self, tune_type: str) -> dict:
        return {**FALLBACK, **self.stats.get(tune_type, {})}

    def type_for_meter(self, meter: str) -> str:
        """The type most tunes of this meter have (by each type's usual meter), else 'other'."""
        fits = [(s.get("tunes", 0), t) for t, s in self.stats.items()
                if s.get("meter") == meter and t in self.types]
        if fits:
            return max(fits)[1]
        return "other" if "other" in self.types else self.types[0]

    def compose_form(self, tune_type: str | None, spec: str | None, bars: int | None,
                     endings: bool | None = None) -> Form:
        """The form of a new tune: `spec` (letters; parts as long as the type's), else `bars`
        through-composed (4-bar phrases), else the type's usual form. Parts of a form are cut
        in phrases of the type's usual length (form_stats). Repeated parts get first and
        second endings if `endings`, or (None) where most of the type's repeated parts have
        them."""
        usual = self.usual(tune_type or "")
        if not spec and (bars is not None or tune_type is None):
            return Form.through(int(bars or DEFAULT_BARS))
        form = self._phrased(parse_form(spec or usual["form"], int(usual["part_bars"])), usual)
        if endings is None:
            endings = usual["endings"] >= ENDINGS_SHARE
        return with_endings(form) if endings else form

    def continue_form(self, fragment: Form | None, fragment_bars: int, tune_type: str,
                      spec: str | None, bars: int) -> Form:
        """The form of a fragment carried on. A fragment written with parts keeps them and
        gets the rest of `spec` (default: its type's usual form); one without (most MIDI)
        is the start of `spec`, or without one is followed by `bars` more bars."""
        marked = fragment is not None and (fragment.has_repeats or len(fragment.parts) > 1)
        if not spec and not marked:
            return Form.through(fragment_bars + bars)
        usual = self.usual(tune_type)
        part_bars = fragment.parts[0].bars if marked else int(usual["part_bars"])
        target = self._phrased(parse_form(spec or usual["form"], part_bars), usual)
        if not marked:
            if target.written_bars < fragment_bars:
                raise MusicError(f"the fragment has {fragment_bars} bars, more than the "
                                 f"{target.written_bars} of the form {spec}", field="form")
            return target
        have = list(fragment.parts)
        if len(target.parts) <= len(have):
            if spec:
                raise MusicError(f"the fragment already has {len(have)} parts; the form "
                                 f"{spec} has {len(target.parts)}, so there is nothing to add",
                                 field="form")
            new = Part(part_bars, True, letter=_next_letter(have))
            target = Form(tuple(have) + (new.in_phrases_of(int(usual["phrase_bars"])),))
        added = [p for p in target.parts[len(have):]]
        return Form(tuple(have + added))

    @staticmethod
    def _phrased(form: Form, usual: dict) -> Form:
        """`form` with every part cut in the phrases of the type whose figures are `usual`."""
        return Form(tuple(p.in_phrases_of(int(usual["phrase_bars"])) for p in form.parts))


def _next_letter(parts: list[Part]) -> str:
    used = {p.letter for p in parts}
    return next(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used)


# --- forms that a user names ----------------------------------------------------------------

def parse_form(spec: str, part_bars: int) -> Form:
    """A form such as 'AABB', 'ABAC', 'AABA' or 'A8B8' (letters, each with an optional bar
    count; `part_bars` where none is given). A letter played twice in a row is one part with
    repeat signs; a later part with an earlier letter repeats that part."""
    text = (spec or "").replace(" ", "")
    if not re.fullmatch(r"([A-Za-z]\d*)+", text):
        raise MusicError(f"form {spec!r} is not letters with optional bar counts, "
                         "e.g. AABB, ABAC or A8B8", field="form")
    items = [(m.group(1).upper(), int(m.group(2)) if m.group(2) else part_bars)
             for m in re.finditer(r"([A-Za-z])(\d*)", text)]
    for letter, bars in items:
        if not 1 <= bars <= 64:
            raise MusicError(f"form {spec!r}: part {letter} has {bars} bars; a part has 1..64",
                             field="form")
    parts: list[Part] = []
    first_of: dict[str, int] = {}
    i = 0
    while i < len(items):
        letter, bars = items[i]
        repeat = i + 1 < len(items) and items[i + 1] == (letter, bars)
        source = first_of.get(letter)
        if source is not None and parts[source].bars != bars:
            raise MusicError(f"form {spec!r}: part {letter} has {parts[source].bars} bars "
                             f"and then {bars}", field="form")
        first_of.setdefault(letter, len(parts))
        parts.append(Part(bars, repeat, letter=letter, source=source))
        i += 2 if repeat else 1
    if len(parts) > 16:
        raise MusicError(f"form {spec!r} has {len(parts)} parts; at most 16", field="form")
    return Form(tuple(parts))


def with_endings(form: Form, bars: int = 1) -> Form:
    """The form with first and second endings of `bars` bars on every repeated part long
    enough to have them."""
    return Form(tuple(replace(p, ending=bars, second=bars) if p.repeat and p.bars > 2 * bars
                      and not p.ending else p for p in form.parts))
