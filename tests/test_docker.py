"""The Dockerfile, read without a container engine: it installs as the README says and runs safely."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    lines, joined = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not joined and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            joined += line[:-1] + " "
            continue
        lines.append(joined + line)
        joined = ""
    out = []
    for line in lines:
        word, _, args = line.partition(" ")
        out.append((word.upper(), " ".join(args.split())))
    return out


def args_of(kind: str) -> list[str]:
    return [a for k, a in instructions() if k == kind]


def exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) argument list, or the shell form split like a shell would."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def readme_install_commands() -> list[str]:
    """The `pip install` steps of the README's first code block (install and compose)."""
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README has no code block"
    steps = [" ".join(s.split()) for s in re.split(r"&&|\n", block.group(1))]
    return [s for s in steps if s.startswith("pip install")]


def test_install_steps_are_the_readmes():
    commands = readme_install_commands()
    assert "pip install ." in commands, commands
    assert not any("torch" in c for c in commands), "the light install has no torch"
    runs = args_of("RUN")
    where = []
    for command in commands:
        hits = [i for i, run in enumerate(runs)
                if re.search(re.escape(command) + r"(?=$|\s*(&&|;|\|\|))", run)]
        assert hits, f"no RUN line runs the README's `{command}`"
        where.append(hits[0])
    assert where == sorted(where), "the install steps run in another order than in the README"


def test_base_image_and_no_torch():
    assert args_of("FROM") == ["python:3.11-slim"]
    assert not any("torch" in run for run in args_of("RUN")), "the image serves without torch"


def dockerignored(path: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = Path(path).parts
    for pattern in patterns:
        pattern = pattern.removeprefix("**/")
        if any(fnmatch.fnmatch("/".join(parts[:i + 1]), pattern) or fnmatch.fnmatch(part, pattern)
               for i, part in enumerate(parts)):
            return True
    return False


def test_every_copy_source_exists_and_is_not_ignored():
    copies = args_of("COPY") + args_of("ADD")
    assert copies
    for args in copies:
        words = [w for w in exec_form(args) if not w.startswith("--")]
        for src in words[:-1]:
            assert (ROOT / src).exists(), f"COPY source {src} does not exist"
            assert not dockerignored(src), f"COPY source {src} is excluded by .dockerignore"


def test_the_default_model_and_playground_are_shipped():
    sources = {w for args in args_of("COPY") for w in exec_form(args)[:-1]}
    assert {"models", "web", "composer", "pyproject.toml"} <= sources
    for name in ("model.safetensors", "config.json"):
        assert (ROOT / "models" / "folk" / name).is_file()
        assert not dockerignored(f"models/folk/{name}")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"composer.models" = "models"' in pyproject and "*/*.safetensors" in pyproject


def test_dockerignore_keeps_data_envs_and_tests_out():
    for path in ("data/cache/x.json", "data/folk.npz", ".venv/bin/python", "tests/test_api.py",
                 "runs/a/model.safetensors", ".git/HEAD", "composer/__pycache__/api.pyc"):
        assert dockerignored(path), path
    for path in ("composer/api.py", "models/folk/config.json", "web/index.html", "README.md"):
        assert not dockerignored(path), path


def test_runs_as_a_non_root_user():
    users = args_of("USER")
    assert users, "no USER instruction: the server would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    kinds = [k for k, _ in instructions()]
    assert kinds.index("USER") < kinds.index("CMD")
    assert any(re.search(rf"\buseradd\b.*\b{re.escape(user)}$", r) for r in args_of("RUN"))


def test_healthcheck_asks_the_api():
    checks = args_of("HEALTHCHECK")
    assert len(checks) == 1
    check = checks[0]
    assert "CMD" in check and "/api/health" in check and ":8000" in check
    assert "curl" not in check and "wget" not in check  # the slim image has neither
    command = exec_form(check[check.index("CMD") + 3:].strip())
    assert command[:2] == ["python", "-c"]
    compile(command[2], "healthcheck", "exec")  # the one-liner is valid Python


def test_starts_the_server_on_all_interfaces():
    cmds = args_of("CMD")
    assert len(cmds) == 1
    assert exec_form(cmds[0]) == ["composer", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert args_of("EXPOSE") == ["8000"]
