"""Without torch (the light install), composing, continuing and scoring work, and the commands
that need torch say which extra to install."""

from __future__ import annotations

import subprocess
import sys

# Runs the command line with torch (and matplotlib) made unimportable, as in an install
# without the train extra.
NO_TORCH = ("import sys; sys.modules['torch'] = None; sys.modules['matplotlib'] = None; "
            "from composer.cli import main; sys.argv = ['composer'] + sys.argv[1:]; main()")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH, *args], capture_output=True,
                          text=True, timeout=120)


def test_compose_continue_and_score_run_without_torch(tmp_path):
    tune = tmp_path / "tune.abc"
    r = _run("compose", "--type", "jig", "--seed", "3", "-o", str(tune))
    assert r.returncode == 0, r.stderr
    assert "|:" in tune.read_text()
    r = _run("continue", str(tune), "--bars", "4", "--seed", "1", "-o", str(tmp_path / "more.mid"))
    assert r.returncode == 0, r.stderr
    r = _run("score", str(tune))
    assert r.returncode == 0 and "bits" in r.stdout, r.stderr


def test_train_and_evaluate_without_torch_name_the_extra(tmp_path):
    for args in (["train", "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "m")],
                 ["evaluate", "--data", str(tmp_path / "d.npz")]):
        r = _run(*args)
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip() == (f"error: `composer {args[0]}` needs torch: "
                                    "pip install 'composer[train]'")


# Runs the command line, then prints which heavy libraries it imported.
IMPORTED = ("import sys\nfrom composer.cli import main\nsys.argv = ['composer'] + sys.argv[1:]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('music21', 'torch', 'matplotlib', 'fastapi', 'verovio') "
            "if m in sys.modules))")


def _imported(*args: str) -> list[str]:
    r = subprocess.run([sys.executable, "-c", IMPORTED, *args], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return eval(r.stdout.strip().splitlines()[-1])


def test_writing_midi_abc_json_and_reading_midi_import_no_heavy_library(tmp_path):
    mid = tmp_path / "t.mid"
    for out in (mid, tmp_path / "t.abc", tmp_path / "t.json"):
        assert _imported("compose", "--bars", "4", "--seed", "1", "-o", str(out)) == [], out
    assert _imported("continue", str(mid), "--bars", "2", "-o", str(tmp_path / "u.mid")) == []
    assert _imported("score", str(mid)) == []
    # MusicXML is written by music21, and only then is it imported
    assert _imported("compose", "--bars", "4", "-o", str(tmp_path / "t.musicxml")) == ["music21"]
