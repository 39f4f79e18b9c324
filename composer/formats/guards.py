"""Checks that run before a parser does: inputs that would cost minutes or gigabytes are refused.

music21 builds a time signature's beat hierarchy eagerly: `M:1000/8` takes 18 s and `M:99999/1`
never finishes, whether it comes from ABC, MusicXML or kern. A compressed MusicXML file (.mxl)
may unpack to hundreds of megabytes. A tiny file may also describe an enormous length (one
note of a billion ticks), which every writer would then spell out bar by bar. Each check raises
Skip with a reason key, like the readers themselves.
"""

from __future__ import annotations

import io
import re
import zipfile
from xml.etree import ElementTree

from ..music import MAX_BAR_TICKS, TICKS_PER_QUARTER, Melody
from .common import ReadLimits, Skip

MAX_METER_BEATS = 128  # 128/32 is 4 whole notes, the longest bar a melody may have
MAX_METER_UNIT = 32  # the shortest beat unit Meter accepts
# Notes of all parts together that a MusicXML score (or, roughly counted, an ABC tune) may
# have, per note the melody may have: music21's time grows with all of them.
SCORE_NOTES_FACTOR = 2

_ABC_METER = re.compile(r"(?m)^M:([^\n%]*)")
_ABC_FIELD = re.compile(r"^(%|[A-Za-z+]:)")
_ABC_BARLINE = re.compile(r"[:\[]*\|+[:\]]*|::")  # |  ||  |]  [|  |:  :|  ::  count once
_ABC_NOTE = re.compile(r"[A-Ga-gzx]")
_KERN_METER = re.compile(r"(?:^|[\t\n])\*M(?!M)([^\t\n]*)")


def check_meter_numbers(text: str) -> None:
    """Skip a meter such as '99999/1' or '2+3+9999/8' before music21 builds it."""
    top, _, bottom = text.partition("/")
    beats = sum(int(n) for n in re.findall(r"\d+", top)[:64])
    units = [int(n) for n in re.findall(r"\d+", bottom)[:1]]
    unit = units[0] if units else 4
    shown = " ".join(text.split())[:40]
    if unit > MAX_METER_UNIT:
        raise Skip("unsupported meter", f"{shown} (beat unit shorter than 1/{MAX_METER_UNIT})")
    if beats > MAX_METER_BEATS or (unit and beats * 4 * TICKS_PER_QUARTER > MAX_BAR_TICKS * unit):
        raise Skip("unsupported meter", f"{shown} (bars longer than "
                                        f"{MAX_BAR_TICKS // (4 * TICKS_PER_QUARTER)} whole notes)")


def check_abc(text: str, limits: ReadLimits) -> None:
    """Every M: field of a tune, and its size: music21's time grows with the square of the
    number of bars (1,000 bars take 2 s, 4,000 take 36 s). Inline [M:] fields must already be
    on lines of their own, and annotations in quotes removed."""
    for m in _ABC_METER.finditer(text):
        check_meter_numbers(m.group(1))
    bars = notes = 0
    for line in text.split("\n"):
        if line and not _ABC_FIELD.match(line):
            bars += len(_ABC_BARLINE.findall(line))
            notes += len(_ABC_NOTE.findall(line))
    if bars > limits.max_bars:
        raise Skip("too long", f"{bars} bars > {limits.max_bars}")
    if notes > SCORE_NOTES_FACTOR * limits.max_notes:
        raise Skip("too many notes", f"about {notes} > {SCORE_NOTES_FACTOR * limits.max_notes}")


def check_kern(data: bytes, limits: ReadLimits) -> None:
    """Every *M interpretation (not *MM, the tempo) of a kern file, and its number of notes in
    all spines together: music21's kern reader slows down faster than linearly (4,000 notes
    take 1.3 s, 8,000 take 6 s and 20,000 take 40 s), so they count against limits.max_notes."""
    text = data.decode("latin-1")
    for m in _KERN_METER.finditer(text):
        check_meter_numbers(m.group(1))
    events = sum(sum(1 for token in line.split("\t") if token.strip() not in ("", "."))
                 for line in text.splitlines() if line and line[0] not in "!*=")
    if events > limits.max_notes:
        raise Skip("too many notes", f"{events} notes in all spines > {limits.max_notes}")


def _xml_members(data: bytes, suffix: str, limits: ReadLimits) -> list[bytes]:
    """The XML documents of a MusicXML file: itself, or the members of a compressed .mxl
    (refused when they would unpack to more than limits.max_unpacked_bytes)."""
    if suffix != ".mxl":
        return [data]
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()
                 and not i.filename.upper().startswith("META-INF/")]
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise Skip("parse error", f"not a compressed MusicXML file ({e})") from None
    unpacked = sum(i.file_size for i in archive.infolist())
    if unpacked > limits.max_unpacked_bytes:
        raise Skip("file too large", f"unpacks to {unpacked} bytes > {limits.max_unpacked_bytes}")
    members = []
    for info in infos:
        if info.filename.lower().endswith((".xml", ".musicxml")):
            try:  # zipfile reads no more than the declared size, so this stays bounded
                members.append(archive.read(info))
            except (zipfile.BadZipFile, ValueError, OSError, NotImplementedError) as e:
                raise Skip("parse error", f"{info.filename}: {e}") from None
    return members


def check_musicxml(data: bytes, suffix: str, limits: ReadLimits) -> None:
    """Parse MusicXML once with expat (which bounds entity expansion), check every time
    signature and count the notes. Entities, comments and CDATA are resolved as music21 will
    see them."""
    notes = 0
    for doc in _xml_members(data, suffix, limits):
        beats = None
        try:
            for _, el in ElementTree.iterparse(io.BytesIO(doc), events=("end",)):
                tag = el.tag.rpartition("}")[2] if isinstance(el.tag, str) else ""
                if tag == "beats":
                    beats = el.text or ""
                elif tag == "beat-type" and beats is not None:
                    check_meter_numbers(f"{beats}/{el.text or ''}")
                    beats = None
                elif tag == "time" and beats is not None:
                    check_meter_numbers(beats)
                    beats = None
                notes += tag == "note"
                if tag in ("note", "measure", "time"):
                    el.clear()
        except ElementTree.ParseError as e:
            raise Skip("parse error", f"ParseError: {e}") from None
    if notes > SCORE_NOTES_FACTOR * limits.max_notes:
        raise Skip("too many notes", f"{notes} notes in all parts > "
                                     f"{SCORE_NOTES_FACTOR * limits.max_notes}")


def check_length(melody: Melody, limits: ReadLimits) -> None:
    """Skip a tune of more than limits.max_notes notes (rests included) or limits.max_bars bars
    (long rests included), whatever the reader did on the way."""
    if len(melody.notes) > limits.max_notes:
        raise Skip("too many notes", f"{len(melody.notes)} > {limits.max_notes}")
    ticks = sum(n.duration for n in melody.notes)
    bars = ticks // max(1, melody.meter.bar_ticks)
    if bars > limits.max_bars:
        raise Skip("too long", f"{bars} bars > {limits.max_bars}")
