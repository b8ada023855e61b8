"""Checks on the code itself: one owner per concept, short functions, docstrings.

* A list of state names is written out once, in ``nbflow/core/states.py`` (the
  ``StateType`` enum); everywhere else derives from it, TypeScript included
  (``labextension/src/dag/record.ts`` is generated). The checkers' own cases
  show a second definition being caught.
* No production function is longer than 60 lines.
* Docstring coverage of ``nbflow/`` (interrogate, configured in pyproject) is at least 80%.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nbflow.core.states import StateType

REPO = Path(__file__).resolve().parents[2]
STATE_NAMES = {t.value for t in StateType}
OWNER = REPO / "nbflow" / "core" / "states.py"
GENERATED = REPO / "labextension" / "src" / "dag" / "record.ts"
MAX_FUNCTION_LINES = 60


def python_state_lists(source: str) -> list[int]:
    """Lines where a list, tuple, set or dict literal spells out three or more state names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
            items = node.keys if isinstance(node, ast.Dict) else node.elts
            names = {i.value for i in items if isinstance(i, ast.Constant) and i.value in STATE_NAMES}
            if len(names) >= 3:
                found.append(node.lineno)
    return found


_TS_COLLECTION = re.compile(r"[\[{(][^\[\]{}()]*[\]})]", re.DOTALL)


def typescript_state_lists(source: str) -> list[int]:
    """Lines where a TypeScript array, object or call spells out three or more state names."""
    found = []
    for match in _TS_COLLECTION.finditer(source):
        names = set(re.findall(r"[\"'](\w+)[\"']", match.group())) & STATE_NAMES
        if len(names) >= 3:
            found.append(source.count("\n", 0, match.start()) + 1)
    return found


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ("FINISHED = {'Success', 'Failed', 'Cancelled'}", [1]),
        ("x = 1\nDONE = ('Success', 'Cached', 'Skipped', 'other')", [2]),
        ("COLOURS = {'Success': 'green', 'Failed': 'red', 'Running': 'blue'}", [1]),
        ("PAIR = ['Success', 'Failed']", []),
        ("WORDS = ['success', 'failed', 'cancelled']", []),
    ],
)
def test_the_python_checker_finds_a_spelled_out_state_list(source: str, lines: list[int]) -> None:
    assert python_state_lists(source) == lines


@pytest.mark.parametrize(
    ("source", "lines"),
    [
        ('const DONE = new Set(["Success", "Failed", "Cancelled"]);', [1]),
        ('const x = 1;\nconst C = {\n  Success: "#0f0",\n  "Failed": 1, "Running": 2, "Pending": 3 };', [2]),
        ('const A = ["Success", "Failed"];', []),
    ],
)
def test_the_typescript_checker_finds_a_spelled_out_state_list(source: str, lines: list[int]) -> None:
    assert typescript_state_lists(source) == lines


def test_state_names_are_spelled_out_once() -> None:
    second = []
    for path in (REPO / "nbflow").rglob("*.py"):
        if path != OWNER:
            second += [f"{path.relative_to(REPO)}:{line}" for line in python_state_lists(path.read_text())]
    for path in (REPO / "labextension" / "src").rglob("*.ts"):
        if path != GENERATED:
            second += [
                f"{path.relative_to(REPO)}:{line}" for line in typescript_state_lists(path.read_text())
            ]
    assert second == [], "derive these from nbflow.core.states / record.ts instead"


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of each function longer than the limit, decorators included."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - start + 1
            if length > MAX_FUNCTION_LINES:
                out.append((node.name, length))
    return out


def test_the_length_checker_counts_a_long_function() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    assert long_functions(f"def short():\n    pass\n\ndef long():\n{body}\n") == [("long", 61)]


def test_no_production_function_is_longer_than_60_lines() -> None:
    found = [
        f"{path.relative_to(REPO)}: {name} ({length} lines)"
        for path in (REPO / "nbflow").rglob("*.py")
        if "migrations" not in path.parts
        for name, length in long_functions(path.read_text())
    ]
    assert found == []


def test_docstring_coverage_is_at_least_80_percent() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "interrogate", "nbflow"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-1000:]


def test_vulture_finds_no_dead_code() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vulture", "nbflow", "tests/vulture_whitelist.py", "--min-confidence", "60",
         "--exclude", "nbflow/server/migrations"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.stdout == "", (
        "dead code (or a framework hook to add to tests/vulture_whitelist.py):\n" + done.stdout
    )
