"""Corpus ingestion: skips and counts bad input, caches, deduplicates, splits deterministically."""

from __future__ import annotations

import io
import json
import random

import mido
import pytest
from typer.testing import CliRunner

from composer import corpus, formats, parsing
from composer.cli import app
from composer.dataset import Dataset
from composer.encoding import melody_signature
from composer.music import Melody, Meter, Note

JIG = """X:{x}
T:{title}
M:6/8
L:1/8
K:{key}
{body}
"""
BODIES = [
    "|:A|dfa afd|gbg faf|ecA ABc|dfe d2:|",
    "|:B|ABA AGE|GAB dBG|ABA AGE|GED D2:|",
    "|:G|FAA dAA|BAF ABd|FAA dAF|EFD D2:|",
    "|:E|GAG GBd|ege dBA|GAG GBd|edB A2:|",
    "|:d|cAA dAA|cAG EFG|cAA dcB|AFD D2:|",
]


def jig(x: int, title: str, body: str, key: str = "D") -> str:
    return JIG.format(x=x, title=title, key=key, body=body)


def midi_bytes() -> bytes:
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("time_signature", numerator=6, denominator=8))
    for p in [62, 64, 66, 67, 69, 71, 72, 74, 76, 74, 72, 71]:
        track.append(mido.Message("note_on", note=p, velocity=80, time=0))
        track.append(mido.Message("note_off", note=p, velocity=0, time=240))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


@pytest.fixture
def messy(tmp_path):
    """A folder: one good tune, a 3-tune file with a broken middle tune, three bad files."""
    folder = tmp_path / "jigs"
    folder.mkdir()
    (folder / "good.abc").write_text(jig(1, "Good One", BODIES[0]))
    broken = "X:2\nT:Broken\nM:6/8\nL:1/8\nK:D\n|:(((]]] {{{ &&& \\\\ |\n"
    (folder / "sub").mkdir()
    (folder / "sub" / "multi.abc").write_text(
        jig(1, "First", BODIES[1]) + "\n" + broken + "\n" + jig(3, "Third", BODIES[2]))
    (folder / "garbage.mid").write_bytes(random.Random(1).randbytes(300))
    (folder / "truncated.mid").write_bytes(midi_bytes()[:40])
    (folder / "empty.abc").write_bytes(b"")
    (folder / "notes.txt").write_text("not music")
    return folder


def test_folder_ingest_keeps_good_tunes_and_counts_bad_ones(messy, tmp_path, capsys):
    out = tmp_path / "out" / "d.npz"
    s = corpus.ingest([str(messy)], out, workers=1, verbose=True)
    assert s["files"] == 5  # notes.txt is not a music file
    assert s["tunes_kept"] == 3
    assert sum(s["skipped"].values()) == 4
    assert s["skipped"]["empty file"] == 1
    assert s["tunes_read"] == s["tunes_kept"] + sum(s["skipped"].values())
    ds = Dataset.load(out)
    assert len(ds) == 3 and ds.n_notes == s["notes"]
    assert sorted(t["title"] for t in ds.tunes) == ["First", "Good One", "Third"]
    third = next(t for t in ds.tunes if t["title"] == "Third")
    assert third["source"] == "sub/multi.abc" and third["number"] == 3
    assert {t["style"] for t in ds.tunes} == {"jigs"} and ds.vocab.styles == ["jigs"]
    assert {t["meter"] for t in ds.tunes} == {"6/8"} and third["key"].startswith("D ")
    err = capsys.readouterr().err
    for name in ("garbage.mid", "truncated.mid", "empty.abc", "sub/multi.abc#2"):
        assert name in err
    assert "good.abc" not in err


