"""Turn an existing notebook into an nbflow notebook, with no conventions asked of it.

``convert(nb)`` reads every code cell and decides, in document order:

* imports and environment magics (``%matplotlib``, ``%config``, ``%env``,
  ``%load_ext``, ``%autoreload``, ...) at the top level move into a
  ``%%setup`` cell in place (a cell mixing them with other code is split);
* package installs (``!pip``, ``%pip``, ``%conda``) stay plain: they are not
  a step of the flow;
* everything else becomes ``%%task NAME`` with a readable name unique in the
  notebook (``cells/naming.py``), ``%%time``/``%%timeit``/``%%bash`` bodies
  included;
* what cannot be a task stays a plain cell, and the report says why (a
  syntax error, a cell magic that only displays or writes a file, ``%run``).

Cells already in nbflow form are kept. The report lists each task's inputs
(the inferred edges), hidden dependencies and in-place mutations the analysis
sees, so the result can be checked before it is run.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import nbformat

from nbflow.cells.analysis import transform_ipython
from nbflow.cells.cellflow import PARAM, SETUP, NotebookFlow
from nbflow.cells.cells import Cell, TaskOptions, cell_from_source
from nbflow.cells.naming import derive_task_name, unique_name
from nbflow.core.errors import NbflowError

if TYPE_CHECKING:
    from pathlib import Path

    from nbformat import NotebookNode

#: Line magics that set up the environment: they belong in %%setup.
ENV_MAGICS = frozenset(
    {"matplotlib", "config", "env", "load_ext", "reload_ext", "autoreload", "aimport", "precision",
     "pylab", "set_env", "cd", "xmode", "colors", "pdef", "autocall", "automagic"}
)  # fmt: skip
INSTALL_MAGICS = frozenset({"pip", "conda", "mamba", "micromamba"})
_NBFLOW = re.compile(r"^\s*(%%(task|shell_task|setup|params)\b|%flow\b|%load_ext\s+nbflow\b)")
_CELL_MAGIC = re.compile(r"^\s*%%(\w+)(.*)$")
_PLAIN_CELL_MAGICS = {
    "writefile": "writes a file: run it by hand, or make it a %%task whose code writes the file",
    "capture": "captures output into an IPython object, which a task cannot pass on",
    "html": "only displays HTML",
    "javascript": "only runs JavaScript in the browser",
    "js": "only runs JavaScript in the browser",
    "markdown": "only displays Markdown",
    "latex": "only displays LaTeX",
    "svg": "only displays an image",
    "script": "runs another interpreter: make it a %%task --shell if it is a step of the flow",
}
_SHELL_CELL_MAGICS = frozenset({"bash", "sh"})


@dataclass
class Piece:
    """One cell of the converted notebook."""

    kind: str  # "load_ext", "setup", "task", "plain", "kept"
    source: str
    origin: int | None = None  # index of the original cell
    name: str | None = None
    reason: str = ""


@dataclass
class Conversion:
    """The converted notebook, what became of each cell, and what the analysis found."""

    notebook: Any
    pieces: list[Piece] = field(default_factory=list)
    flow: NotebookFlow | None = None

    def report(self) -> str:
        """The plain-text report: tasks with their inputs, plain cells with the reason, warnings."""
        return "\n".join(_report_lines(self))


def _magic_name(stmt: ast.stmt) -> tuple[str, str] | None:
    """(method, magic) of a statement that is ``get_ipython().<method>('<magic>', ...)``."""
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)):
        return None
    func = stmt.value.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)):
        return None
    if not (isinstance(func.value.func, ast.Name) and func.value.func.id == "get_ipython"):
        return None
    args = stmt.value.args
    first = args[0].value if args and isinstance(args[0], ast.Constant) else ""
    return func.attr, str(first)


def _role(stmt: ast.stmt) -> str:
    """ "setup", "install" or "task" for one top-level statement."""
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return "setup"
    magic = _magic_name(stmt)
    if magic is None:
        return "task"
    method, name = magic
    if method == "run_line_magic" and name in ENV_MAGICS:
        return "setup"
    if method == "run_line_magic" and name in INSTALL_MAGICS:
        return "install"
    if method == "system" and re.match(r"\s*(python\s+-m\s+)?(pip|conda|mamba)\s+install\b", name):
        return "install"
    return "task"


def _split(source: str) -> list[tuple[str, str]] | None:
    """The cell as (role, text) runs of consecutive statements; None if it cannot be split
    safely (IPython syntax that does not map line for line)."""
    python = transform_ipython(source)
    lines = source.splitlines()
    if len(python.splitlines()) != len(lines):
        return None
    body = ast.parse(python).body
    if not body:
        return []
    runs: list[tuple[str, list[str]]] = []
    cursor = 0
    for index, stmt in enumerate(body):
        # Comments and blank lines before a statement go with it; those after the last, too.
        stop = (stmt.end_lineno or stmt.lineno) if index < len(body) - 1 else len(lines)
        text = lines[cursor:stop]
        cursor = stop
        role = _role(stmt)
        if runs and runs[-1][0] == role:
            runs[-1][1].extend(text)
        else:
            runs.append((role, text))
    return [(role, "\n".join(text).strip("\n")) for role, text in runs if "\n".join(text).strip()]


def _plain_reason(source: str) -> str | None:
    """Why a cell stays plain, or None if it can be converted."""
    if not source.strip():
        return "empty"
    match = _CELL_MAGIC.match(source.partition("\n")[0])
    if match and match.group(1) in _PLAIN_CELL_MAGICS:
        return f"%%{match.group(1)} {_PLAIN_CELL_MAGICS[match.group(1)]}"
    if match and match.group(1) not in ("time", "timeit", *_SHELL_CELL_MAGICS):
        return f"%%{match.group(1)} is a cell magic nbflow cannot run as a task"
    if re.search(r"^\s*%run\b", source, re.MULTILINE):
        return "%run runs another file into the kernel: its names are invisible to the analysis"
    return None


class _Namer:
    """Readable task names, unique in document order (explicit ones in the notebook are taken)."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = set(taken)

    def name(self, body: str, index: int, *, shell: bool = False) -> str:
        """A readable name for the task made of ``body``, unique so far."""
        cell = Cell("task", body, TaskOptions(shell=shell), where=f"cell {index + 1}", index=index)
        name = unique_name(derive_task_name(cell), self.taken)
        self.taken.add(name)
        return name


