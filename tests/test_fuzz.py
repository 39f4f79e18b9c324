"""Hostile input: random and mutated files at every reader and at the upload endpoints.

Every case must end in a melody or a clear refusal (a ParsedTune with a reason, FormatError,
HTTP 400), quickly and with bounded output; never another exception, a hang or a 500.
"""

from __future__ import annotations

import io
import struct
import time
import zipfile

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composer.api import UPLOAD_LIMITS, create_app
from composer.formats import (READ_SUFFIXES, FormatError, ParsedTune, ReadLimits, read_melody,
                              read_tunes, to_abc, to_midi_bytes, to_musicxml_bytes)
from composer.formats.common import music21_modules
from composer.music import Melody, Meter, Note

SECONDS = 5.0  # generous: every case here takes well under a second on a quiet machine
# The readers run in this process and are bounded in its CPU time, which a stall of the
# machine (a paused VM, a busy neighbour) does not count and a runaway parse does; the API,
# which may parse elsewhere, is bounded in wall time.
LIMITS = UPLOAD_LIMITS  # what the API allows; the readers' defaults are larger


def fuzz(examples: int) -> settings:
    """A bounded number of examples, no per-example deadline (the bound is SECONDS)."""
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def music21_imported():
    music21_modules()  # its first import takes seconds; it must not count against one case


def jig() -> Melody:
    e = 12
    notes = [Note(69, e), Note(74, e), Note(78, e), Note(81, e), Note(81, e), Note(79, e),
             Note(78, e), Note(76, 2 * e), Note(74, e), Note(73, e), Note(71, e), Note(69, e)] * 2
    return Melody(notes=notes, meter=Meter(6, 8), tonic=2, mode="major", pickup=e, title="Jig")


VALID_MIDI = to_midi_bytes(jig())
VALID_ABC = to_abc([jig()]).encode()
VALID_XML = to_musicxml_bytes(jig())


def check_bounded(tunes: list[ParsedTune], limits: ReadLimits = LIMITS) -> None:
    assert tunes and all(isinstance(t, ParsedTune) for t in tunes)
    assert len(tunes) <= limits.max_tunes + 1  # the last one may say "too many tunes"
    for t in tunes:
        if t.melody is None:
            assert isinstance(t.error, str) and t.error and "\n" not in t.error
            continue
        assert t.error is None
        assert 0 < len(t.melody.notes) <= limits.max_notes
        assert all(n.duration > 0 for n in t.melody.notes)
        ticks = sum(n.duration for n in t.melody.notes)
        assert ticks <= (limits.max_bars + 1) * t.melody.meter.bar_ticks


def read_all_ways(data: bytes, name: str) -> list[ParsedTune]:
    """read_tunes and read_melody on the same bytes, each bounded in time and output."""
    t0 = time.process_time()
    tunes = read_tunes(name, data, LIMITS)
    assert time.process_time() - t0 < SECONDS, f"read_tunes({name}) took too long"
    check_bounded(tunes)
    t0 = time.process_time()
    try:
        melody = read_melody(data, name, LIMITS)
    except FormatError as e:
        assert str(e) and "\n" not in str(e)
        assert all(t.melody is None for t in tunes)
    else:
        assert any(t.melody == melody for t in tunes)
    assert time.process_time() - t0 < SECONDS, f"read_melody({name}) took too long"
    return tunes


# --- raw MIDI building --------------------------------------------------------------------------

def varlen(n: int) -> bytes:
    out = bytearray([n & 0x7F])
    while n > 0x7F:
        n >>= 7
        out.insert(0, 0x80 | (n & 0x7F))
    return bytes(out)


def smf(tracks: list[bytes], fmt: int = 1, division: int = 480) -> bytes:
    """A standard MIDI file from raw track bodies."""
    chunks = b"".join(struct.pack(">4sI", b"MTrk", len(t)) + t for t in tracks)
    return struct.pack(">4sIHHH", b"MThd", 6, fmt, len(tracks), division) + chunks