def test_cli_json_summary_and_warm_cache(messy, tmp_path, monkeypatch):
    out = tmp_path / "d.npz"
    args = ["ingest", str(messy), "--out", str(out), "--workers", "1", "--json", "--style", "x"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    s1 = json.loads(first.stdout)
    for key in ("tunes_read", "tunes_kept", "skipped", "notes", "splits", "seconds"):
        assert key in s1
    assert set(s1["splits"]) == {"train", "valid", "test"}
    assert sum(s1["splits"].values()) == s1["tunes_kept"] == 3 and s1["cached_files"] == 0
    assert (tmp_path / "cache").is_dir()
    stale = tmp_path / "cache" / "enc0-fmt0-0123456789abcdef"
    stale.mkdir()
    (stale / "old.json").write_text("{}")

    def no_parsing(*a, **k):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(formats, "read_tunes", no_parsing)
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    s2 = json.loads(second.stdout)
    assert s2["cached_files"] == s2["files"] == 5
    assert {k: s2[k] for k in ("tunes_kept", "skipped", "notes", "splits")} == \
        {k: s1[k] for k in ("tunes_kept", "skipped", "notes", "splits")}
    assert Dataset.load(out).vocab.styles == ["x"]
    assert not stale.exists()  # entries of other reader versions are removed


def test_duplicates_across_folders_kept_once_and_splits_stable(tmp_path):
    a, b = tmp_path / "reels", tmp_path / "airs"
    a.mkdir(), b.mkdir()
    (a / "a.abc").write_text("\n".join(jig(i + 1, f"A{i}", BODIES[i]) for i in range(3)))
    # the first tune again under another title, and two tunes of its own
    (b / "b.abc").write_text(jig(1, "A0 again", BODIES[0]) + "\n" + jig(2, "B3", BODIES[3])
                             + "\n" + jig(3, "B4", BODIES[4]))
    cache = tmp_path / "cache"
    # the split each tune's hash gives (a corpus this small would otherwise get tunes moved
    # into its empty valid and test splits)
    opts = corpus.IngestOptions(fill_empty_splits=False)
    s_ab = corpus.ingest([str(a), str(b)], tmp_path / "ab.npz", workers=1, cache_dir=cache,
                         options=opts)
    s_ba = corpus.ingest([str(b), str(a)], tmp_path / "ba.npz", workers=1, cache_dir=cache,
                         options=opts)
    corpus.ingest([str(a)], tmp_path / "a.npz", workers=1, cache_dir=cache, options=opts)
    assert s_ab["tunes_kept"] == s_ba["tunes_kept"] == 5 and s_ab["skipped"] == {"duplicate": 1}
    ab, ba, only_a = (Dataset.load(tmp_path / n) for n in ("ab.npz", "ba.npz", "a.npz"))
    assert "A0" in [t["title"] for t in ab.tunes] and "A0 again" in [t["title"] for t in ba.tunes]

    def splits(ds: Dataset) -> dict:
        return {t["title"].replace(" again", ""): int(s) for t, s in zip(ds.tunes, ds.split)}

    assert splits(ab) == splits(ba)
    assert all(splits(ab)[k] == v for k, v in splits(only_a).items())


def test_split_key_ignores_key_and_tail_but_not_opening():
    notes = [Note(60 + (i * 5) % 12, 12) for i in range(24)]
    mel = Melody(notes=notes, meter=Meter(6, 8), tonic=0)
    key = corpus.split_key(mel)
    assert corpus.split_key(mel.transpose(7)) == key
    tail_changed = Melody(notes=notes[:20] + [Note(None, 12)] * 4, meter=Meter(6, 8))
    assert corpus.split_key(tail_changed) == key
    assert corpus.split_key(Melody(notes=[Note(70, 12)] + notes[1:], meter=Meter(6, 8))) != key
    rng = random.Random(0)
    counts = [0, 0, 0]
    for _ in range(4000):
        counts[corpus.split_of(f"{rng.getrandbits(128):032x}")] += 1
    assert 0.87 < counts[0] / 4000 < 0.93 and counts[1] > 120 and counts[2] > 120


def test_fast_signature_equals_melody_signature():
    mel = Melody(notes=[Note(62, 12), Note(None, 6), Note(69, 18)], meter=Meter(6, 8), tonic=2)
    d = {"pitches": [62, None, 69], "durations": [12, 6, 18], "tonic": 2}
    assert corpus.signature(d) == melody_signature(mel)


def test_parallel_chunked_ingest_matches_serial(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "all.abc").write_text("% header\n\n" + "\n".join(
        jig(i + 1, f"T{i}", b) for i, b in enumerate(BODIES)))
    chunks = parsing.split_abc((folder / "all.abc").read_bytes(), 2)
    assert len(chunks) == 3 and all(c.startswith(b"% header") for c in chunks)
    opts = corpus.IngestOptions(abc_chunk_tunes=2)
    serial = corpus.ingest([str(folder)], tmp_path / "s.npz", workers=1,
                           cache_dir=tmp_path / "c1", options=opts)
    para = corpus.ingest([str(folder)], tmp_path / "p.npz", workers=2,
                         cache_dir=tmp_path / "c2", options=opts)
    assert serial["tunes_kept"] == para["tunes_kept"] == 5
    s, p = Dataset.load(tmp_path / "s.npz"), Dataset.load(tmp_path / "p.npz")
    assert s.tunes == p.tunes
    assert (s.durations == p.durations).all() and (s.pitches == p.pitches).all()


def test_rare_meter_dropped(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "jigs.abc").write_text("\n".join(jig(i + 1, f"J{i}", BODIES[i]) for i in range(3)))
    (folder / "waltz.abc").write_text(
        "X:1\nT:W\nM:3/4\nL:1/8\nK:G\nG2 B2 d2|g4 f2|e2 d2 B2|A6|G6|]\n")
    opts = corpus.IngestOptions(min_meter_tunes=2, rare_meter_share=1.0)
    s = corpus.ingest([str(folder)], tmp_path / "d.npz", workers=1, options=opts)
    assert s["skipped"] == {"rare meter": 1} and s["meters"] == {"6/8": 3}


@pytest.mark.parametrize("source, words", [
    ("does/not/exist", "no such file or folder"),
    ("music21:nosuchcollection", "oneills1850"),
    ("EMPTY", "no tunes kept"),
    ("TEXT", "no .abc/.mid/"),
])
def test_cli_bad_sources_exit_2_with_one_line(tmp_path, source, words):
    if source == "EMPTY":
        (tmp_path / "e").mkdir()
        (tmp_path / "e" / "x.abc").write_text("")
        source = str(tmp_path / "e")
    elif source == "TEXT":
        (tmp_path / "t").mkdir()
        (tmp_path / "t" / "readme.txt").write_text("hello")
        source = str(tmp_path / "t")
    out = tmp_path / "keep.npz"
    out.write_bytes(b"previous dataset")
    result = CliRunner().invoke(app, ["ingest", source, "--out", str(out), "--workers", "1"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]
    assert out.read_bytes() == b"previous dataset"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_crashed_reader_costs_only_its_own_file(tmp_path, monkeypatch):
    """A reader that ends its worker process (a segfault, the OOM killer) loses that file alone:
    the other files the broken pool held are parsed again, one process each, and kept."""
    import os

    folder = tmp_path / "set"
    folder.mkdir()
    for i, body in enumerate(BODIES):
        (folder / f"t{i}.abc").write_text(jig(1, f"T{i}", body))
    (folder / "crash.abc").write_text(jig(1, "Crash", BODIES[0].replace("dfa", "dfe")))
    real = formats.read_tunes

    def read_tunes(name, data, *args, **kwargs):
        if name.endswith("crash.abc"):
            os._exit(3)
        return real(name, data, *args, **kwargs)

    monkeypatch.setattr(formats, "read_tunes", read_tunes)  # workers are forked: they see it
    cache = tmp_path / "cache"
    s = corpus.ingest([str(folder)], tmp_path / "d.npz", workers=2, cache_dir=cache)
    assert s["tunes_kept"] == len(BODIES)
    assert s["skipped"] == {parsing.READER_CRASHED: 1}
    # the crash is not cached: with a reader that works, the next run reads the file
    monkeypatch.setattr(formats, "read_tunes", real)
    s = corpus.ingest([str(folder)], tmp_path / "d.npz", workers=2, cache_dir=cache)
    assert s["tunes_kept"] == len(BODIES) + 1 and not s["skipped"]
