"""Register a notebook's flow: code to storage, metadata to the server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbflow.agent.storage import LocalStorage
from nbflow.notebook.export import export_module

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nbflow.client import Client
    from nbflow.client_ops import RegisteredFlow
    from nbflow.notebook.cellflow import NotebookFlow


def register_notebook_flow(
    notebook: NotebookFlow,
    client: Client,
    *,
    labels: Sequence[str] = (),
    storage_dir: str | None = None,
    max_resubmits: int = 0,
    source: str = "a notebook",
) -> RegisteredFlow:
    """The server learns the graph, parameters, schedule and labels, and where the code is
    (with its SHA-256); it never sees cell source or data."""
    flow, _ = notebook.build()  # the same rules as a headless run: no hidden dependencies
    code = export_module(notebook, source=source)
    ref = LocalStorage(storage_dir).put(notebook.name, code)
    return client.register_flow(
        notebook.name,
        flow.structure(),
        ref,
        schedule=notebook.schedule.to_dict() if notebook.schedule is not None else None,
        labels=labels,
        max_resubmits=max_resubmits,
    )
