"""The house rules of docs/architecture.md, checked on the source: which package may import
which, size limits of files and functions, docstrings on everything public.

Each rule fails with the offending file and line, so a change that breaks one says where.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "simulator"
SOURCES = sorted(PACKAGE.rglob("*.py"))

# The one-way doors of docs/architecture.md: a room may import only these rooms (at module
# level or inside a function alike). `cli` sits on top and may import anything.
ALLOWED: dict[str, set[str]] = {
    "units": set(),
    "errors": set(),
    "search": set(),  # the bisection the engine and the studies share
    "results": set(),
    "profiles": {"units", "errors"},
    "loading": {"profiles", "errors"},
    "perf": {"profiles", "units", "errors"},
    "economics": {"profiles", "units", "errors"},
    # the engines fill the result records (plain data) that `simulate` assembles
    "engine": {"perf", "profiles", "results", "units", "errors", "search"},
    # the error bands of the validation suite, looked up by a scenario's regime
    "confidence": {"results", "profiles", "errors"},
    "simulate": {"engine", "economics", "results", "perf", "profiles", "confidence", "errors"},
    "report": {"results", "profiles", "perf", "units", "errors"},
    "studies": {"simulate", "loading", "report", "results", "economics", "perf", "profiles",
                "units", "errors", "search"},
    # sustainable-rate cases use the rate search of studies.capacity
    "validation": {"simulate", "loading", "studies", "results", "profiles", "confidence",
                   "units", "errors"},
    "calibration": {"validation", "confidence", "simulate", "loading", "studies", "results",
                    "profiles", "units", "errors"},
    "simulator": {"loading", "profiles", "errors"},  # the package's own __init__
}
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def _room(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return "simulator" if parts == ("__init__",) else parts[0]


def _imported_rooms(tree: ast.Module) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "simulator" else \
                [f"simulator.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "simulator" and len(parts) > 1:
                out.append((parts[1], node.lineno))
    return out


def _parsed():
    return [(path, ast.parse(path.read_text())) for path in SOURCES]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_one_way_doors(path):
    room = _room(path)
    if room == "cli":
        return
    tree = ast.parse(path.read_text())
    wrong = [f"{path.relative_to(ROOT)}:{line}: {room} imports {target}"
             for target, line in _imported_rooms(tree)
             if target != room and target not in ALLOWED[room]]
    assert not wrong, "\n".join(wrong)


def test_every_room_is_in_the_table():
    assert {_room(p) for p in SOURCES} - {"cli"} == set(ALLOWED)


def test_the_cost_models_never_import_simpy_and_the_engines_never_read_yaml():
    wrong = []
    for path, tree in _parsed():
        room = _room(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                    else [node.module or ""]
                for name in names:
                    top = name.split(".")[0]
                    if (room == "perf" and top == "simpy") or (room == "engine" and top == "yaml"):
                        wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not wrong, "\n".join(wrong)


def test_no_module_is_over_the_line_limit():
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in SOURCES
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES]
    assert not long, "\n".join(long)


def test_no_function_is_over_the_line_limit():
    long = []
    for path, tree in _parsed():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name}, {n} lines")
    assert not long, "\n".join(long)


def _public(node: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef]:
    out = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) \
                and not child.name.startswith("_"):
            out.append(child)
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out += _public(child)  # methods, and functions defined inside functions
    return out


def test_every_public_module_class_and_function_says_what_it_is_for():
    missing = []
    for path, tree in _parsed():
        if not ast.get_docstring(tree):
            missing.append(f"{path.relative_to(ROOT)}: module")
        for node in _public(tree):
            overload = any(isinstance(d, ast.Name) and d.id == "overload"
                           for d in getattr(node, "decorator_list", []))
            if not overload and not ast.get_docstring(node):
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.name}")
    assert not missing, "\n".join(missing)
