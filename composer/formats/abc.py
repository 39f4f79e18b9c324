"""ABC: decoding, splitting and reading tunes (through music21), and writing melodies as ABC 2.1."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from fractions import Fraction

from ..music import TICKS_PER_QUARTER, Melody, Meter, MusicError, normalize_mode, tonic_pitch_class
from .common import (DEFAULT_TEMPO, ParsedTune, ReadLimits, Skip, music21_modules, one_line, parse_meter,
                     plausible_tempo)
from .guards import check_abc
from .keys import estimate_key
from .notation import Spelling, bar_marks, written_bars
from .score import best_part, melody_of

_HEADER_LINE = re.compile(r"^(%%|[ILMQUm]:)")
_FIELD_LINE = re.compile(r"^(%|[A-Za-z+]:)")
_TITLE = re.compile(r"(?m)^T:(.*)$")
_RHYTHM = re.compile(r"(?m)^R:(.*)$")
_LINE_START = re.compile(r"[\s|:\]]*(?:\[?\d[\d,-]*)?[\s|:]*(?=[_=^A-Ga-gz\[(~])")
# An annotation or decoration that sends the player back (D.C., D.S., a segno or coda sign) or
# ends the tune before its written end (Fine, End): the tune does not end where it is written to.
_GOES_BACK = re.compile(r'"[_^<>@]?\s*\(?(?:d\.\s?[cs]\.|d[cs]\b|da\s*capo|dal\s*segno|segno|coda|fine\b'
                        r'|end\b|s")|!(?:d\.[cs]\.\w*|dacapo|dalsegno|dacoda|segno|coda|fine)!', re.I)
_INLINE_FIELD = re.compile(r"\[([KLM]):([^\]\n]*)\]")  # music21 ignores inline [K:] and [M:]
_GERMAN_KEYS = {"H": "B", "Es": "Eb", "As": "Ab", "Des": "Db", "Ges": "Gb", "Fis": "F#", "Cis": "C#"}
_C1 = re.compile("[\x80-\x9f]")  # control characters: in text, the mark of a wrong decoding
_CP437_HINT = re.compile(rb"\x81|[A-Za-z][\x84\x94][A-Za-z]")  # ü anywhere; ä, ö inside a word


def iter_abc(text: str) -> Iterator[tuple[int | None, str | None, int, Callable[[], str]]]:
    """(X: number, T: title, length, a function giving the tune text) for each tune, lazily.

    File-header fields are repeated inside each tune; the text is only put together when asked
    for, so a large header over many tunes costs nothing for tunes that are refused by length."""
    starts = [m.start() for m in re.finditer(r"(?m)^X:", text)]
    if not starts:
        m = _TITLE.search(text)
        yield None, m.group(1).strip() if m else None, len(text), lambda: text
        return
    header = "\n".join(ln for ln in text[:starts[0]].splitlines() if _HEADER_LINE.match(ln))
    for i, s in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        first_end = text.find("\n", s, end)
        first_end = end if first_end < 0 else first_end
        first = text[s:first_end]
        m = re.match(r"X:\s*(\d+)", first)
        title = _TITLE.search(text, first_end, end)

        def tune(end=end, first=first, first_end=first_end) -> str:
            rest = text[first_end + 1:end] if first_end < end else ""
            return "\n".join([first, *([header] if header else []), rest])

        yield (int(m.group(1)) if m else None, title.group(1).strip() if title else None,
               len(first) + len(header) + max(0, end - first_end - 1) + 2, tune)


def split_abc(text: str) -> list[tuple[int | None, str]]:
    """(X: number, tune text) for each tune; file-header fields are repeated inside each tune."""
    return [(number, tune()) for number, _, _, tune in iter_abc(text)]


def abc_extras(tune: str) -> dict[str, int]:
    """What the melody reader leaves out of one ABC tune's music lines, counted: chord symbols,
    annotations, decorations (!trill!, ~ and the like) and grace notes."""
    counts = {"chord symbols": 0, "annotations": 0, "decorations": 0, "grace notes": 0}
    for line in tune.splitlines():
        if _FIELD_LINE.match(line) or line.startswith("%"):
            continue
        for text in re.findall(r'"([^"]*)"', line):
            counts["annotations" if text[:1] in "^_<>@" else "chord symbols"] += 1
        counts["decorations"] += len(re.findall(r"![^!\n]*!|\+[^+\n]*\+", line)) + line.count("~")
        counts["grace notes"] += len(re.findall(r"\{[^}]*\}", line))
    return {k: v for k, v in counts.items() if v}


def _clean_music_line(line: str) -> str:
    """Drop chord symbols and annotations, grace notes, slurs and `H` (fermata) from a music line.

    None belongs to the melody, and music21 misreads most: an annotation such as ">" becomes a
    broken rhythm, a grace note opening a triplet takes the triplet's first place, and the note
    after `H` is lost. Slurs only cost time. Tuplets such as `(3` stay.
    """
    if _FIELD_LINE.match(line):
        return line
    if '"' in line:
        line = re.sub(r'"[^"]*"', "", line)
    if "{" in line:
        line = re.sub(r"\{[^}]*\}", "", line)
    if "(" in line or ")" in line:
        line = re.sub(r"\((?!\d)|\)", "", line)
    line = line.replace("H", "").replace(".", "")
    # A staccato on the line's first note marks where the line starts (score.best_part reads it).
    m = _LINE_START.match(line)
    return line[:m.end()] + "." + line[m.end():] if m else line


def _normalize_abc(text: str) -> str:
    text = _INLINE_FIELD.sub(lambda m: f"\n{m.group(1)}:{m.group(2)}\n", text)
    text = "\n".join(_clean_music_line(line) for line in text.split("\n"))
    return re.sub(r"(?m)^K:\s*(H|Es|As|Des|Ges|Fis|Cis)(?![A-Za-z#])",
                  lambda m: "K:" + _GERMAN_KEYS[m.group(1)], text)


def _abc_key(field: str | None) -> tuple[int | None, str | None, str | None]:
    """(tonic pitch class, mode, tonic as written) named by a K: field; None where it names none."""
    f = (field or "").split("%")[0].strip()
    m = re.match(r"([A-G])([#b]?)\s*([A-Za-z]*)", f, re.I)
    if not m or f.lower().startswith(("none", "hp")):
        return None, None, None
    name = m.group(1).upper() + m.group(2)
    tonic = tonic_pitch_class(name)
    word = m.group(3)
    if not word:
        return tonic, None, name
    try:
        return tonic, normalize_mode(word), name
    except MusicError:
        return tonic, None, name


def _abc_tempo(field: str | None) -> float:
    """Quarter notes per minute from a Q: field such as '1/4=120', '3/8=80' or '100'."""
    text = re.sub(r'"[^"]*"', " ", field or "")
    m = re.search(r"(\d+)\s*/\s*(\d+)\s*=\s*(\d+(?:\.\d+)?)", text)
    if m:
        bpm = float(m.group(3)) * 4 * int(m.group(1)) / max(1, int(m.group(2)))
    else:
        m = re.search(r"\d+(?:\.\d+)?", text)
        bpm = float(m.group(0)) if m else DEFAULT_TEMPO
    return plausible_tempo(bpm)


def _legacy_codec(raw: bytes) -> str:
    """'cp437' where umlauts sit inside words as in DOS text (gr\\x81ne, K\\x94nig), else 'cp1252'."""
    return "cp437" if _CP437_HINT.search(raw) else "cp1252"


def _decode_legacy(raw: bytes, codec: str) -> str:
    """Bytes in a one-byte codec; latin-1 for the few bytes that cp1252 leaves undefined."""
    if codec == "cp437":  # Essen writes ß as 0x9e (as the Atari ST did), cp437's ₧
        return raw.decode("cp437").replace("\u20a7", "\u00df")
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_abc(data: bytes) -> str:
    """ABC text: UTF-8 (with or without a byte order mark), else cp437 or cp1252 as the bytes suggest.

    Some UTF-8 files (music21's Essen collection) hold lines of cp437 bytes that were once read as
    latin-1: their C1 control characters (gr\\x81ne) never occur in real text, so those lines are
    decoded again, with the codec that all of them together point to.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return _decode_legacy(data, _legacy_codec(data))
    if not _C1.search(text):
        return text
    lines = text.split("\n")
    broken = [i for i, line in enumerate(lines) if _C1.search(line) and max(line) <= "\xff"]
    codec = _legacy_codec(b"\n".join(lines[i].encode("latin-1") for i in broken))
    for i in broken:
        lines[i] = _decode_legacy(lines[i].encode("latin-1"), codec)
    return "\n".join(lines)


def read_abc(data: bytes, name: str, limits: ReadLimits) -> Iterator[ParsedTune]:
    """Every tune of an ABC file (split on X:), lazily; one that cannot be used carries its
    reason. After limits.max_tunes tunes, one last entry says that the rest were not read."""
    text = decode_abc(data)
    for index, (number, title, length, tune) in enumerate(iter_abc(text), 1):
        number = number if number is not None else index
        title = title if title is not None else f"{name} {number}"
        if index > limits.max_tunes:
            yield ParsedTune(None, number, title, "too many tunes",
                             f"only the first {limits.max_tunes} tunes of a file are read")
            return
        try:
            if length > limits.max_tune_chars:
                raise Skip("too long", f"{length} characters")
            melody, dropped, from_final, lines = _abc_melody(tune(), limits)
            melody.title = title
            yield ParsedTune(melody, number, title, dropped=dropped, lines=lines,
                             key_from_final=from_final)
        except Skip as e:
            yield ParsedTune(None, number, title, e.reason, e.detail)
        except Exception as e:  # one malformed tune fails only itself
            yield ParsedTune(None, number, title, "parse error", library=one_line(e))


def _abc_melody(tune: str, limits: ReadLimits) -> tuple[Melody, list[str], bool, list[int]]:
    """The melody of one tune, the form markers that could not be used, whether its key was
    read from its final, and its line starts."""
    m21 = music21_modules()
    handler = m21.abcFormat.ABCHandler(abcVersion=(2, 1, 0))
    text = _normalize_abc(tune)
    check_abc(text, limits)  # before music21 takes minutes, or forever, over it
    handler.process("%abc-2.1\n" + text)
    meter_text = key_text = tempo_text = None
    later_meters, seen_note = [], False
    for t in handler.tokens:
        if isinstance(t, (m21.abcFormat.ABCNote, m21.abcFormat.ABCChord)):
            seen_note = True
        elif isinstance(t, m21.abcFormat.ABCMetadata):
            if t.isMeter() and seen_note:
                later_meters.append(t.data)
            elif t.isMeter():
                meter_text = t.data
            elif t.isKey() and not seen_note:
                key_text = t.data
            elif t.isTempo() and tempo_text is None:
                tempo_text = t.data
    if not seen_note:
        raise Skip("no notes")
    meter = parse_meter(meter_text)
    for text in later_meters:
        if parse_meter(text) != meter:
            raise Skip("meter change", f"{meter} -> {text.strip()}")
    voices = handler.splitByVoice()
    handlers = voices if len(voices) == 1 else [voices[0] + v for v in voices[1:]]
    for h in handlers:  # music21 builds measures only from two barlines; a fragment may have one
        if any(isinstance(t, m21.abcFormat.ABCBar) for t in h.tokens):
            h.definesMeasures = lambda: True
    parts = [m21.translate.abcToStreamPart(h, inputM21=m21.FastPart()) for h in handlers]
    part = best_part(parts, meter, m21, limits, lines=True)
    tonic, named_mode, written = _abc_key(key_text)
    mode = named_mode
    if tonic is None:
        tonic, mode = estimate_key(part.notes)
    elif mode is None:
        mode = estimate_key(part.notes, tonic=tonic)[1]
    rhythm = _RHYTHM.search(tune)
    music = "\n".join(ln for ln in tune.splitlines() if not _FIELD_LINE.match(ln))
    melody, dropped, from_final = melody_of(
        part, meter, tonic, mode, _abc_tempo(tempo_text),
        tune_type=rhythm.group(1).strip() if rhythm else "", tonic_name=written,
        da_capo=bool(_GOES_BACK.search(music)), mode_named=named_mode is not None,
        signature=None if written is None else tonic)  # a bare `K:D`: music21 reads D major's
    return melody, dropped, from_final, part.line_starts



# --- ABC writing ---------------------------------------------------------------------------------

# Major is named too: a bare `K:D` is a signature, which a reader may key by the tune's final
# (formats.keys.with_final_key), so a D major tune closing on A would read back as A mixolydian.
_ABC_MODE = {"major": "maj", "minor": "m", "dorian": "dor", "phrygian": "phr", "lydian": "lyd",
             "mixolydian": "mix", "locrian": "loc"}


def _abc_length(mult: Fraction) -> str:
    if mult == 1:
        return ""
    if mult.denominator == 1:
        return str(mult.numerator)
    return f"{mult.numerator if mult.numerator != 1 else ''}/{mult.denominator}"


def _unit_ticks(meter: Meter) -> int:
    """The L: unit in ticks: an eighth; a 16th in x/16 meters; a quarter where a bar holds more
    than 16 eighths (3/1, 4/1, 6/2)."""
    if meter.denominator >= 16:
        return 6
    return 24 if meter.bar_ticks > 16 * 12 else 12


def _tempo_field(m: Melody) -> str:
    """Q: in the meter's beat: a dotted quarter in 6/8, 9/8 and 12/8 (120 quarters a minute is
    Q:3/8=80), else a quarter."""
    beat = m.meter.beat_ticks
    if beat * m.meter.denominator == 4 * TICKS_PER_QUARTER:  # the beat is the denominator's note
        return f"Q:1/4={round(m.tempo)}"
    per_minute = Fraction(beat, 4 * TICKS_PER_QUARTER)
    return f"Q:{per_minute.numerator}/{per_minute.denominator}={round(m.tempo * TICKS_PER_QUARTER / beat)}"


def _tuplets(bar: list[tuple[int | None, int, bool]]) -> dict[int, int]:
    """Index of each tuplet's first piece -> its number of pieces. Pieces off the 32nd grid are
    triplet-based; a tuplet runs over them until the written time is back on the grid (three
    triplet 8ths make a quarter), so six triplet 8ths are two (3 groups."""
    out, k = {}, 0
    while k < len(bar):
        if bar[k][1] % 3 == 0:
            k += 1
            continue
        j, total = k, 0
        while j < len(bar) and bar[j][1] % 3:
            total += bar[j][1]
            j += 1
            if total % 3 == 0:
                break
        out[k], k = j - k, j
    return out


def _abc_tune(m: Melody, number: int) -> str:
    spelling = Spelling.of(m)
    # music21 reads K:..loc as major, so locrian tunes carry every accidental explicitly.
    explicit = m.mode == "locrian"
    bar_ticks, beat, unit = m.meter.bar_ticks, m.meter.beat_ticks, _unit_ticks(m.meter)
    title = " ".join((m.title or "Untitled").split())
    lines = [f"X:{number}", f"T:{title}"] + ([f"R:{m.tune_type}"] if m.tune_type else []) + [
             f"M:{m.meter}", f"L:1/{4 * TICKS_PER_QUARTER // unit}",
             _tempo_field(m), f"K:{spelling.tonic_name}{_ABC_MODE[m.mode]}"]
    body, pos = [], m.start_position
    bars = written_bars(m)
    marks = bar_marks(m, len(bars))
    if marks and marks[0].opens_repeat:
        body.append("|: ")
    for b, bar in enumerate(bars):
        # ABC 2.1: an accidental holds to the end of the bar. Readers differ on whether it holds
        # in other octaves too, so a mark is written unless both readings give the right pitch.
        per_octave: dict[tuple[str, int], int] = {}
        per_letter: dict[str, int] = {}
        out, run_left, run_ended, tuplets = [], 0, False, _tuplets(bar)
        for k, (pitch, ticks, tied) in enumerate(bar):
            token = ""
            if k in tuplets:  # a 3:2 tuplet over the next run_left pieces
                run_left = tuplets[k]
                token = "(3" if run_left == 3 else f"(3:2:{run_left}"
            in_run = run_left > 0
            if pitch is None:
                token += "z"
            else:
                letter, alt, octave = spelling.spell(pitch)
                implied = (per_octave.get((letter, octave), spelling.signature[letter]),
                           per_letter.get(letter, spelling.signature[letter]))
                if explicit or implied != (alt, alt):
                    token += {1: "^", -1: "_", 0: "="}[alt]
                    per_octave[(letter, octave)] = per_letter[letter] = alt
                token += letter.lower() + "'" * (octave - 5) if octave >= 5 else letter + "," * (4 - octave)
            # Lengths count L: units; inside a 3:2 tuplet a note is written 3/2 as long.
            token += _abc_length(Fraction(3 * ticks if in_run else ticks, 2 * unit if in_run else unit)
                                 ) + ("-" if tied else "")
            # Beams break at the beat, and after a tuplet (never inside one).
            if out and (run_ended or (pos % beat == 0 and (not in_run or k in tuplets))):
                out.append(" ")
            out.append(token)
            pos = (pos + ticks) % bar_ticks
            run_left -= in_run
            run_ended = in_run and run_left == 0
        if marks[b].ending_starts:
            body.append(f"[{marks[b].ending} ")
        barline = _barline(marks, b)
        body.append("".join(out) + barline + (
            "\n" if marks[b].line_ends and not barline.endswith("|:") else " "))
    return "\n".join(lines) + "\n" + "".join(body).rstrip() + "\n"


def _barline(marks: list, b: int) -> str:
    """The barline after bar b: |, ||, :|, |: as the form says, |] at the end; between two
    repeated parts :| ends a line and |: starts the next (engravers draw :: poorly)."""
    here, nxt = marks[b], marks[b + 1] if b + 1 < len(marks) else None
    if nxt is None:
        return " :|" if here.closes == "repeat" else " |]"
    if here.closes == "repeat":
        return " :|\n|:" if nxt.opens_repeat else " :|"
    if nxt.opens_repeat:
        return " |:"
    return " ||" if here.closes == "part" else " |"


def to_abc(melodies: list[Melody], first_number: int = 1) -> str:
    """ABC 2.1 text: one tune per melody (X: numbered from `first_number`), barlines and ties."""
    tunes = [_abc_tune(m, first_number + i) for i, m in enumerate(melodies)]
    return "%abc-2.1\n\n" + "\n\n".join(tunes) + "\n"

