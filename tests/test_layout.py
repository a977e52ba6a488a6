"""The package's rooms and the one direction imports run in (docs/development.md, "Layout").

data → nets → training / inference → evaluation → shipping → the Python API → the commands: a module imports
only from its own room or a lower one, training and inference never import each other, and no chain of
imports (lazy ones included) comes back to where it started.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "srcnn"

# The base modules every room may use: errors, atomic outputs, the params schema, stage plumbing, thread counts,
# TensorFlow's import.
BASE = ("errors", "outputs", "params", "stage", "threads", "quiet_tensorflow")
RANKS = {
    **{name: 0 for name in BASE},
    "data": 1,
    "nets": 2,
    "training": 3,
    "inference": 3,
    "evaluation": 4,
    "shipping": 5,
    "__init__": 6,  # `srcnn.load`
    "api": 6,
    "model_choice": 6,  # which model `srcnn.load` and `srcnn upscale` use
    "cli": 7,
    "__main__": 7,
    "paper": 7,  # `python -m srcnn.paper`, a shim over srcnn.shipping.paper
    "pretrained": 7,  # `python -m srcnn.pretrained`, a shim over srcnn.shipping.pretrained
}
APART = {frozenset({"training", "inference"})}  # same rank, neither imports the other


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a room's __init__ as the room)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 2:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The package's modules `path` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("srcnn"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("srcnn"))
    return {m for m in found if m in known and m != "srcnn"}


def room(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


MODULES = modules()
GRAPH = {name: imports(path, set(MODULES)) for name, path in MODULES.items()}


def test_every_module_has_a_room():
    assert sorted({room(m) for m in MODULES} - set(RANKS)) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module):
    """A lower room never imports a higher one: the API does not import the command, nets not training, …"""
    mine = room(module)
    wrong = [
        target
        for target in sorted(GRAPH[module])
        if RANKS[room(target)] > RANKS[mine] or frozenset({mine, room(target)}) in APART
    ]
    assert wrong == [], f"{module} ({mine}) imports {wrong}"


def test_no_import_circle():
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " → ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_room_init_is_only_a_docstring(folder):
    """A room's __init__ runs whenever one of its modules is imported; it holds no code, so the stages' code
    dependencies in dvc.yaml (tests/test_params.py) can leave it out."""
    body = ast.parse((PACKAGE / folder / "__init__.py").read_text()).body
    assert len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The check itself: a data module importing the engine is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from srcnn.inference.engine import Upscaler\n")
    targets = imports(bad, set(MODULES))
    assert targets and any(RANKS[room(t)] > RANKS["data"] for t in targets)


def test_pip_install_ships_every_room():
    """`pip install .` (not editable) installs only the packages pyproject.toml lists: a room left out is a
    ModuleNotFoundError for every user of the wheel, never for the editable checkout the tests run in."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    rooms = {"srcnn"} | {f"srcnn.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    assert rooms - listed == set()


def test_srcnn_load_documents_itself_and_import_srcnn_stays_light():
    """`help(srcnn.load)` shows the API's signature and docstring (it showed a stub's "imported on first use"),
    and `import srcnn` alone imports neither NumPy nor the API."""
    import inspect
    import subprocess
    import sys

    import srcnn
    from srcnn.api import load

    assert srcnn.load is load and list(inspect.signature(srcnn.load).parameters) == ["model", "scale", "tile"]
    assert "shipped name" in srcnn.load.__doc__ and "load" in dir(srcnn)
    code = "import sys, srcnn; print(sorted(m for m in ('numpy', 'srcnn.api') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"
