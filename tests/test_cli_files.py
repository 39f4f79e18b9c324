"""The command line keeps what is there: outputs checked before the work, read-only files and
folders refused, links written through, and small or odd inputs to ingest, train and evaluate
answered in one line."""

from __future__ import annotations

import json
import os
import stat

import pytest

from composer import corpus
from composer.requests import DEFAULT_TEMPERATURE
from composer.train import TrainConfig, train
from conftest import build_dataset, cli_fails, cli_ok, make_tunes


def test_read_only_output_is_refused_and_kept(tiny_model_dir, tmp_path):
    out = tmp_path / "tune.abc"
    out.write_text("mine")
    out.chmod(0o444)
    cli_fails(["compose", "--model", tiny_model_dir, "--bars", 2, "-o", out], "read-only")
    assert out.read_text() == "mine" and not out.stat().st_mode & stat.S_IWUSR
    # one read-only file among numbered outputs stops the run before any is written
    (tmp_path / "n-2.mid").write_text("mine")
    (tmp_path / "n-2.mid").chmod(0o444)
    cli_fails(["compose", "--model", tiny_model_dir, "--bars", 2, "--count", 3, "-o",
               tmp_path / "n.mid"], "n-2.mid is read-only")
    assert not (tmp_path / "n-1.mid").exists()


def test_a_link_is_written_through_and_stays_a_link(tiny_model_dir, tmp_path):
    target = tmp_path / "real.abc"
    target.write_text("old")
    link = tmp_path / "link.abc"
    link.symlink_to(target)
    cli_ok(["compose", "--model", tiny_model_dir, "--bars", 2, "--seed", 1, "-o", link])
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith("%abc") or "X:" in target.read_text()


def test_folder_as_output_is_refused_before_composing(tmp_path):
    folder = tmp_path / "d.abc"
    folder.mkdir()
    # the model is never loaded: the output is checked first
    err = cli_fails(["compose", "--model", tmp_path / "no-model", "-o", folder], "is a folder")
    assert ".tmp" not in err and "d.abc/tune.abc" in err
    cli_fails(["compose", "--model", tmp_path / "no-model", "-o", tmp_path], "is a folder")
    cli_fails(["continue", tmp_path / "missing.abc", "-o", folder], "is a folder")


def test_ingest_to_a_folder_says_so(tmp_path):
    src = tmp_path / "tunes"
    src.mkdir()
    (src / "a.abc").write_text("X:1\nT:a\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|dcBA GFED|DEFG ABcd|d8|]\n")
    err = cli_fails(["ingest", src, "--out", tmp_path], "is a folder")
    assert ".tmp" not in err


def test_a_small_corpus_gets_valid_and_test_tunes_and_a_warning():
    tunes = make_tunes(9)
    keys = [corpus.split_key(m) for m in tunes]
    split = [0] * len(tunes)
    warnings = corpus.fill_empty_splits(split, keys)
    assert split.count(1) >= 1 and split.count(2) >= 1 and split.count(0) >= 5
    assert any("valid split was empty" in w for w in warnings)
    assert any("only 9 tunes" in w for w in warnings)
    assert corpus.fill_empty_splits(split, keys) == [w for w in warnings if "only" in w]
    one = [0]
    assert "empty" in corpus.fill_empty_splits(one, keys[:1])[0] and one == [0]


def test_train_refuses_a_file_as_out_and_ends_with_the_next_command(tiny_dataset_path, tmp_path):
    afile = tmp_path / "model"
    afile.write_text("x")
    cli_fails(["train", "--data", tiny_dataset_path, "--out", afile], "is a file")
    out = tmp_path / "m"
    result = cli_ok(["train", "--data", tiny_dataset_path, "--out", out, "--hidden", 8,
                     "--epochs", 1, "--batch-size", 8, "--device", "cpu"])
    last = result.stdout.strip().splitlines()
    assert last[-1] == f"next: composer compose --model {out} -o tune.mid"
    assert last[0].startswith("trained 1 epochs") and not result.stdout.startswith("{")
    result = cli_ok(["train", "--data", tiny_dataset_path, "--out", tmp_path / "j", "--hidden", 8,
                     "--epochs", 1, "--batch-size", 8, "--device", "cpu", "--json"])
    assert json.loads(result.stdout)["epochs"] == 1


def test_training_stops_when_the_learning_rate_bottoms_out(tiny_dataset_path, tmp_path):
    # no epoch after the first counts as better, so each one halves the learning rate
    cfg = TrainConfig(data=tiny_dataset_path, out=str(tmp_path / "m"), hidden=8, epochs=20,
                      batch_size=8, device="cpu", min_delta=100.0, patience=50,
                      min_lr_scale=0.2)
    result = train(cfg, log=lambda _m: None)
    assert result["stopped"] == "learning rate bottomed out"
    assert result["epochs"] == 4  # 1, then 0.5, 0.25, 0.125 < 0.2


