"""`composer compose`, `continue` and `score` on the command line: formats, determinism, errors."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pretty_midi
import pytest
from typer.testing import CliRunner

from composer.cli import app
from composer.formats import find_soundfont, read_melody, read_tunes
from composer.sample import Composer, ComposeRequest, SamplingOptions
from conftest import band_midi, cli_fails as _fails, cli_ok as _ok, merge_rests


@pytest.fixture(scope="module")
def composer(tiny_model_dir) -> Composer:
    return Composer.load(tiny_model_dir)


def _midi_bytes(pm: pretty_midi.PrettyMIDI) -> bytes:
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


ARGS = ["--bars", 4, "--meter", "6/8", "--key", "G", "--mode", "minor", "--seed", 3]


@pytest.mark.parametrize("suffix", [".mid", ".abc", ".musicxml", ".xml", ".json"])
def test_compose_writes_each_format_and_it_reads_back(tiny_model_dir, composer, tmp_path, suffix):
    out = tmp_path / f"tune{suffix}"
    result = _ok(["compose", "--model", tiny_model_dir, *ARGS, "-o", out])
    assert "seed 3" in result.stderr
    expected = composer.compose(ComposeRequest(bars=4, meter="6/8", key="G", mode="minor",
                                               sampling=SamplingOptions(seed=3)))
    if suffix == ".json":
        d = json.loads(out.read_text())
        assert [(n["pitch"], round(n["duration"] * 24)) for n in d["notes"]] == [
            (n.pitch, n.duration) for n in expected.melody.notes]
        assert d["bits_per_note"] == pytest.approx(expected.bits_per_note, abs=1e-3)
        assert d["notes"][0]["rhythm_bits"] == pytest.approx(expected.surprisal[0][0], abs=1e-3)
        assert (d["meter"], d["key"], d["mode"], d["seed"]) == ("6/8", "G", "minor", 3)
        return
    [back] = read_tunes(out)
    assert back.error is None, back.detail
    m = back.melody
    if suffix == ".mid":
        assert merge_rests(m.notes) == merge_rests(expected.melody.notes)
    else:
        assert m.notes == expected.melody.notes
    assert (str(m.meter), m.tonic, m.mode) == ("6/8", 7, "minor")
    assert m.complete_bars() == 4


def test_compose_wav(tiny_model_dir, tmp_path):
    if not (shutil.which("fluidsynth") and find_soundfont()):
        pytest.skip("needs fluidsynth and a GM soundfont (apt-get install fluidsynth timgm6mb-soundfont)")
    out = tmp_path / "tune.wav"
    _ok(["compose", "--model", tiny_model_dir, "--bars", 2, "--seed", 1, "-o", out])
    assert out.read_bytes()[:4] == b"RIFF"


def test_compose_wav_without_fluidsynth_is_a_clear_error(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    out = tmp_path / "tune.wav"
    _fails(["compose", "--model", tiny_model_dir, "--bars", 2, "--seed", 1, "-o", out], "fluidsynth")
    assert not out.exists()


def test_compose_to_stdout_is_abc(tiny_model_dir):
    result = _ok(["compose", "--model", tiny_model_dir, *ARGS, "-o", "-"])
    [tune] = read_tunes("out.abc", result.stdout.encode())
    assert tune.melody.complete_bars() == 4 and "X:1" in result.stdout


def test_count_gives_numbered_files_or_one_abc_book(tiny_model_dir, tmp_path):
    _ok(["compose", "--model", tiny_model_dir, "--bars", 2, "--count", 3, "--seed", 1,
         "-o", tmp_path / "set.mid"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set-1.mid", "set-2.mid", "set-3.mid"]
    _ok(["compose", "--model", tiny_model_dir, "--bars", 2, "--count", 3, "--seed", 1,
         "-o", tmp_path / "book.abc"])
    tunes = read_tunes(tmp_path / "book.abc")
    assert len(tunes) == 3 and all(t.melody.complete_bars() == 2 for t in tunes)


@pytest.mark.parametrize("suffix", [".mid", ".abc", ".json"])
def test_same_arguments_and_seed_give_identical_bytes(tiny_model_dir, tmp_path, suffix):
    args = ["compose", "--model", tiny_model_dir, *ARGS, "--best-of", 3, "--temperature", 0.9]
    _ok([*args, "-o", tmp_path / f"a{suffix}"])
    _ok([*args, "-o", tmp_path / f"b{suffix}"])
    assert (tmp_path / f"a{suffix}").read_bytes() == (tmp_path / f"b{suffix}").read_bytes()


def test_a_drawn_seed_is_reported_and_reproduces_the_tune(tiny_model_dir, tmp_path):
    result = _ok(["compose", "--model", tiny_model_dir, "--bars", 3, "-o", tmp_path / "a.abc"])
    seed = int(re.search(r"seed (\d+), temperature ", result.stderr).group(1))
    _ok(["compose", "--model", tiny_model_dir, "--bars", 3, "--seed", seed,
         "-o", tmp_path / "b.abc"])
    assert (tmp_path / "a.abc").read_bytes() == (tmp_path / "b.abc").read_bytes()


def _band_midi(path: Path) -> None:
    """Chords, drums and a melody in 3/4 with a one-beat pickup, ending mid-bar."""
    tune = [(64, 1), (67, 1), (66, 1), (64, 2), (59, 1), (62, 0.5), (60, 0.5), (59, 2), (64, 1),
            (67, 1)]
    path.write_bytes(band_midi(tune, bpm=100, bars=5, chord=(40, 47, 52)))


def test_continue_a_multitrack_midi_keeps_its_melody(tiny_model_dir, tmp_path):
    src = tmp_path / "band.mid"
    _band_midi(src)
    fragment = read_melody(src.read_bytes(), src.name)
    assert fragment.meter.bar_ticks == 72 and fragment.pickup == 24
    out = tmp_path / "more.abc"
    result = _ok(["continue", src, "--model", tiny_model_dir, "--bars", 2, "--seed", 5, "-o", out])
    assert "seed 5" in result.stderr
    m = read_tunes(out)[0].melody
    n = len(fragment.notes)
    assert m.notes[:n] == fragment.notes
    assert (m.meter, m.tonic, m.mode, m.pickup) == (fragment.meter, fragment.tonic, fragment.mode,
                                                   fragment.pickup)
    bar = 72
    frag_end = (fragment.start_position + fragment.total_ticks) % bar
    assert frag_end != 0  # the fragment ends mid-bar; the continuation completes it first
    assert m.total_ticks == fragment.total_ticks + (bar - frag_end) + 2 * bar
    assert (m.start_position + m.total_ticks) % bar == 0


@pytest.mark.parametrize("key,mode,k_line", [("F#", "major", "K:F#maj"),
                                             ("C#", "major", "K:C#maj"), ("Gb", "major", "K:Gbmaj"), ("Eb", "minor", "K:Ebm"),
                                             ("G#", "minor", "K:G#m"), ("A#", "minor", "K:A#m")])
def test_compose_writes_the_key_as_asked(tiny_model_dir, tmp_path, key, mode, k_line):
    args = ["compose", "--model", tiny_model_dir, "--bars", 2, "--key", key, "--mode", mode,
            "--seed", 1]
    abc = _ok([*args, "-o", "-"]).stdout
    assert f"\n{k_line}\n" in abc and re.search(rf"^T:.* in {re.escape(key)}(?![#b])", abc, re.M)
    _ok([*args, "-o", tmp_path / "t.json"])
    assert json.loads((tmp_path / "t.json").read_text())["key"] == key


@pytest.mark.parametrize("k_line, written", [("K:F#", "K:F#maj"), ("K:C#", "K:C#maj"),
                                             ("K:D#m", "K:D#m"), ("K:Cb", "K:Cbmaj"),
                                             ("K:Gb", "K:Gbmaj")])
def test_continue_keeps_the_fragments_own_key(tiny_model_dir, tmp_path, k_line, written):
    music = "CDEF GABc | BAGF EDC2 |"
    (tmp_path / "frag.abc").write_text(f"X:1\nT:Frag\nM:4/4\nL:1/8\n{k_line}\n{music}\n")
    out = tmp_path / "more.abc"
    _ok(["continue", tmp_path / "frag.abc", "--model", tiny_model_dir, "--bars", 1, "--seed", 1,
         "-o", out])
    head, _, body = out.read_text().partition(f"\n{written}\n")
    # the user's letters, unchanged (beamed by the beat)
    assert body.replace(" ", "").startswith(music.replace(" ", "")), out.read_text()


def test_continue_keep_bars(tiny_model_dir, tmp_path):
    src = tmp_path / "band.mid"
    _band_midi(src)
    out = tmp_path / "short.json"
    _ok(["continue", src, "--model", tiny_model_dir, "--keep-bars", 1, "--bars", 1, "--seed", 2,
         "-o", out])
    d = json.loads(out.read_text())
    # the pickup E and the notes starting in bar 1 (G F# E, the E tied over into bar 2) are
    # kept whole: 5 beats; the continuation completes bar 2 (2 beats), then adds 1 bar
    assert d["fragment_notes"] == 4
    kept = [(n["pitch"], n["duration"]) for n in d["notes"][:4]]
    assert kept == [(64, 1), (67, 1), (66, 1), (64, 2)]
    assert sum(n["duration"] for n in d["notes"]) == pytest.approx(5 + 2 + 3)


def test_score_text_and_json(tiny_model_dir, tmp_path):
    src = tmp_path / "band.mid"
    _band_midi(src)
    text = _ok(["score", src, "--model", tiny_model_dir]).stdout
    assert "bits/note" in text and "most surprising" in text and text.count("bar ") >= 5
    d = json.loads(_ok(["score", src, "--model", tiny_model_dir, "--json"]).stdout)
    assert len(d["notes"]) == 10 and len(d["most_surprising"]) == 5
    assert {"rhythm_bits", "pitch_bits", "bar", "beat"} <= set(d["notes"][0])
    assert d["notes"][0]["bar"] == 0 and d["notes"][1]["bar"] == 1
    assert d["bits_per_note"] > 0


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.abc").write_bytes(b"")
    (d / "garbage.mid").write_bytes(b"this is not a midi file at all")
    (d / "silent.abc").write_text("X:1\nT:Nothing\nM:4/4\nK:C\n")
    pm = pretty_midi.PrettyMIDI()
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes += [pretty_midi.Note(100, 36, i / 2, i / 2 + 0.25) for i in range(8)]
    pm.instruments.append(drums)
    (d / "drums.mid").write_bytes(_midi_bytes(pm))
    (d / "tune.abc").write_text("X:1\nT:Ok\nM:6/8\nL:1/8\nK:D\nDEF GAB|A3 d3|]\n")
    (d / "folder.mid").mkdir()
    return d


@pytest.mark.parametrize("args, needle", [
    (["compose", "--meter", "5/4"], "this model knows the meters 3/4, 4/4, 6/8"),
    (["compose", "--mode", "blues"], "valid modes: dorian, major, minor"),
    (["compose", "--style", "reels"], "valid styles: airs, jigs"),
    (["compose", "--key", "H"], "valid keys: C, C#, Db"),
    (["compose", "--bars", "0"], "1..256"),
    (["compose", "--bars", "257"], "1..256"),
    (["compose", "--temperature", "0"], "temperature"),
    (["compose", "--temperature", "-0.5"], "temperature"),
    (["compose", "--top-p", "1.5"], "--top-p must be"),
    (["compose", "--low", "80", "--high", "60"], "low pitch 80 is above high pitch 60"),
    (["compose", "--low", "30", "--high", "40"], "F#1..E2 (30..40) is narrower than an octave"),
    (["compose", "--low", "70", "--high", "70"], "narrower than an octave"),
    (["compose", "--low", "100", "--high", "127"], "leaves less than an octave of it"),
    (["compose", "--low", "H3"], "or a note name such as G3"),
    (["compose", "--count", "0"], "count"),
    (["compose", "--form", "A0B"], "part A has 0 bars"),
    (["compose", "--form", "XYZ!"], "letters with optional bar counts"),
    (["compose", "--type", "jog"], "valid types: jig, reel, waltz"),
    (["compose", "--pickup", "0.3"], "multiple of 1/24"),
    (["compose", "--meter", "3/4", "--pickup", "3"], "shorter than a bar of 3/4"),
    (["compose", "--form", "AABB", "--bars", "8"], "bars or a form"),
    (["continue", "{bad}/tune.abc", "--form", "A1"], "more than the 1 of the form"),
    (["compose", "--key", "Dm"], "--key D --mode minor"),
    (["compose", "--key", "F#m"], "--key F# --mode minor"),
    (["compose", "--key", "G#", "--mode", "major"], "write it as Ab"),
    (["compose", "-o", "tune.txt"], "unknown output type"),
    (["compose", "-o", "no/such/folder/tune.mid"], "does not exist"),
    (["continue", "missing.mid"], "not found"),
    (["continue", "{bad}/empty.abc"], "empty"),
    (["continue", "{bad}/garbage.mid"], "garbage.mid: not a MIDI file"),
    (["continue", "{bad}/silent.abc"], "silent.abc"),
    (["continue", "{bad}/drums.mid"], "drums only"),
    (["continue", "{bad}/folder.mid"], "folder"),
    (["continue", "{bad}/tune.abc", "--bars", "0"], "1..256"),
    (["continue", "{bad}/tune.abc", "--keep-bars", "0"], "--keep-bars must be"),
    (["continue", "{bad}/tune.abc", "--keep-bars", "100"], "is more than the fragment's"),
    (["score", "{bad}/drums.mid"], "drums only"),
    (["score", "missing.abc"], "not found"),
])
def test_user_errors_exit_2_with_one_line(tiny_model_dir, bad_files, tmp_path, monkeypatch,
                                          args, needle):
    monkeypatch.chdir(tmp_path)
    args = [a.replace("{bad}", str(bad_files)) for a in args]
    _fails([*args, "--model", tiny_model_dir], needle)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    _fails(["compose", "--model", tmp_path / "nope"], "model directory not found")
    _fails(["score", "--model", tmp_path / "nope", str(tmp_path / "x.abc")], "not found")


def test_default_model_is_used_without_model_option(tmp_path):
    from composer.modelfiles import default_model_dir

    assert (default_model_dir() / "config.json").is_file(), "the default model is not shipped"
    _ok(["compose", "--bars", "2", "--seed", "1", "-o", str(tmp_path / "x.abc")])
    assert read_tunes(tmp_path / "x.abc")[0].melody.complete_bars() == 2


DOCS = [Path(__file__).resolve().parents[1] / name for name in ("README.md", "models/folk/README.md")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.parent.name)
def test_the_documented_tunes_are_what_their_commands_write(doc):
    """Each `composer compose ... -o -` shown with its tune gives that tune, note for note."""
    shown = re.findall(r"```bash\n(composer compose [^\n]*-o -)\n```\s*```abc\n(.*?)```",
                       doc.read_text(), re.S)
    assert len(shown) >= 2
    for command, abc in shown:
        written = _ok(command.split()[1:]).stdout
        assert abc.strip() in written, command


def test_the_installed_command_prints_abc_and_one_line_errors(tiny_model_dir, tmp_path):
    cmd = [sys.executable, "-m", "composer"]
    ok = subprocess.run([*cmd, "compose", "--model", tiny_model_dir, "--bars", "2", "--seed", "4",
                         "-o", "-"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert read_tunes("x.abc", ok.stdout.encode())[0].melody.complete_bars() == 2
    bad = subprocess.run([*cmd, "continue", str(tmp_path / "nothing.mid"), "--model",
                          tiny_model_dir], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


# --- form ------------------------------------------------------------------------------------
def test_type_and_form_write_repeats_and_midi_as_played(tiny_model_dir, tmp_path):
    abc, mid = tmp_path / "reel.abc", tmp_path / "reel.mid"
    args = ["compose", "--type", "reel", "--form", "A4A4B4B4", "--key", "D", "--seed", 5,
            "--model", tiny_model_dir]
    _ok([*args, "-o", abc])
    _ok([*args, "-o", mid])
    text = abc.read_text()
    assert "R:reel" in text and text.count("|: ") == 2 and " :|\n|: " in text and text.rstrip().endswith(":|")
    written = read_tunes(abc)[0].melody
    assert written.form.letters() == "AABB" and written.complete_bars() == 8
    assert read_melody(mid.read_bytes(), "reel.mid").complete_bars() == 16  # as played


def test_continue_an_a_part_with_a_form_writes_the_b_part(tiny_model_dir, tmp_path):
    a_part = "X:1\nT:A part\nR:jig\nM:6/8\nL:1/8\nK:D\n|:DEF GAB|A3 d3|FED EFA|d3 d3:|\n"
    (tmp_path / "a.abc").write_text(a_part)
    out = tmp_path / "tune.abc"
    _ok(["continue", tmp_path / "a.abc", "--form", "AABB", "--seed", 1, "--model", tiny_model_dir,
         "-o", out])
    fragment = read_tunes(tmp_path / "a.abc")[0].melody
    whole = read_tunes(out)[0].melody
    assert whole.notes[:len(fragment.notes)] == fragment.notes
    assert [p.repeat for p in whole.form.parts] == [True, True]
    assert [p.bars for p in whole.form.parts] == [4, 4]


def test_endings_give_first_and_second_endings(tiny_model_dir, tmp_path):
    out = tmp_path / "jig.abc"
    _ok(["compose", "--type", "jig", "--form", "AABB", "--endings", "--seed", 2,
         "--model", tiny_model_dir, "-o", out])
    text = out.read_text()
    assert text.count("[1") == 2 and text.count("[2") == 2
    form = read_tunes(out)[0].melody.form
    assert [(p.bars, p.ending, p.second) for p in form.parts] == [(4, 1, 1), (4, 1, 1)]


def test_pitch_range_takes_note_names(tiny_model_dir, tmp_path):
    out = tmp_path / "t.json"
    _ok(["compose", "--model", tiny_model_dir, "--bars", 4, "--seed", 2, "--low", "G3", "--high",
         "Bb4", "-o", out])
    pitches = [n["pitch"] for n in json.loads(out.read_text())["notes"] if n["pitch"] is not None]
    assert pitches and 55 <= min(pitches) and max(pitches) <= 70


def test_verbose_adds_the_reading_library_message(tiny_model_dir, tmp_path):
    cut = tmp_path / "cut.mid"  # a header, then a track that claims 256 bytes and holds 3
    cut.write_bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\x00\x00\x01\x00\x00\x90\x3c")
    plain = _fails(["score", cut, "--model", tiny_model_dir],
                   "cut.mid: not a readable MIDI file (damaged or truncated)")
    assert "MiniMidi" not in plain and "Error" not in plain
    result = CliRunner().invoke(app, ["score", str(cut), "--model", tiny_model_dir, "-v"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == plain and lines[1].startswith("detail: ") and len(lines) == 2

