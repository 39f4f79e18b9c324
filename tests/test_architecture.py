"""docs/architecture.md describes the tree as it is: every module is in its table, imports go
only down its layers, torch stays out of the layers below the model, and modules stay small."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "composer"
MAX_LINES = 400


def _layers() -> dict[str, int]:
    """Module name (e.g. 'sample', 'formats') -> its layer's index in the table."""
    layers, index = {}, -1
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or cells[0] in ("layer", "---"):
            continue
        if cells[0]:
            index += 1
        for name in re.findall(r"`([\w/]+?)(?:\.py|/)`", cells[1]):
            layers[name] = index
    return layers


def _modules() -> dict[str, list[Path]]:
    """Module name -> its source files (a package is one module: its folder)."""
    out: dict[str, list[Path]] = {}
    for path in PACKAGE.iterdir():
        if path.suffix == ".py" and path.stem not in ("__init__", "__main__"):
            out[path.stem] = [path]
        elif path.is_dir() and (path / "__init__.py").is_file() and path.name != "models":
            out[path.name] = sorted(path.glob("*.py"))
    return out


def _imports(path: Path, package_depth: int) -> set[str]:
    """The composer modules and the top-level libraries a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.add((node.module or "").split(".")[0])
            elif node.level == package_depth + 1:  # from the composer package itself
                names = [node.module] if node.module else [a.name for a in node.names]
                found |= {"composer." + n.split(".")[0] for n in names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
    return found


def test_every_module_is_described_and_every_described_module_exists():
    layers, modules = _layers(), _modules()
    assert set(modules) - set(layers) == set(), "modules missing from docs/architecture.md"
    assert set(layers) - set(modules) == set(), "docs/architecture.md names modules that do not exist"


def test_imports_go_down_the_layers_and_torch_stays_above_the_data():
    layers, modules = _layers(), _modules()
    model_layer = layers["model"]
    for name, files in modules.items():
        for path in files:
            found = _imports(path, 0 if path.parent == PACKAGE else 1)
            for dep in (d.removeprefix("composer.") for d in found if d.startswith("composer.")):
                if dep in layers and dep != name:
                    assert layers[dep] <= layers[name], f"{path.name} imports {dep}, a layer above it"
            if layers[name] < model_layer:
                assert "torch" not in found, f"{path.name} imports torch below the model layer"


def test_no_module_is_over_the_size_that_fits_in_one_head():
    for files in _modules().values():
        for path in files:
            lines = len(path.read_text().splitlines())
            assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines"