@pytest.mark.parametrize("as_json", [False, True])
def test_evaluate_on_an_empty_split_says_so(tiny_model_dir, tmp_path, as_json):
    ds = build_dataset(make_tunes(3))
    ds.split[:] = 0
    path = tmp_path / "train-only.npz"
    ds.save(path)
    cli_fails(["evaluate", tiny_model_dir, "--data", path, *(["--json"] if as_json else [])],
              "the test split of")


TWO_TUNES = ('X:1\nT:First\nM:6/8\nL:1/8\nR:jig\nK:G\n"G"GAB ~c2d|!trill!e3 {g}f2e|"D"dBG A3|'
             'G6|]\n\nX:7\nT:Second Tune\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|edcB A4|DEFG ABcd|d8|]\n')


def test_tune_picks_one_of_a_multi_tune_file_and_the_notes_say_which(tmp_path):
    path = tmp_path / "two.abc"
    path.write_text(TWO_TUNES)
    first = cli_ok(["score", path])
    assert "using tune 1 of 2 in two.abc (X:1 First); choose another with --tune" in first.stderr
    assert "leaves out 2 chord symbols, 2 decorations, 1 grace notes" in first.stderr
    for pick in ("7", "second tune"):
        second = cli_ok(["score", path, "--tune", pick, "--json"])
        assert json.loads(second.stdout)["title"] == "Second Tune"
        assert "using tune 2 of 2" in second.stderr
    cli_fails(["score", path, "--tune", "9"],
              "no tune numbered or titled '9' in two.abc; it holds 2: 1 First, 7 Second Tune")


def test_version_short_help_and_bare_command():
    from composer import __version__

    assert cli_ok(["--version"]).stdout.strip() == f"composer {__version__}"
    assert "compose" in cli_ok(["-h"]).stdout
    bare = cli_ok([]).stdout
    assert bare.index("compose ") < bare.index("ingest ") < bare.index("train ")
    assert "compose" in cli_ok(["compose", "-h"]).stdout


def test_info_names_the_model_and_what_it_can_be_asked(tiny_model_dir):
    facts = json.loads(cli_ok(["info", "--model", tiny_model_dir, "--json"]).stdout)
    assert facts["meters"] and facts["modes"] and facts["styles"] and facts["keys"]
    assert "parameters" in facts and "pitch range" in facts
    # each type's sampling temperature (an uncalibrated model: the default for every type)
    assert facts["temperatures"] == [f"{t} {DEFAULT_TEMPERATURE:g}" for t in facts["tune types"]]
    text = cli_ok(["info"]).stdout  # the shipped model
    assert "oneills1850 (O'Neill's Music of Ireland (1850))" in text
    assert "validation: " in text and "bits/note" in text


def test_titles_name_the_type_and_key_and_the_default_style_follows_the_meter(tmp_path):
    out = tmp_path / "t.json"
    result = cli_ok(["compose", "--meter", "6/8", "--key", "E", "--mode", "minor", "--seed", 1,
                     "-o", out])
    tune = json.loads(out.read_text())
    assert tune["title"] == "Jig in E minor"
    assert "(jig, style oneills1850;" in result.stderr
    cli_ok(["compose", "--bars", 2, "--title", "The Kesh", "-o", out])
    assert json.loads(out.read_text())["title"] == "The Kesh"


def test_score_takes_a_style_or_picks_the_best_fit(tmp_path):
    path = tmp_path / "two.abc"
    path.write_text(TWO_TUNES)
    from composer.sample import Composer

    styles = Composer.load().vocab.styles
    best = json.loads(cli_ok(["score", path, "--json"]).stdout)
    assert best["style_from"] == "best fit"
    each = {s: json.loads(cli_ok(["score", path, "--json", "--style",
                                  s]).stdout)["total_bits"] for s in styles}
    assert best["style"] == min(each, key=each.get)
    # all styles are read in one batch, each alone in one row: the same figures, to rounding
    assert abs(best["total_bits"] - min(each.values())) < 1e-3
    cli_fails(["score", path, "--style", "nope"], "valid styles")


def test_many_outputs_are_summarised_in_one_short_line(tiny_model_dir, tmp_path):
    result = cli_ok(["compose", "--model", tiny_model_dir, "--bars", 2, "--count", 12, "-o",
                     tmp_path / "t.mid"])
    line = result.stderr.strip()
    assert "wrote 12 files," in line and "t-01.mid .. " in line and "t-12.mid" in line
    assert len(line) < 250 and "mean" in line