def _convert_cell(source: str, index: int, namer: _Namer) -> list[Piece]:
    reason = _plain_reason(source)
    if reason is not None:
        return [Piece("plain", source, index, reason=reason)]
    magic = _CELL_MAGIC.match(source.partition("\n")[0])
    if magic and magic.group(1) in _SHELL_CELL_MAGICS:
        body = source.partition("\n")[2]
        name = namer.name(body, index, shell=True)
        return [Piece("task", f"%%task {name} --shell\n{body}", index, name=name)]
    try:
        # Parsed as the plain cell it is now, so a syntax error's line is the user's line.
        Cell("code", source, where=f"cell {index + 1}").analysis  # noqa: B018
        runs = _split(source) if not magic else [("task", source)]
    except (NbflowError, SyntaxError) as exc:
        return [Piece("plain", source, index, reason=f"it does not parse: {str(exc).splitlines()[0]}")]
    if runs is None:
        runs = [("task", source)]
    pieces = []
    for role, text in runs:
        if role == "setup":
            pieces.append(Piece("setup", f"%%setup\n{text}", index))
        elif role == "install":
            pieces.append(Piece("plain", text, index, reason="installs packages: run it once, by hand"))
        else:
            name = namer.name(text, index)
            pieces.append(Piece("task", f"%%task {name}\n{text}", index, name=name))
    return pieces


def _cell_source(cell: Any) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def convert(nb: NotebookNode, *, name: str = "notebook") -> Conversion:
    """The nbflow version of ``nb`` (a ``nbformat`` notebook, version 4); ``nb`` is not changed."""
    explicit = set()
    for cell in nb.cells:
        match = re.match(r"^\s*%%(?:task|shell_task)\s+([A-Za-z_]\w*)", _cell_source(cell))
        if cell.get("cell_type") == "code" and match:
            explicit.add(match.group(1))
    namer = _Namer(explicit)
    pieces: list[Piece] = []
    has_load = any(
        re.search(r"%load_ext\s+nbflow\b", _cell_source(c)) for c in nb.cells if c.get("cell_type") == "code"
    )
    if not has_load:
        pieces.append(Piece("load_ext", "%load_ext nbflow"))
    for index, cell in enumerate(nb.cells):
        source = _cell_source(cell)
        if cell.get("cell_type") != "code":
            pieces.append(Piece("kept", source, index))
        elif _NBFLOW.match(source):
            pieces.append(Piece("kept", source, index))
        else:
            pieces.extend(_convert_cell(source, index, namer))
    _declare_mutations(pieces, name)
    out = _build_notebook(nb, pieces)
    conversion = Conversion(out, pieces)
    conversion.flow = _flow_of(out, name)
    return conversion


def _declare_mutations(pieces: list[Piece], name: str) -> None:
    """``--mutates`` on tasks the analysis sees changing an input in place (``df.drop(...,
    inplace=True)``, ``items.append(x)``): the converted flow is then safe on every executor."""
    flow = NotebookFlow(name)
    for index, piece in enumerate(pieces):
        if piece.kind in ("setup", "task"):
            flow.add(cell_from_source(piece.source, where=f"cell {index + 1}", index=index))
    resolution = flow.resolve()
    for piece in pieces:
        changed = [
            v for v, how in resolution.changes.get(piece.name or "", {}).items() if how == "method call"
        ]
        if piece.kind == "task" and changed:
            first, _, body = piece.source.partition("\n")
            piece.source = f"{first} --mutates {','.join(changed)}\n{body}"


