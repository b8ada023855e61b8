"""Package boundaries, checked on the real import graph (grimp, the engine of import-linter).

Each component of nbflow may import only the components its rule names; the
components' graph has no cycle; the engine imports no notebook, web or
database library. The checker's own cases add a forbidden import to the real
graph and show that it is caught, naming the modules.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import grimp
import pytest

import nbflow

# Which nbflow components each component may import (itself and nbflow._version always).
# Commands, the CLI and the demo assemble everything and are left out.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "cells": {"core"},
    "storage": {"core"},
    "terminal": {"core", "cells", "flowrun"},
    "client": {"core", "config"},
    "register": {"core", "cells", "storage", "client"},
    "kernel": {"core", "cells", "terminal", "storage", "client", "register", "flowrun"},
    "agent": {"core", "client", "config", "storage", "terminal", "flowrun"},
    "server": {"core"},
    "triggers": {"core"},
    "flowrun": {"core", "client"},
}
# Libraries a component must never import, not even lazily.
FORBIDDEN_LIBRARIES: dict[str, set[str]] = {
    "core": {
        "IPython",
        "ipykernel",
        "anywidget",
        "ipywidgets",
        "httpx",
        "sqlalchemy",
        "starlette",
        "strawberry",
    },
    "cells": {"anywidget", "ipywidgets", "httpx", "sqlalchemy", "starlette", "strawberry"},
    "server": {"IPython", "anywidget", "ipywidgets", "distributed"},
    "agent": {"IPython", "anywidget", "ipywidgets", "sqlalchemy", "starlette", "strawberry"},
}
# client.py, client_ops.py and config.py are one component: talking to the server.
ALIASES = {"client_ops": "client", "client_team": "client"}


def component(module: str) -> str | None:
    """The nbflow component a module belongs to (``None`` outside nbflow or for the package root)."""
    parts = module.split(".")
    if parts[0] != "nbflow" or len(parts) == 1:
        return None
    return ALIASES.get(parts[1], parts[1])


@dataclass(frozen=True)
class Violation:
    importer: str
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.importer} imports {self.imported}: {self.rule}"


def violations(graph: grimp.ImportGraph) -> list[Violation]:
    """Every import that breaks a rule above, and every cycle between components."""
    found: list[Violation] = []
    edges: dict[str, set[str]] = {}
    for importer in sorted(m for m in graph.modules if m.startswith("nbflow.")):
        source = component(importer)
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            target = component(imported)
            library = imported.split(".")[0]
            if target is None and library != "nbflow":
                if library in FORBIDDEN_LIBRARIES.get(source or "", set()):
                    found.append(Violation(importer, imported, f"{source} must not import {library}"))
                continue
            if target is None or target == source or source is None or target == "_version":
                continue
            edges.setdefault(source, set()).add(target)
            if source in ALLOWED and target not in ALLOWED[source]:
                found.append(
                    Violation(importer, imported, f"{source} may import only {sorted(ALLOWED[source])}")
                )
    found += [Violation(a, b, "a cycle between components") for a, b in _cycle_edges(edges)]
    return found


def _cycle_edges(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Edges that lie on a cycle of the component graph."""

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(edges.get(node, ()))
        return False

    return sorted((a, b) for a, targets in edges.items() for b in targets if reaches(b, a))


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("nbflow", include_external_packages=True)


def test_the_real_import_graph_keeps_every_boundary(graph: grimp.ImportGraph) -> None:
    assert [str(v) for v in violations(graph)] == []


@pytest.mark.parametrize(
    ("importer", "imported", "rule"),
    [
        ("nbflow.core.runner", "nbflow.kernel.session", "core may import only []"),
        ("nbflow.cells.cellflow", "nbflow.kernel.widget", "cells may import only ['core']"),
        ("nbflow.server.services.runs", "nbflow.cells.cellflow", "server may import only"),
        ("nbflow.agent.flowprocess", "nbflow.kernel.session", "agent may import only"),
        ("nbflow.core.events", "IPython", "core must not import IPython"),
        ("nbflow.server.app", "anywidget", "server must not import anywidget"),
        ("nbflow.storage.code", "nbflow.register", "a cycle between components"),
    ],
)
def test_a_forbidden_import_is_caught_and_named(
    graph: grimp.ImportGraph, importer: str, imported: str, rule: str
) -> None:
    if imported not in graph.modules:
        graph.add_module(imported, is_squashed=True)
    graph.add_import(importer=importer, imported=imported)
    try:
        found = [str(v) for v in violations(graph)]
    finally:
        graph.remove_import(importer=importer, imported=imported)
    # A cycle is named by the components on it; a rule by the modules that broke it.
    named = [
        v for v in found if rule in v and ("cycle" in rule or v.startswith(f"{importer} imports {imported}"))
    ]
    assert named, found


def test_core_imports_no_notebook_server_or_client_libraries() -> None:
    code = (
        "import sys, nbflow.core.runner, nbflow.core.flows, nbflow.core.schedules, nbflow.core.executors;"
        "import nbflow.core.cache, nbflow.core.context, nbflow.core.events, nbflow.core.runview;"
        "bad = [m for m in ('IPython', 'sqlalchemy', 'httpx', 'starlette', 'strawberry', 'anywidget', 'distributed')"
        " if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_importing_nbflow_stays_light() -> None:
    code = "import sys, nbflow; print(','.join(m for m in ('IPython','sqlalchemy','httpx','distributed') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_is_exported_and_sorted() -> None:
    import types

    assert nbflow.__all__ == sorted(nbflow.__all__)
    for name in nbflow.__all__:
        assert hasattr(nbflow, name), name
    public = {
        n
        for n in dir(nbflow)
        if not n.startswith("_") and not isinstance(getattr(nbflow, n), types.ModuleType)
    }
    hooks = {"load_ipython_extension", "unload_ipython_extension", "annotations", "Any"}
    assert public - hooks <= set(nbflow.__all__)
