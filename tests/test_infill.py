"""Infilling: chosen bars drawn anew, every other note exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composer.infill import parse_bars, tune_bars
from composer.music import MusicError
from composer.sample import ComposeRequest, Composer, SamplingOptions
from tests.conftest import cli_fails, cli_ok


@pytest.fixture(scope="module")
def composer(tiny_model_dir):
    return Composer.load(tiny_model_dir)


def bar_of(melody, tick: int) -> int:
    return (tick - melody.pickup) // melody.meter.bar_ticks + 1 if tick >= melody.pickup else 0


def kept_and_new(before, after, ranges):
    """Notes of `before` outside the ranges, and the bars `after` fills in each range, as
    (bar, onset in the bar, pitch, duration)."""
    def placed(m, inside):
        out = []
        for n, t in zip(m.notes, m.onsets()):
            b = bar_of(m, t)
            if any(a <= b <= z for a, z in ranges) == inside:
                out.append((b, t, n.pitch, n.duration))
        return out
    return placed(before, False), placed(after, False), placed(after, True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(bars=st.integers(4, 10), meter=st.sampled_from(["4/4", "6/8", "3/4"]),
       seed=st.integers(0, 1000), data=st.data())
def test_only_the_chosen_bars_change_and_they_are_filled_exactly(composer, bars, meter, seed,
                                                                   data):
    tune = composer.compose(ComposeRequest(bars=bars, meter=meter,
                                           sampling=SamplingOptions(seed=seed))).melody
    n = tune_bars(tune)
    first = data.draw(st.integers(1, n - 1))
    last = data.draw(st.integers(first, min(n - 1, first + 2)))
    ranges = [(first, last)]
    if last + 2 < n and data.draw(st.booleans()):
        ranges.append((last + 2, last + 2))
    try:
        [out] = composer.infill(tune, ranges, SamplingOptions(seed=seed), candidates=16)
    except MusicError as e:  # a note held over the edge of a chosen bar: said, and nothing done
        assert "held across" in str(e)
        return
    kept_before, kept_after, new = kept_and_new(tune, out.melody, ranges)
    assert kept_after == kept_before  # same pitches, durations and positions
    assert out.melody.total_ticks == tune.total_ticks
    for a, z in ranges:  # each range is whole: its notes fill exactly its bars
        inside = [d for b, _, _, d in new if a <= b <= z]
        assert sum(inside) == (z - a + 1) * tune.meter.bar_ticks or z == n
    assert [a for a, _ in out.new_notes] == sorted(a for a, _ in out.new_notes)
    assert len(out.surprisal) == len(out.melody.notes) and np.isfinite(out.bits_per_note)
    again = composer.infill(tune, ranges, SamplingOptions(seed=seed), candidates=16)[0]
    assert again.melody.notes == out.melody.notes  # the same seed, the same tune


def test_the_surprisal_is_the_whole_tunes_as_one_pass_reads_it(composer):
    tune = composer.compose(ComposeRequest(bars=8, sampling=SamplingOptions(seed=4))).melody
    out = composer.infill(tune, [(3, 4)], SamplingOptions(seed=1), candidates=8)[0]
    enc, meter, mode, style, kind = composer._fragment(out.melody, None, None)
    labels = composer.choices.ids(meter, mode, style, kind)
    total = int(composer._ticks[enc.durations].sum())
    n = len(enc.durations)
    rhythm, pitch, _, _ = composer._read(enc, composer._written_form(enc, total, meter), total,
                                         labels, n + 1)
    assert np.allclose([r for r, _ in out.surprisal], rhythm[:n], atol=1e-4)
    assert np.allclose([p for _, p in out.surprisal], pitch, atol=1e-4)


def test_a_repeated_part_changes_in_both_playings(composer):
    from composer.form import played

    tune = composer.compose(ComposeRequest(form="AABB", meter="4/4", endings=False,
                                           sampling=SamplingOptions(seed=2))).melody
    out = composer.infill(tune, [(2, 2)], SamplingOptions(seed=5), candidates=16)[0].melody
    assert out.form == tune.form and out.form.parts[0].repeat
    heard = played(out)[0]
    bar, part = tune.meter.bar_ticks, tune.form.parts[0].bars

    def heard_bar(k: int) -> list:
        start = tune.pickup + (k - 1) * bar
        return [(t - start, n) for n, t in zip(heard.notes, heard.onsets())
                if start <= t < start + bar]

    assert heard_bar(2) == heard_bar(part + 2)  # the new bar 2, in both playings of A
    assert heard_bar(2) == [(t - tune.pickup - bar, n) for n, t in zip(out.notes, out.onsets())
                            if tune.pickup + bar <= t < tune.pickup + 2 * bar]


@pytest.mark.parametrize("text,bars,message", [
    ("0-2", 8, "bars 1 to 8"), ("7-9", 8, "bars 1 to 8"), ("5-4", 8, "empty"),
    ("2-4,4-5", 8, "overlap"), ("1-8", 8, "every bar"), ("1-4,5-8", 8, "every bar"),
    ("two", 8, "such as 5-6")])
def test_bad_ranges_are_refused_in_words(text, bars, message):
    with pytest.raises(MusicError, match=message):
        parse_bars(text, bars)
    assert parse_bars("7-8, 2", 8) == [(2, 2), (7, 8)]


def test_the_command_writes_the_versions_and_refuses_bad_input(composer, tiny_model_dir,
                                                               tmp_path):
    src = tmp_path / "tune.abc"
    cli_ok(["compose", "--model", tiny_model_dir, "--bars", "8", "--seed", "3", "-o", src])
    before = src.read_bytes()
    out = tmp_path / "new.abc"
    result = cli_ok(["infill", src, "--bars", "3-4", "--model", tiny_model_dir, "--seed", "1",
                     "--count", "2", "--candidates", "8", "-o", out])
    assert "wrote" in result.stderr and src.read_bytes() == before  # the input is untouched
    from composer.formats import read_tunes

    first, second = read_tunes("new.abc", out.read_bytes())
    original = read_tunes("tune.abc", before)[0].melody
    sounding = lambda notes: [n for n in notes if n[2] is not None]  # noqa: E731
    for version in (first.melody, second.melody):
        kept_before, kept_after, _ = kept_and_new(original, version, [(3, 4)])
        # read back, a rest that closes the new bars joins one that opens the next kept bar
        assert sounding(kept_after) == sounding(kept_before)
    cli_fails(["infill", src, "--bars", "9-10", "--model", tiny_model_dir], "bars 1 to 8")
    cli_fails(["infill", src, "--bars", "3-4", "--count", "9", "--model", tiny_model_dir],
              "count")
    junk = tmp_path / "junk.mid"
    junk.write_bytes(b"not a midi file")
    cli_fails(["infill", junk, "--bars", "1", "--model", tiny_model_dir], "junk.mid")


# --- is this a known tune? --------------------------------------------------------------------

@pytest.fixture(scope="module")
def indexed_model(tiny_model_dir, tiny_dataset_path, tmp_path_factory):
    """A copy of the tiny model with the index of its dataset."""
    import shutil

    from composer.dataset import Dataset
    from composer.similar import build_index

    folder = tmp_path_factory.mktemp("indexed") / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    build_index(Dataset.load(tiny_dataset_path), folder)
    return folder


def test_a_corpus_tune_is_found_first_in_any_key(indexed_model, tiny_dataset_path):
    from composer.dataset import Dataset
    from composer.encoding import decode
    from composer.similar import SimilarIndex

    ds = Dataset.load(tiny_dataset_path)
    index = SimilarIndex.load(indexed_model)
    assert len(index) == len(ds)
    for i in range(0, len(ds), max(1, len(ds) // 10)):
        tune = decode(ds.tune(i), ds.vocab)
        for key in (tune.tonic, (tune.tonic + 5) % 12):
            [best, *_] = index.nearest(tune.to_tonic(key), 5)
            assert best.title == ds.tunes[i]["title"] and best.similarity > 0.9
            assert best.bars  # the bars they share are named


def test_similar_lists_known_tunes_and_compose_names_the_closest(indexed_model, tiny_dataset_path,
                                                               tmp_path):
    import json

    from composer.dataset import Dataset
    from composer.encoding import decode
    from composer.formats import save

    composed = tmp_path / "composed.abc"
    result = cli_ok(["compose", "--model", indexed_model, "--bars", "8", "--seed", "2",
                     "-o", composed])
    assert "closest known tune:" in result.stderr
    ds = Dataset.load(tiny_dataset_path)
    src = tmp_path / "t.abc"
    save([decode(ds.tune(3), ds.vocab).to_tonic(5)], src)  # a corpus tune, moved to F
    listing = cli_ok(["similar", src, "--model", indexed_model, "--count", "3"]).stdout
    assert listing.startswith("known tunes like") and 1 <= listing.count("similarity") <= 3
    assert ds.tunes[3]["title"] in listing.splitlines()[1]
    report = json.loads(cli_ok(["similar", src, "--model", indexed_model, "--json"]).stdout)
    sims = [m["similarity"] for m in report["matches"]]
    assert sims == sorted(sims, reverse=True) and all(0 <= s <= 1 for s in sims)


def test_a_model_without_an_index_says_how_to_build_one(tiny_model_dir, tmp_path):
    src = tmp_path / "t.abc"
    cli_ok(["compose", "--model", tiny_model_dir, "--bars", "4", "-o", src])
    cli_fails(["similar", src, "--model", tiny_model_dir], "composer index")


def test_the_shipped_model_has_an_index_of_its_corpus():
    from composer.modelfiles import default_model_dir
    from composer.similar import SimilarIndex

    index = SimilarIndex.load(default_model_dir())
    assert index is not None and len(index) > 10_000
    styles = {m["style"] for m in index.meta}
    assert {"oneills1850", "ryansMammoth", "essenFolksong"} <= styles


# --- the web API ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(indexed_model):
    from fastapi.testclient import TestClient

    from composer.api import create_app

    with TestClient(create_app(indexed_model)) as c:
        yield c


def test_api_infill_keeps_the_other_notes_and_marks_the_new(client, tiny_dataset_path):
    from composer.dataset import Dataset
    from composer.encoding import decode
    from composer.formats import read_tunes, to_abc

    ds = Dataset.load(tiny_dataset_path)  # a tune of the corpus: its closest known tune is itself
    i, tune = next((i, m) for i, m in ((i, decode(ds.tune(i), ds.vocab)) for i in range(len(ds)))
                   if tune_bars(m) >= 8 and m.form.written_bars == tune_bars(m))
    abc = to_abc([tune]).encode()
    r = client.post("/api/infill", files={"file": ("t.abc", abc)},
                    data={"bars": "3-4", "seed": "2", "candidates": "16"})
    assert r.status_code == 200, r.text
    body = r.json()
    [(a, b)] = body["new_notes"]
    back = read_tunes("back.abc", body["abc"].encode())[0].melody
    kept_before, kept_after, new = kept_and_new(tune, back, [(3, 4)])
    assert kept_after == kept_before and sum(d for *_, d in new) == 2 * tune.meter.bar_ticks
    flags = [n["fragment"] for n in body["notes"]]
    assert flags.count(False) == b - a and all(flags[:a]) and all(flags[b:])  # one playing
    assert body["nearest"]["title"] == ds.tunes[i]["title"] and body["nearest"]["similarity"] > 0.5
    again = client.post("/api/infill", files={"file": ("t.abc", abc)},
                        data={"bars": "3-4", "seed": "2", "candidates": "16"})
    assert again.content == r.content
    mid = client.post("/api/infill?format=mid", files={"file": ("t.abc", abc)},
                      data={"bars": "3-4", "seed": "2", "candidates": "16"})
    assert mid.status_code == 200 and mid.content.startswith(b"MThd")


@pytest.mark.parametrize("bars,needle", [("9-10", "bars 1 to 8"), ("5-4", "empty"),
                                         ("2-4,3", "overlap"), ("1-8", "every bar"),
                                         ("x", "such as")])
def test_api_infill_refuses_bad_ranges_naming_the_field(client, composer, bars, needle):
    from composer.formats import to_abc

    tune = composer.compose(ComposeRequest(bars=8, sampling=SamplingOptions(seed=6))).melody
    r = client.post("/api/infill", files={"file": ("t.abc", to_abc([tune]).encode())},
                    data={"bars": bars})
    assert r.status_code == 422 and r.json()["field"] == "bars" and needle in r.json()["error"]


def test_api_infill_of_a_file_that_is_not_music_is_a_400(client):
    r = client.post("/api/infill", files={"file": ("t.mid", b"garbage")}, data={"bars": "1"})
    assert r.status_code == 400 and r.json()["field"] == "file"
    r = client.post("/api/infill", files={"file": ("t.abc", b"X:1\nK:C\nCDEF|\n")})
    assert r.status_code == 422 and r.json()["field"] == "bars"  # bars is required