def _build_notebook(nb: NotebookNode, pieces: list[Piece]) -> NotebookNode:
    out = nbformat.v4.new_notebook(metadata=dict(nb.get("metadata", {})))
    used_ids: set[str] = set()
    for piece in pieces:
        original = nb.cells[piece.origin] if piece.origin is not None else None
        if piece.kind == "kept" and original is not None:
            cell = nbformat.from_dict(dict(original))
        else:
            cell = nbformat.v4.new_code_cell(piece.source)
            if original is not None:
                cell.metadata = dict(original.get("metadata", {}))
        # The first piece of a cell keeps its id (cell ids are what a kernel knows it by).
        original_id = original.get("id") if original is not None else None
        if original_id and original_id not in used_ids:
            cell["id"] = original_id
        used_ids.add(cell.get("id", ""))
        out.cells.append(cell)
    return out


def _flow_of(nb: NotebookNode, name: str) -> NotebookFlow | None:
    flow = NotebookFlow(name)
    try:
        for index, cell in enumerate(nb.cells):
            if cell.get("cell_type") != "code":
                continue
            parsed = cell_from_source(_cell_source(cell), where=f"cell {index + 1}", index=index)
            if parsed.kind != "code":
                flow.add(parsed)
            else:
                try:
                    flow.add(parsed)
                except NbflowError:
                    continue
    except NbflowError:
        return None
    return flow


def _report_lines(conversion: Conversion) -> list[str]:
    pieces = conversion.pieces
    tasks = [p for p in pieces if p.kind == "task"]
    setups = [p for p in pieces if p.kind == "setup"]
    plain = [p for p in pieces if p.kind == "plain"]
    lines = [f"{len(tasks)} tasks, {len(setups)} %%setup cells, {len(plain)} cells left plain"]
    flow = conversion.flow
    resolution = flow.resolve() if flow is not None else None
    if resolution is not None and flow is not None:
        lines.append("")
        lines.append("tasks and their inputs (the inferred edges):")
        for name in flow.task_names:
            inputs = resolution.inputs.get(name, {})
            shown = [
                f"{n} <- {'setup' if s == SETUP else 'params' if s == PARAM else s}"
                for n, s in inputs.items()
                if s != SETUP
            ]
            lines.append(f"  {name}: {', '.join(shown) or '-'}")
        for name, hidden in resolution.hidden.items():
            for used in hidden:
                origin = flow.outside.get(used)
                lines.append(
                    f"hidden dependency: task {name!r} reads {used!r}, "
                    + (
                        f"defined only in {origin} (a plain cell)"
                        if origin
                        else "which no earlier cell defines"
                    )
                )
        for name, changes in resolution.changes.items():
            for var, how in changes.items():
                if how in ("declared", "method call"):
                    lines.append(
                        f"mutation: task {name!r} changes its input {var!r} in place: declared with "
                        f"--mutates {var}, so later readers of {var!r} run after it"
                    )
    for piece in plain:
        where = f"cell {piece.origin + 1}" if piece.origin is not None else "a cell"
        lines.append(f"left plain: {where}: {piece.reason}")
    return lines


def read(path: str | Path) -> NotebookNode:
    """A notebook file as nbformat version 4 (``NotebookError`` if it is not one)."""
    from nbflow.cells.ipynb import read_notebook

    return nbformat.from_dict(read_notebook(path))  # clear errors for a missing or malformed file


def instructions(conversion: Conversion) -> list[str]:
    """What to change in the open notebook, cell by cell, to get the converted one by hand."""
    steps: list[str] = []
    by_origin: dict[int, list[Piece]] = {}
    for piece in conversion.pieces:
        if piece.kind == "load_ext":
            steps.append("add a first code cell: %load_ext nbflow")
        elif piece.origin is not None and piece.kind != "kept":
            by_origin.setdefault(piece.origin, []).append(piece)
    for origin, pieces in by_origin.items():
        where = f"cell {origin + 1}"
        if len(pieces) == 1 and pieces[0].kind == "plain":
            steps.append(f"{where}: leave it as it is ({pieces[0].reason})")
        elif len(pieces) == 1:
            first = pieces[0].source.partition("\n")[0]
            steps.append(f"{where}: add `{first}` as its first line")
        else:
            parts = [p.source.partition("\n")[0] if p.kind != "plain" else "a plain cell" for p in pieces]
            steps.append(
                f"{where}: split it into {len(pieces)} cells: " + ", then ".join(f"`{p}`" for p in parts)
            )
    return steps