def track(notes: list[tuple[int, int, int]], tempo: int | None = None) -> bytes:
    """A track body from (delta, pitch, duration) in file ticks, with an optional tempo (us/qn)."""
    body = b"" if tempo is None else b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big")
    for delta, pitch, dur in notes:
        body += varlen(delta) + bytes((0x90, pitch, 90)) + varlen(dur) + bytes((0x80, pitch, 0))
    return body + b"\x00\xff\x2f\x00"


SCALE = [(0, 60 + (2 * i) % 12, 240) for i in range(16)]

ANY = "either read or refused"
# name -> (file bytes, the reason it must be refused with, None if it must read, or ANY)
HOSTILE_MIDI = {
    "huge delta times": (smf([track([(0, 60, 240), (0x0FFFFFFF, 62, 0x0FFFFFFF)] + SCALE)]),
                         "too long"),
    "tempo 1 us per quarter": (smf([track(SCALE, tempo=1)]), None),
    "tempo 2^24-1 us per quarter": (smf([track(SCALE, tempo=2**24 - 1)]), None),
    "10,000 tracks": (smf([track(SCALE[:2])] * 10_000), None),
    "a zero-length note": (smf([track([(0, 72, 0)] + SCALE)]), None),
    "only a zero-length note": (smf([track([(0, 72, 0)])]), None),
    "pitch 0 and 127": (smf([track([(0, p, 240) for p in (0, 127) * 8])]), None),
    "SMPTE timing (25 fps)": (smf([track(SCALE)], division=0xE728), "unsupported timing"),
    "SMPTE timing (30 fps)": (smf([track(SCALE)], division=0xE250), "unsupported timing"),
    "format 2": (smf([track(SCALE), track(SCALE[::-1])], fmt=2), None),
    "0 ticks per quarter": (smf([track(SCALE)], division=0), "parse error"),
    "1 tick per quarter": (smf([track(SCALE)], division=1), "too long"),  # 240 quarters a note
    "1 tick per quarter, short notes": (smf([track([(0, 60 + i % 12, 1) for i in range(16)])],
                                              division=1), None),
    "more notes than the limit": (smf([track([(0, 60 + i % 12, 12) for i in range(5000)])]),
                                  "too many notes"),
    "header only": (smf([]), "no notes"),
    "track length past the end": (smf([track(SCALE)])[:-10], ANY),
}


def check_outcome(tunes: list[ParsedTune], reason: str | None) -> None:
    if reason is None:
        assert tunes[0].melody is not None, tunes[0]
    elif reason is not ANY:
        assert tunes[0].error == reason, tunes[0]


@pytest.mark.parametrize("case", list(HOSTILE_MIDI))
def test_hostile_midi_files_are_bounded_and_named(case):
    data, reason = HOSTILE_MIDI[case]
    check_outcome(read_all_ways(data, "hostile.mid"), reason)


def test_extreme_pitches_and_formats_read_as_written():
    pitches = [n.pitch for n in read_tunes("x.mid", HOSTILE_MIDI["pitch 0 and 127"][0])[0].melody.notes]
    assert pitches == [0, 127] * 8
    fmt2 = read_tunes("x.mid", HOSTILE_MIDI["format 2"][0])[0].melody
    assert len([n for n in fmt2.notes if n.pitch is not None]) == 16


# --- hostile ABC, MusicXML, kern and compressed MusicXML ---------------------------------------------

def abc(meter: str = "6/8", body: str = "ABC DEF|") -> bytes:
    return f"X:1\nT:t\nM:{meter}\nL:1/8\nK:D\n{body}\n".encode()


