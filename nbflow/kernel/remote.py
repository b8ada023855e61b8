"""The notebook talking to an nbflow server: register the flow, create runs there."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nbflow.core.errors import TransportError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nbflow.cells.cellflow import NotebookFlow
    from nbflow.client import Client
    from nbflow.client_ops import FlowRunInfo, RegisteredFlow


def client(url: str | None = None, key: str | None = None) -> Client:
    """A client of the server at ``url`` (default: NBFLOW_API_URL or the saved config)."""
    from nbflow.client import Client

    return Client(url, key)


def register(
    notebook: NotebookFlow,
    api: Client,
    *,
    labels: Sequence[str] = (),
    storage_dir: str | None = None,
    max_resubmits: int = 0,
    private: bool = False,
) -> RegisteredFlow:
    """Register the notebook's flow: its code to storage, its metadata to the server."""
    from nbflow.register import register_notebook_flow

    return register_notebook_flow(
        notebook,
        api,
        labels=labels,
        storage_dir=storage_dir,
        max_resubmits=max_resubmits,
        private=private,
        source="a notebook",
    )


def create_runs(
    notebook: NotebookFlow,
    api: Client,
    parameter_sets: Sequence[dict[str, Any]],
    *,
    labels: Sequence[str] = (),
    batch: str | None = None,
    context: dict[str, Any] | None = None,
) -> tuple[RegisteredFlow, list[FlowRunInfo]]:
    """Register the current flow (the same version if nothing changed), then one run per
    parameter set. Each run has an idempotency key made from ``batch`` (fresh for each call
    unless given) and its position, so a request retried after a lost answer, or a call
    repeated with the same ``batch``, returns the run already made instead of a second one."""
    registered = register(notebook, api, labels=labels)
    batch = batch or uuid.uuid4().hex[:12]
    runs = [
        _create_once(api, registered.flow_id, params, f"notebook:{batch}:{i}", context)
        for i, params in enumerate(parameter_sets)
    ]
    return registered, runs


def _create_once(
    api: Client, flow_id: str, parameters: dict[str, Any], key: str, context: dict[str, Any] | None
) -> FlowRunInfo:
    # The key makes creation idempotent, so any transport failure may be retried safely.
    for attempt in range(3):
        try:
            return api.create_flow_run(
                flow_id=flow_id, parameters=parameters, idempotency_key=key, context=context or None
            )
        except TransportError:
            if attempt == 2:
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def pull_outputs(api: Client, run_id: str, names: Sequence[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """A server run's stored outputs as kernel variables (a cell's names, a task's result under
    its slug), read from the result store by their references; and the tasks with nothing
    stored. ``names``: only these variables (or every output of these tasks)."""
    from nbflow.core.errors import NotebookError
    from nbflow.core.results import is_ref, load
    from nbflow.core.states import SUCCESSFUL_TYPES, StateType

    run = api.flow_run(run_id)
    values: dict[str, Any] = {}
    unstored: list[str] = []
    for task_run in run.task_runs:
        # A mapped task that failed stores its succeeded children (for a restart), not outputs.
        if not is_ref(task_run.result_ref) or StateType(task_run.state) not in SUCCESSFUL_TYPES:
            unstored.append(task_run.task_slug)
            continue
        stored = load(task_run.result_ref or "")
        outputs = dict(stored) if isinstance(stored, Mapping) else {task_run.task_slug: stored}
        if names and task_run.task_slug not in names:
            outputs = {k: v for k, v in outputs.items() if k in names}
        values.update(outputs)
    missing = [n for n in names if n not in values and all(t.task_slug != n for t in run.task_runs)]
    if missing:
        known = sorted({t.task_slug for t in run.task_runs} | set(values))
        raise NotebookError(
            f"run {run_id} stored no output named {missing[0]!r}; its tasks and outputs: {', '.join(known) or '(none)'}"
        )
    return values, unstored
