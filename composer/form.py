"""A tune's form: parts (repeated or not, with first and second endings), phrases and tune types.

A form is written the way a folk musician writes a tune: each part once, with repeat signs
when it is played twice, and first and second endings when the second time ends differently.
Bars are counted on that written form, after the pickup (anacrusis) if there is one:
- a part of `bars` bars (one playing: body + first ending) with `ending` > 0 is written as
  body (bars - ending), first ending (ending), then second ending (`second` bars);
- its bars are numbered 0..bars-1 in the order of one playing; a second-ending bar takes the
  number of the first-ending bar it replaces.
Pure Python; no numpy, no torch.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from .music import Note

PHRASE_BARS = 4  # phrase length where nothing in the source marks phrases
SIMILAR_REPEAT = 0.9  # similarity to an earlier part at or above which a part repeats it
SIMILAR_VARIATION = 0.6  # ... and at or above which it varies it


@dataclass(frozen=True)
class Part:
    """One part (section) of a tune, in bars of one playing; see the module docstring."""

    bars: int
    repeat: bool = False  # played twice (written with repeat signs)
    ending: int = 0  # bars of the first ending (0: no endings)
    second: int = 0  # bars of the second ending
    letter: str = "A"
    source: int | None = None  # index of the earlier part this one repeats or varies
    variation: bool = False  # with a source: varies it rather than repeats it
    phrases: tuple[int, ...] = ()  # phrase lengths over one playing; () is 4-bar phrases

    @property
    def written(self) -> int:
        """Bars this part takes in the written form."""
        return self.bars + self.second

    @property
    def kind(self) -> int:
        """0 new material, 1 a repeat of an earlier part, 2 a variation of one."""
        return 0 if self.source is None else (2 if self.variation else 1)

    def phrase_lengths(self) -> tuple[int, ...]:
        if self.phrases and sum(self.phrases) == self.bars:
            return self.phrases
        return _cut(self.bars, PHRASE_BARS)

    def in_phrases_of(self, bars: int) -> "Part":
        """The part cut in phrases of `bars` bars; 4 (or a length below 1) leaves it as it is,
        in the usual 4-bar phrases."""
        if bars == PHRASE_BARS or bars < 1:
            return self
        return replace(self, phrases=_cut(self.bars, bars))


def _cut(bars: int, length: int) -> tuple[int, ...]:
    """`bars` bars in phrases of `length`, the last one shorter where they do not divide it."""
    full, rest = divmod(bars, length)
    return (length,) * full + ((rest,) if rest else ())


@dataclass(frozen=True)
class WrittenBar:
    """Where one written bar stands in the form."""

    part: int
    bar: int  # bar of the part, in one playing (a second-ending bar shares its number)
    ending: int  # 0 body, 1 first ending, 2 second ending
    phrase: int  # index of its phrase in the whole tune
    phrase_bar: int  # bar within that phrase


@dataclass(frozen=True)
class Form:
    """The parts of a tune in written order. `da_capo`: the written end sends the player back
    (D.C., D.S.) to end elsewhere, at a Fine or an earlier part's end, so it closes no tune."""

    parts: tuple[Part, ...]
    da_capo: bool = False

    @classmethod
    def through(cls, bars: int, phrases: tuple[int, ...] = ()) -> "Form":
        """One part, not repeated: a through-composed tune, a MIDI file, a fragment."""
        return cls((Part(bars, phrases=phrases),))

    @property
    def written_bars(self) -> int:
        return sum(p.written for p in self.parts)

    @property
    def played_bars(self) -> int:
        return sum(p.bars + (p.bars - p.ending + p.second if p.repeat else 0) for p in self.parts)

    @property
    def has_repeats(self) -> bool:
        return any(p.repeat for p in self.parts)

    def letters(self, variations: bool = True) -> str:
        """The form as musicians name it: AABB, ABAC, AAB'B ... (without `variations`, a
        variation counts as a repeat: AAB'B is AABB)."""
        return "".join((p.letter + ("'" if p.variation and variations else ""))
                       * (2 if p.repeat else 1) for p in self.parts)

    def layout(self) -> list[WrittenBar]:
        """Every written bar (after the pickup), in written order."""
        out, phrase = [], 0
        for i, p in enumerate(self.parts):
            starts, lengths = [], p.phrase_lengths()
            for k, n in enumerate(lengths):
                starts += [(phrase + k, j) for j in range(n)]
            body = p.bars - p.ending
            numbers = list(range(p.bars)) + list(range(body, body + p.second))
            for w, b in enumerate(numbers):
                ending = 0 if w < body else (1 if w < p.bars else 2)
                ph, pb = starts[min(b, len(starts) - 1)]
                if ending == 2:  # phrases never go back: a second ending stays in the last one
                    ph = max(ph, out[-1].phrase)
                out.append(WrittenBar(i, b, ending, ph, pb))
            phrase += len(lengths)
        return out

    def played(self) -> list[int]:
        """Written bar indices (after the pickup) in the order they are played."""
        out, first = [], 0
        for p in self.parts:
            body = list(range(first, first + p.bars - p.ending))
            one = list(range(first + p.bars - p.ending, first + p.bars))
            two = list(range(first + p.bars, first + p.written))
            out += body + one + ((body + (two if p.ending else one)) if p.repeat else two)
            first += p.written
        return out

    def to_dict(self) -> dict:
        return {"parts": [{k: v for k, v in asdict(p).items() if v not in (False, 0, None, ())
                           or k == "bars"} for p in self.parts],
                **({"da_capo": True} if self.da_capo else {})}

    @classmethod
    def from_dict(cls, d: dict | None) -> "Form | None":
        if not d:
            return None
        return cls(tuple(Part(**{**p, "phrases": tuple(p.get("phrases", ()))}) for p in d["parts"]),
                   da_capo=bool(d.get("da_capo")))