def xml(beats: str = "6", beat_type: str = "8", duration: str = "1", prolog: str = "",
        text: str = "") -> bytes:
    notes = "".join(f"<note><pitch><step>{s}</step><octave>4</octave></pitch>"
                    f"<duration>{duration}</duration>{text}</note>" for s in "CDEFGA")
    return (f'<?xml version="1.0" encoding="UTF-8"?>{prolog}<score-partwise version="3.1">'
            '<part-list><score-part id="P1"><part-name>M</part-name></score-part></part-list>'
            '<part id="P1"><measure number="1"><attributes><divisions>2</divisions>'
            f'<time><beats>{beats}</beats><beat-type>{beat_type}</beat-type></time></attributes>'
            f'{notes}</measure></part></score-partwise>').encode()


def mxl(doc: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("META-INF/container.xml", '<?xml version="1.0"?><container><rootfiles>'
                   '<rootfile full-path="score.xml"/></rootfiles></container>')
        z.writestr("score.xml", doc)
    return buf.getvalue()


LAUGHS = ('<!DOCTYPE lolz [<!ENTITY l0 "lol">'
          + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)) + "]>")
ZIP_BOMB = mxl(xml().replace(b"<part-list>", b"<!--" + b" " * (64 << 20) + b"--><part-list>"))

# (file name, bytes, the reason it must be refused with, or None if it must read)
HOSTILE_SCORES = {
    "ABC meter 99999/1": ("x.abc", abc("99999/1"), "unsupported meter"),
    "ABC meter 1000/8": ("x.abc", abc("1000/8"), "unsupported meter"),
    "ABC additive meter": ("x.abc", abc("2+3+2+9999/8"), "unsupported meter"),
    "ABC inline meter": ("x.abc", abc(body="ABC DEF|[M:5000/4]ABC|"), "unsupported meter"),
    "ABC meter 0/8": ("x.abc", abc("0/8"), "parse error"),
    "ABC meter 3/0": ("x.abc", abc("3/0"), "parse error"),
    "ABC note of 10^8 eighths": ("x.abc", abc(body="A99999999 B|"), "too long"),
    "ABC length 1/0": ("x.abc", abc().replace(b"L:1/8", b"L:1/0"), "parse error"),
    "ABC tuplet (999": ("x.abc", abc(body="(999ABC DEF|"), None),
    "ABC 300 voices": ("x.abc", b"X:1\nM:6/8\nL:1/8\n" + b"".join(
        b"V:%d\n" % i for i in range(300)) + b"K:D\n" + b"".join(
        b"[V:%d] ABC DEF|\n" % i for i in range(300)), None),
    "ABC 20,000 empty tunes": ("x.abc", b"".join(b"X:%d\nK:D\n" % i for i in range(20_000)),
                               "no notes"),
    "ABC 1,000 copies of a 500 kB header": (
        "x.abc", b"%%" + b"x" * 500_000 + b"\n" + b"X:1\n" * 1000, "too long"),
    "ABC NUL bytes": ("x.abc", abc(body="A\0B\0C DEF|"), None),
    "MusicXML 99999/1": ("x.xml", xml("99999", "1"), "unsupported meter"),
    "MusicXML additive 2+3+99999/8": ("x.musicxml", xml("2+3+99999"), "unsupported meter"),
    "MusicXML meter hidden in an entity": (
        "x.xml", xml("&n;", prolog='<!DOCTYPE score-partwise [<!ENTITY n "99999">]>'),
        "unsupported meter"),
    "MusicXML note of 10^9 divisions": ("x.xml", xml(duration="999999999"), "too long"),
    "MusicXML divisions 0": ("x.xml", xml().replace(b"<divisions>2", b"<divisions>0"),
                             "parse error"),
    "MusicXML billion laughs": ("x.xml", xml(prolog=LAUGHS, text="<lyric><text>&l9;</text></lyric>"),
                                "parse error"),
    "MusicXML external entity": ("x.xml", xml(prolog='<!DOCTYPE x [<!ENTITY e SYSTEM '
                                                     '"file:///etc/passwd">]>',
                                              text="<lyric><text>&e;</text></lyric>"),
                                 "parse error"),
    "MusicXML 100,000 nested elements": ("x.xml", b"<a>" * 100_000 + b"</a>" * 100_000,
                                         "parse error"),
    "compressed MusicXML zip bomb (64 MB)": ("x.mxl", ZIP_BOMB, "file too large"),
    "compressed MusicXML that is not a zip": ("x.mxl", b"PK\x03\x04" + bytes(200), "parse error"),
    "compressed MusicXML 99999/1": ("x.mxl", mxl(xml("99999", "1")), "unsupported meter"),
    "kern meter 99999/1": ("x.krn", b"**kern\n*M99999/1\n8d\n8e\n=\n*-\n", "unsupported meter"),
    "kern 200 spines": ("x.krn", b"**kern" + b"\t**kern" * 200 + b"\n*M6/8" + b"\t*M6/8" * 200
                        + b"\n" + (b"8d" + b"\t8d" * 200 + b"\n") * 6 + b"*-" + b"\t*-" * 200
                        + b"\n", None),
}


