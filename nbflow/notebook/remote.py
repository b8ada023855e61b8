"""The notebook talking to an nbflow server: register the flow, create runs there."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nbflow.client import Client
    from nbflow.client_ops import FlowRunInfo, RegisteredFlow
    from nbflow.notebook.cellflow import NotebookFlow


def client(url: str | None = None, key: str | None = None) -> Client:
    from nbflow.client import Client

    return Client(url, key)


def register(
    notebook: NotebookFlow,
    api: Client,
    *,
    labels: Sequence[str] = (),
    storage_dir: str | None = None,
    max_resubmits: int = 0,
) -> RegisteredFlow:
    from nbflow.register import register_notebook_flow

    return register_notebook_flow(
        notebook,
        api,
        labels=labels,
        storage_dir=storage_dir,
        max_resubmits=max_resubmits,
        source="a notebook",
    )


def create_runs(
    notebook: NotebookFlow,
    api: Client,
    parameter_sets: Sequence[dict[str, Any]],
    *,
    labels: Sequence[str] = (),
) -> tuple[RegisteredFlow, list[FlowRunInfo]]:
    """Register the current flow (the same version if nothing changed), then one run per
    parameter set. A retried call returns the runs already made (idempotency keys)."""
    registered = register(notebook, api, labels=labels)
    batch = uuid.uuid4().hex[:12]
    runs = [
        api.create_flow_run(
            flow_id=registered.flow_id, parameters=params, idempotency_key=f"notebook:{batch}:{i}"
        )
        for i, params in enumerate(parameter_sets)
    ]
    return registered, runs