# --- the form of a written tune --------------------------------------------------------------

def bars_after_pickup(start: int, ticks: int, bar: int) -> int:
    """How many bars after the pickup bar (if any) `ticks` of music reach into, starting at
    position `start` in a bar of `bar` ticks: what a form of those notes must have."""
    return -(-(start + ticks) // bar) - (1 if start else 0)


@dataclass(frozen=True)
class MeasureMarks:
    """What a source writes around one measure: its start (ticks from the first note, on the
    tune's bar grid), barlines ('repeat', 'double' or '') and ending bracket (0 none, 1, 2)."""

    start: int
    end: int
    left: str = ""
    right: str = ""
    ending: int = 0


def form_from_marks(marks: Sequence[MeasureMarks], bar: int, start: int, total: int,
                    phrase_starts: Sequence[int] = ()) -> tuple[Form, list[str]]:
    """The written form of a tune from its measures' barlines and endings, and the markers it
    could not use (one reason per marker).

    A measure starting inside a bar of the tune's grid (a part's own pickup) counts from the
    next barline. `phrase_starts` (ticks where the source starts a line, for collections that
    write one phrase per line) become phrases; otherwise phrases are 4-bar units.
    """
    first = 1 if start else 0
    grid = -(-(start + total) // bar)
    barline = lambda t: min(grid, max(first, -(-(start + t) // bar)))  # noqa: E731
    dropped: list[str] = []
    parts: list[Part] = []
    cut = first  # first bar of the part being read
    e1 = e2 = None  # first bars of its endings
    opened = False  # the part opened with a repeat sign

    def close(at: int, repeat: bool) -> None:
        nonlocal cut, e1, e2, opened
        if e1 is not None and e2 is None:
            dropped.append("first ending without a second")
        if at > cut:
            if e1 is not None and e2 is not None and cut <= e1 < e2 < at:
                parts.append(Part(e2 - cut, True, e2 - e1, at - e2))
            else:
                parts.append(Part(at - cut, repeat))
        cut, e1, e2, opened = max(cut, at), None, None, False

    for k, m in enumerate(marks):
        here, after = barline(m.start), barline(m.end)
        nxt = marks[k + 1] if k + 1 < len(marks) else None
        if m.left == "repeat":
            if here > cut and e1 is None:
                if opened:
                    dropped.append("repeat start without an end")
                close(here, False)
            opened = True
        if m.ending == 1 and e1 is None:
            e1 = here
        elif m.ending == 2 and e2 is None:
            e2 = here
        if m.ending == 1 and m.right == "repeat":
            continue  # the first ending leads back; the part goes on to its second ending
        ending_over = m.ending == 2 and (nxt is None or nxt.ending != 2)
        if m.right == "repeat" or (ending_over and e1 is not None):
            close(after, True)
        elif m.right == "double" or ending_over:
            if opened and m.right == "double":
                dropped.append("repeat start without an end")
            close(after, False)
    if opened and grid > cut:
        dropped.append("repeat start without an end")
    close(grid, False)
    if not parts:
        return Form.through(max(1, grid - first)), dropped
    form = Form(tuple(parts))
    if phrase_starts:
        form, ok = _phrases_from_lines(form, [barline(t) - first for t in phrase_starts])
        if not ok:
            dropped.append("phrase lines that do not fit the parts")
    return form, dropped


def _phrases_from_lines(form: Form, line_bars: list[int]) -> tuple[Form, bool]:
    """Phrases cut where lines start (written bar numbers); unchanged where a part has endings
    or a cut misses the part's bars."""
    cuts = sorted(set(line_bars))
    parts, first, ok = [], 0, True
    for p in form.parts:
        inner = [c - first for c in cuts if first < c < first + p.bars]
        lengths = tuple(b - a for a, b in zip([0] + inner, inner + [p.bars]))
        if p.ending or any(c - first > p.bars for c in cuts if first < c < first + p.written):
            ok = False
            parts.append(p)
        else:
            parts.append(replace(p, phrases=lengths))
        first += p.written
    return replace(form, parts=tuple(parts)), ok


def apply_phrase_lines(form: Form, line_ticks: Sequence[int], bar: int, start: int
                       ) -> tuple[Form, bool]:
    """Phrases where the source starts its lines (ticks from the first note); a line that
    starts inside a bar starts its phrase at the next barline. False where they do not fit."""
    return _phrases_from_lines(form, [bars_after_pickup(start, t, bar) for t in line_ticks if t > 0])


def part_contents(form: Form, onsets: Sequence[int], notes: Sequence, bar: int, start: int
                  ) -> list[list[tuple]]:
    """Each part's notes in one playing (body and first ending) as (onset in the part,
    duration, pitch): what `name_parts` compares."""
    first = 1 if start else 0
    out, w = [], first
    for p in form.parts:
        a, b = w * bar - start, (w + p.bars) * bar - start
        out.append([(t - a, n.duration, n.pitch) for t, n in zip(onsets, notes) if a <= t < b])
        w += p.written
    return out


def similarity(a: Sequence, b: Sequence) -> float:
    """difflib's ratio of two sequences of hashable items (0 unrelated .. 1 identical)."""
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, list(a), list(b), autojunk=False).ratio()


def name_parts(form: Form, contents: Sequence[Sequence]) -> Form:
    """Letters, sources and variations from each part's content (one playing, e.g. a list of
    (onset in part, duration, pitch)): a part at least SIMILAR_REPEAT like an earlier one
    repeats it, at least SIMILAR_VARIATION like one varies it; else it is new material."""
    parts: list[Part] = []
    letters = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ" * 4)
    for i, (p, notes) in enumerate(zip(form.parts, contents)):
        scores = [(similarity(notes, contents[j]), j) for j in range(i)]
        best, j = max(scores, default=(0.0, None))
        if j is not None and best >= SIMILAR_VARIATION:
            origin = j if parts[j].source is None else parts[j].source
            parts.append(replace(p, letter=parts[j].letter, source=origin,
                                 variation=best < SIMILAR_REPEAT))
        else:
            parts.append(replace(p, letter=next(letters), source=None, variation=False))
    return replace(form, parts=tuple(parts))


def _usual_form(items: list) -> str:
    """The most common form (letters, variations as repeats), among the tunes written with
    repeat signs where at least a third of them are: the form as usually played."""
    repeated = [t.form for t in items if t.form.has_repeats]
    pool = repeated if 3 * len(repeated) >= len(items) else [t.form for t in items]
    return Counter(f.letters(variations=False) for f in pool).most_common(1)[0][0]


@dataclass(frozen=True)
class TuneShape:
    """What form_stats reads of one tune."""

    tune_type: str
    meter: str
    form: Form
    pickup: int  # ticks before the first barline
    style: str


def form_stats(tunes: Sequence[TuneShape]) -> dict[str, dict]:
    """Per tune type: how many, the usual meter, the usual form (letters), part length and
    phrase length (of the usual tunes' parts of that length), how often parts repeat and have
    endings, the usual pickup (among tunes of the usual meter and form, as those are what
    composing the type gives; of the usual meter where no tune has both) and the usual style
    (collection)."""
    by_type: dict[str, list[TuneShape]] = {}
    for t in tunes:
        by_type.setdefault(t.tune_type, []).append(t)
    out = {}
    for kind, items in sorted(by_type.items(), key=lambda kv: -len(kv[1])):
        parts = [p for t in items for p in t.form.parts]
        repeated = [p for p in parts if p.repeat]
        meter = Counter(str(t.meter) for t in items).most_common(1)[0][0]
        form = _usual_form(items)
        in_meter = [t for t in items if str(t.meter) == meter]
        usual = [t for t in in_meter if t.form.letters(variations=False) == form] or in_meter
        part_bars = Counter(p.bars for p in parts).most_common(1)[0][0]
        phrases = Counter(Counter(p.phrase_lengths()).most_common(1)[0][0]  # per part
                          for t in usual for p in t.form.parts if p.bars == part_bars)
        out[kind] = {
            "tunes": len(items),
            "meter": meter,
            "form": form,
            "part_bars": part_bars,
            "phrase_bars": phrases.most_common(1)[0][0] if phrases else PHRASE_BARS,
            "with_repeats": round(sum(t.form.has_repeats for t in items) / len(items), 3),
            "endings": round(sum(bool(p.ending) for p in repeated) / max(1, len(repeated)), 3),
            "pickup": Counter(t.pickup for t in usual).most_common(1)[0][0],
            "style": Counter(t.style for t in items).most_common(1)[0][0],
        }
    return out


def played(melody) -> tuple[object, list[int]]:
    """The melody as played: repeated parts twice, first and second endings in turn (a note
    that runs over a jump is cut there). A repeat after the shortened last bar of a tune with
    a pickup starts with the lead-in (the pickup's length of music before the bar it goes
    back to), as players play it, so the bars keep their length. Returns the played melody (one part, no repeats) and,
    per played note, the index of the written note it comes from. A melody without repeats,
    or whose form does not fit its bars, is returned as it is."""
    form, bar, start = melody.form, melody.meter.bar_ticks, melody.start_position
    total, first = melody.total_ticks, 1 if start else 0
    identity = list(range(len(melody.notes)))
    if form is None or not form.has_repeats or (
            form.written_bars != bars_after_pickup(start, total, bar)):
        return melody, identity
    pickup, last = (bar - start) % bar, form.written_bars - 1
    lead_in = pickup and (start + total) % bar  # the last bar is short: the pickup completes it
    spans: list[list[int]] = []
    prev = None
    for w in form.played():
        a, b = max(0, (first + w) * bar - start), min(total, (first + w + 1) * bar - start)
        if w == 0 and not spans:
            a = 0  # the pickup is played once, before the first bar
        elif prev == last and lead_in:  # after the short last bar, a repeat: with its lead-in
            a -= pickup
        if spans and spans[-1][1] == a:
            spans[-1][1] = b
        else:
            spans.append([a, b])
        prev = w
    notes, sources, onsets = [], [], melody.onsets()
    for a, b in spans:
        for i, (t, n) in enumerate(zip(onsets, melody.notes)):
            lo, hi = max(t, a), min(t + n.duration, b)
            if lo < hi:
                notes.append(Note(n.pitch, hi - lo))
                sources.append(i)
    return replace(melody, notes=notes, form=None), sources