@pytest.mark.parametrize("case", list(HOSTILE_SCORES))
def test_hostile_scores_are_bounded_and_named(case):
    name, data, reason = HOSTILE_SCORES[case]
    check_outcome(read_all_ways(data, name), reason)


def test_a_tune_book_stops_after_max_tunes_and_uploads_after_the_first_good_tune():
    book = b"".join(b"X:%d\nT:t%d\nM:6/8\nL:1/8\nK:D\nABC DEF|\n" % (i, i) for i in range(1, 31))
    n = LIMITS.max_tunes
    tunes = read_tunes("book.abc", book, LIMITS)
    assert [t.error for t in tunes] == [None] * n + ["too many tunes"]
    assert len(read_tunes("book.abc", book)) == 30  # the default limits take a whole book
    bad_then_good = b"X:1\nM:99999/1\nK:D\nABC|\n" * (n - 1) + book
    assert read_melody(bad_then_good, "book.abc", LIMITS).title == "t1"
    all_bad = b"X:1\nM:5000/8\nK:D\nABC|\n" * n + book
    with pytest.raises(FormatError, match="unsupported meter"):
        read_melody(all_bad, "book.abc", LIMITS)


def test_abc_size_is_checked_before_music21_parses_it():
    # music21's time grows with the square of the bars: 4,000 bars would take half a minute
    many_bars = abc(body="A|" * 4000)
    tunes = read_all_ways(many_bars, "bars.abc")
    assert tunes[0].error == "too long" and "bars" in tunes[0].detail
    dense = abc(body="ABCDEFGA" * 1100)  # 8,800 notes in 8,800 characters
    assert read_all_ways(dense, "dense.abc")[0].error == "too many notes"
    ok = read_all_ways(abc(body="ABC DEF|" * (LIMITS.max_bars - 2)), "long.abc")
    assert ok[0].melody is not None and ok[0].melody.complete_bars() >= LIMITS.max_bars - 2


# --- property-based: random and mutated bytes ----------------------------------------------------

SUFFIXES = st.sampled_from(sorted(READ_SUFFIXES))
PREFIXES = st.sampled_from([b"", b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk",
                            b"X:1\nM:6/8\nL:1/8\nK:D\n", b"<?xml version='1.0'?><score-partwise>",
                            b"PK\x03\x04", b"**kern\n*M6/8\n"])


@fuzz(120)
@given(prefix=PREFIXES, data=st.binary(max_size=600), suffix=SUFFIXES)
def test_random_bytes_at_every_reader(prefix, data, suffix):
    read_all_ways(prefix + data, "fuzz" + suffix)


def mutate(data: bytes, flips: list[tuple[int, int]], cut: int | None,
           insert: tuple[int, bytes] | None) -> bytes:
    out = bytearray(data)
    for pos, value in flips:
        out[pos % len(out)] = value
    if insert is not None:
        out[insert[0] % len(out):insert[0] % len(out)] = insert[1]
    return bytes(out[:cut] if cut is not None else out)


