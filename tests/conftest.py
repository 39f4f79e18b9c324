"""Shared fixtures: tiny melodies and a tiny dataset built inline, no corpus needed."""

from __future__ import annotations

import io
import os
import random

import pytest
from hypothesis import settings

# CI runs the same examples every time (a failure there is reproducible, never a coin toss);
# local runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

from composer.dataset import Dataset
from composer.encoding import Vocab, build_duration_vocab, count_durations, encode
from composer.form import Form, Part
from composer.music import Melody, Meter, Note

# (meter, rhythm patterns of one bar in ticks)
_BAR_PATTERNS = {
    "6/8": [[12] * 6, [24, 12, 24, 12], [36, 36], [12, 12, 12, 24, 12]],
    "4/4": [[12] * 8, [24] * 4, [24, 12, 12, 24, 24], [36, 12, 24, 24], [48, 48]],
    "3/4": [[24] * 3, [12, 12, 24, 24], [48, 24], [36, 12, 24]],
}


def make_tune(rng: random.Random, meter: str, mode: str, style: str, bars: int = 8,
              tonic: int = 0, pickup: bool = False) -> Melody:
    """A plausible little tune: stepwise motion in the mode's scale, ending on the tonic."""
    from composer.music import MODE_STEPS

    steps = MODE_STEPS[mode]
    scale = [60 + tonic + o * 12 + s for o in (-1, 0, 1) for s in steps]
    m = Meter.parse(meter)
    idx = 7
    notes: list[Note] = []
    pick = 0
    if pickup:
        pick = m.bar_ticks // 3 if m.bar_ticks % 3 == 0 else m.bar_ticks // 4
        notes.append(Note(scale[idx - 1], pick))
    for b in range(bars):
        pattern = rng.choice(_BAR_PATTERNS[meter])
        if pickup and b == bars - 1:
            pattern = [m.bar_ticks - pick]
        for i, d in enumerate(pattern):
            idx = max(1, min(len(scale) - 2, idx + rng.choice([-2, -1, -1, 1, 1, 2, 0])))
            last = b == bars - 1 and i == len(pattern) - 1
            pitch = scale[7] if last else (None if rng.random() < 0.03 else scale[idx])
            notes.append(Note(pitch, d))
    return Melody(notes=notes, meter=m, tonic=tonic % 12, mode=mode, pickup=pick, style=style,
                  title=f"{style} {meter} {mode}")


def make_tunes(n: int = 60, seed: int = 0) -> list[Melody]:
    rng = random.Random(seed)
    tunes = []
    for i in range(n):
        meter = ["6/8", "4/4", "3/4"][i % 3]
        mode = ["major", "minor", "dorian"][(i // 3) % 3]
        style = ["jigs", "airs"][(i // 9) % 2]
        tune = make_tune(rng, meter, mode, style, bars=rng.choice([4, 8, 8, 16]),
                         tonic=rng.randrange(12), pickup=rng.random() < 0.3)
        tune.tune_type = {"6/8": "jig", "4/4": "reel", "3/4": "waltz"}[meter]
        if tune.complete_bars() == 8 and not tune.pickup:  # two 4-bar parts, each played twice
            tune.form = Form((Part(4, True, letter="A"), Part(4, True, letter="B")))
        tunes.append(tune)
    return tunes


def build_dataset(tunes: list[Melody]) -> Dataset:
    vocab = Vocab(durations=build_duration_vocab(count_durations(tunes), min_count=1),
                  meters=sorted({str(t.meter) for t in tunes}), modes=sorted({t.mode for t in tunes}),
                  styles=sorted({t.style for t in tunes}),
                  types=sorted({t.tune_type or "other" for t in tunes}))
    encoded = [encode(t, vocab) for t in tunes]
    split = [0 if i % 10 < 8 else (1 if i % 10 == 8 else 2) for i in range(len(tunes))]
    info = [{"title": t.title, "source": "tests", "number": i + 1, "style": t.style,
             "meter": str(t.meter), "mode": t.mode, "key": t.key_name()} for i, t in enumerate(tunes)]
    return Dataset.from_tunes(encoded, vocab, split, tunes=info)


@pytest.fixture(scope="session")
def tiny_tunes() -> list[Melody]:
    return make_tunes()


@pytest.fixture(scope="session")
def tiny_dataset_path(tmp_path_factory, tiny_tunes) -> str:
    """A tiny dataset file (60 synthetic tunes, 3 meters, 3 modes, 2 styles)."""
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    build_dataset(tiny_tunes).save(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_dataset_path) -> str:
    """A tiny dual model (2x32 GRU, a few epochs on tiny_dataset_path): its folder."""
    from composer.train import TrainConfig, train

    out = tmp_path_factory.mktemp("model") / "tiny"
    train(TrainConfig(data=tiny_dataset_path, out=str(out), hidden=32, epochs=6, batch_size=8,
                      lr=1e-2, dropout=0.0, seed=0, device="cpu", precision="fp32"),
          log=lambda _msg: None)
    return str(out)


def band_midi(tune: list[tuple[int, float]], bpm: float, bars: int, chord: tuple[int, ...],
              key: str | None = None) -> bytes:
    """A 3/4 MIDI file: a flute melody (pitch, beats) starting on beat 3 (a one-beat pickup),
    a piano holding `chord` every bar and a drum track, in that track order (melody second)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=bpm)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(3, 4, 0))
    if key:
        pm.key_signature_changes.append(
            pretty_midi.KeySignature(pretty_midi.key_name_to_key_number(key), 0))
    beat = 60 / bpm
    melody = pretty_midi.Instrument(program=73, name="flute")
    t = 2 * beat
    for pitch, beats in tune:
        melody.notes.append(pretty_midi.Note(96, pitch, t, t + beats * beat))
        t += beats * beat
    chords = pretty_midi.Instrument(program=0, name="piano")
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    for bar in range(bars):
        start = bar * 3 * beat
        for p in chord:
            chords.notes.append(pretty_midi.Note(70, p, start, start + 3 * beat))
        for k in range(3):
            hit = start + k * beat
            drums.notes.append(pretty_midi.Note(100, 81 if k == 0 else 42, hit, hit + beat / 2))
    pm.instruments += [chords, melody, drums]
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def merge_rests(notes) -> list[tuple[int | None, int]]:
    """(pitch, ticks) with consecutive rests as one: a rest across a barline is written as two."""
    out: list[tuple[int | None, int]] = []
    for n in notes:
        if out and n.pitch is None and out[-1][0] is None:
            out[-1] = (None, out[-1][1] + n.duration)
        else:
            out.append((n.pitch, n.duration))
    return out


def cli_ok(args: list) -> object:
    """Run the command line in process; it must exit 0. Returns typer's Result."""
    from typer.testing import CliRunner

    from composer.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def cli_fails(args: list, needle: str) -> str:
    """Run the command line in process: exit code 2, one line on stderr starting with
    'error:' and holding `needle`, no traceback. Returns that line."""
    from typer.testing import CliRunner

    from composer.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    err = result.stderr.strip()
    assert "\n" not in err and err.startswith("error:") and "Traceback" not in result.output, err
    assert needle.lower() in err.lower(), err
    return err

