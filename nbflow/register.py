"""Register a notebook's flow: code to storage, metadata to the server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbflow.cells.export import export_module
from nbflow.storage.code import storage_for

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nbflow.cells.cellflow import NotebookFlow
    from nbflow.client import Client
    from nbflow.client_ops import RegisteredFlow


def register_notebook_flow(
    notebook: NotebookFlow,
    client: Client,
    *,
    labels: Sequence[str] = (),
    storage_dir: str | None = None,
    max_resubmits: int = 0,
    private: bool = False,
    source: str = "a notebook",
) -> RegisteredFlow:
    """The server learns the graph (task names, edges, options, and the variable names each
    cell reads and writes unless ``private``), parameters with defaults, schedule and labels,
    and where the code is (with its SHA-256); it never sees cell source. ``private`` also
    makes agents keep the flow's log lines and failure details to themselves."""
    flow, _ = notebook.build()  # the same rules as a headless run: no hidden dependencies
    code = export_module(notebook, source=source)
    ref = storage_for(storage_dir).put(notebook.name, code)
    structure = flow.structure()
    return client.register_flow(
        notebook.name,
        without_variable_names(structure) if private else structure,
        ref,
        schedule=notebook.schedule.to_dict() if notebook.schedule is not None else None,
        labels=labels,
        max_resubmits=max_resubmits,
        private=private,
    )


def without_variable_names(structure: dict[str, Any]) -> dict[str, Any]:
    """The structure with the cells' variable names left out (what a private flow registers)."""
    tasks = [
        {k: v for k, v in t.items() if k not in ("defines", "uses", "hidden")} for t in structure["tasks"]
    ]
    edges = [{**e, "key": None} for e in structure["edges"]]
    # Several inputs from one upstream task were several edges; without names they are one.
    unique = list({(e["upstream"], e["downstream"]): e for e in edges}.values())
    return {**structure, "tasks": tasks, "edges": unique}
