"""The benchmark runner: every script is wired in, reports JSON, and lands in one table."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_every_benchmark_script_is_run_and_reports_json():
    tree = ast.parse((BENCHMARKS / "run.py").read_text())
    named = {node.value for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and node.value.endswith(".py")}
    scripts = {p.name for p in BENCHMARKS.glob("*.py")} - {"run.py"}
    assert scripts <= named, f"not run by benchmarks/run.py: {scripts - named}"
    for name in sorted(scripts):  # each one starts, and its options include --json
        help_ = subprocess.run([sys.executable, str(BENCHMARKS / name), "--help"],
                               capture_output=True, text=True, timeout=120)
        assert help_.returncode == 0, f"{name}: {help_.stderr[-1000:]}"
        assert "--json" in help_.stdout, f"{name} has no --json output"


def test_composer_bench_prints_one_table_with_the_machine():
    cmd = [sys.executable, "-m", "composer", "bench", "--only", "formats"]
    table = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert table.returncode == 0, table.stderr[-2000:]
    lines = table.stdout.splitlines()
    assert lines[0].startswith("machine: ") and " cores " in lines[0] and "torch " in lines[0]
    assert "| measure | result | target |" in lines
    assert any(line.startswith("| writing a 64-note tune") for line in lines)
    report = json.loads(subprocess.run([*cmd, "--json"], capture_output=True, text=True,
                                       timeout=240).stdout)
    assert report["machine"]["cores"] >= 1 and report["reports"]["formats"]["rows"]


def test_the_benchmarks_on_synthetic_data_run_at_tiny_sizes():
    """The scripts that build their own data run to the end (not only --help), so a change to
    the dataset or the model that they miss fails here."""
    for name, args in (("train_speed.py", ["--arch", "dual", "--steps", "2", "--hidden", "32",
                                            "--batch-size", "4", "--device", "cpu"]),
                       ("markov_speed.py", ["--notes", "20000"])):
        r = subprocess.run([sys.executable, str(BENCHMARKS / name), *args, "--json"],
                           capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, f"{name}: {r.stderr[-1500:]}"
        assert json.loads(r.stdout.strip().splitlines()[-1]), name