MUTATIONS = dict(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
                 cut=st.none() | st.integers(0, 400),
                 insert=st.none() | st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=8)))


@fuzz(150)
@given(**MUTATIONS)
def test_mutated_midi(flips, cut, insert):
    read_all_ways(mutate(VALID_MIDI, flips, cut, insert), "mutated.mid")


ABC_BYTES = st.sampled_from(list(b"ABCDEFGabcz,'^_=/0123456789()[]{}|:<>-.~\"!%+\n XLMKQTV"))


@fuzz(80)
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), ABC_BYTES), max_size=6),
       cut=MUTATIONS["cut"], insert=MUTATIONS["insert"])
def test_mutated_abc(flips, cut, insert):
    read_all_ways(mutate(VALID_ABC, flips, cut, insert), "mutated.abc")


@fuzz(40)
@given(**MUTATIONS)
def test_mutated_musicxml(flips, cut, insert):
    read_all_ways(mutate(VALID_XML, flips, cut, insert), "mutated.musicxml")


# --- the upload endpoints ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(tiny_model_dir):
    with TestClient(create_app(tiny_model_dir, workers=2, queue_limit=8),
                    raise_server_exceptions=False) as c:
        yield c


FORMS = {"/api/continue": {"bars": "2"}, "/api/infill": {"bars": "1", "candidates": "8"}}


def post_file(client, endpoint: str, data: bytes, name: str):
    t0 = time.perf_counter()
    r = client.post(endpoint, files={"file": (name, data, "application/octet-stream")},
                    data=FORMS.get(endpoint))
    assert time.perf_counter() - t0 < SECONDS, f"{endpoint} {name} took too long"
    body = r.json()
    if endpoint == "/api/infill" and r.status_code == 422:  # a tune too short for its bar 1
        assert body["field"] == "bars", body
        return r
    assert r.status_code in (200, 400), (endpoint, name, r.status_code, r.text[:300])
    if r.status_code == 400:
        assert body["field"] == "file" and body["error"] and "\n" not in body["error"]
    else:
        assert len(body["notes"]) == len(body["surprisal"]) <= UPLOAD_LIMITS.max_notes + 300
    return r


ENDPOINTS = st.sampled_from(["/api/continue", "/api/infill", "/api/score"])
NAMES = st.sampled_from(["a.mid", "a.midi", "a.abc", "a.xml", "a.mxl", "a.musicxml", "a.krn",
                         "a", "a.txt", "../../etc/passwd", "a" * 300 + ".mid", "\u00e9\u00e8.abc"])


@fuzz(40)
@given(endpoint=ENDPOINTS, prefix=PREFIXES, data=st.binary(min_size=1, max_size=400), name=NAMES)
def test_random_uploads_get_200_or_400(client, endpoint, prefix, data, name):
    post_file(client, endpoint, prefix + data, name)


@fuzz(30)
@given(endpoint=ENDPOINTS, **MUTATIONS)
def test_mutated_midi_uploads_get_200_or_400(client, endpoint, flips, cut, insert):
    post_file(client, endpoint, mutate(VALID_MIDI, flips, cut, insert) or b"\0", "m.mid")


HOSTILE_UPLOADS = {**{k: ("hostile.mid", *v) for k, v in HOSTILE_MIDI.items()}, **HOSTILE_SCORES}


@pytest.mark.parametrize("endpoint", ["/api/continue", "/api/infill", "/api/score"])
def test_hostile_uploads_get_200_or_400(client, endpoint):
    for case, (name, data, reason) in HOSTILE_UPLOADS.items():
        if len(data) > UPLOAD_LIMITS.max_file_bytes:
            continue  # 413, tested in test_api
        r = post_file(client, endpoint, data, name)
        if reason not in (None, ANY):
            assert r.status_code == 400, case
