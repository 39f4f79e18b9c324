"""Which form a tune gets: the one a user names, the usual form of its type, or a fragment's.

The usual meter, form, part length and share of first and second endings of each tune type
come from the corpus the model was trained on (`form.form_stats`, kept in the checkpoint's
config). Pure Python; no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .form import Form, Part, parse_form, with_endings
from .music import MusicError
from .tunetype import check_type

# What a type the corpus did not describe gets: two 8-bar parts, each played twice.
FALLBACK = {"meter": "4/4", "form": "AABB", "part_bars": 8, "endings": 0.0}
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
        through-composed, else the type's usual form. Repeated parts get first and second
        endings if `endings`, or (None) where most of the type's repeated parts have them."""
        usual = self.usual(tune_type or "")
        if spec:
            form = parse_form(spec, int(usual["part_bars"]))
        elif bars is not None or tune_type is None:
            return Form.through(int(bars or DEFAULT_BARS))
        else:
            form = parse_form(usual["form"], int(usual["part_bars"]))
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
        target = parse_form(spec or usual["form"], part_bars)
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
            target = Form(tuple(have) + (Part(part_bars, True, letter=_next_letter(have)),))
        added = [p for p in target.parts[len(have):]]
        return Form(tuple(have + added))


def _next_letter(parts: list[Part]) -> str:
    used = {p.letter for p in parts}
    return next(c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used)
