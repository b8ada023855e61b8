"""Read a ``.ipynb`` file into the notebook flow model, in document order (headless runs)."""

from __future__ import annotations

import json
from pathlib import Path

from nbflow.cells.cellflow import NotebookFlow
from nbflow.cells.cells import cell_from_source
from nbflow.cells.handlers import flow_handler_lines
from nbflow.core.errors import NotebookError


def read_notebook(path: str | Path) -> dict:
    """The notebook JSON, or a ``NotebookError`` that says what is wrong with the file."""
    path = Path(path)
    if not path.exists():
        raise NotebookError(f"no such notebook: {path}")
    if path.is_dir():
        raise NotebookError(f"{path} is a directory; give the path of a .ipynb file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"{path} is not a valid notebook: malformed JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError(f"{path} is not a Jupyter notebook: it has no list of 'cells'")
    if data.get("nbformat", 4) < 4:
        raise NotebookError(
            f"{path} uses notebook format {data.get('nbformat')}; open and save it in Jupyter (format 4)"
        )
    return data


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def flow_from_notebook(path: str | Path, *, name: str | None = None) -> NotebookFlow:
    """The notebook's flow: task, setup and params cells in document order."""
    path = Path(path)
    data = read_notebook(path)
    flow = NotebookFlow(name or _flow_name(data, path))
    parsed_cells = []
    for index, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict):
            raise NotebookError(f"{path}: cell {index + 1} is not a JSON object")
        if cell.get("cell_type") != "code":
            continue
        where = f"cell {index + 1} of {path.name}"
        parsed_cells.append(cell_from_source(_source(cell), where=where, cell_id=cell.get("id"), index=index))
    # Explicit names first: a derived name never takes one a later cell asks for.
    flow.reserved = {c.options.name for c in parsed_cells if c.kind == "task" and c.options.name}
    for parsed in parsed_cells:
        if parsed.kind == "code":
            # `%flow on failed notify` in a plain cell: headless runs read it without running it.
            for event, handler in flow_handler_lines(parsed.source, where=parsed.where):
                flow.on(event, handler, where=parsed.where)
            try:
                flow.add(parsed)
            except NotebookError:
                continue  # plain cells are not part of the flow; their syntax is their own business
        else:
            flow.add(parsed)
    return flow


def _flow_name(data: dict, path: Path) -> str:
    meta = data.get("metadata", {}).get("nbflow", {})
    if isinstance(meta, dict) and isinstance(meta.get("name"), str) and meta["name"].strip():
        return meta["name"].strip()
    return path.stem
