"""Starting a run of another registered flow from a task: the seam between a flow and the server.

A task that starts another flow's run (``StartFlowRun`` in plain Python, a ``%%task --starts
FLOW`` cell) describes the run it wants as a ``FlowStart`` and hands it to
``start_flow_run``. The engine has no client, so the process that runs flows installs the
*starter* that talks to the server (``set_starter``): the kernel, ``nbflow run`` and exported
modules install the client's (``nbflow.flowrun.install``: ``NBFLOW_API_URL`` /
``NBFLOW_API_KEY`` / the saved config), an agent's flow process one bound to its server.
A process without one (a Dask worker, a bare ``Flow.run()`` of a built notebook flow)
fails the task with what to do.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbflow.core.errors import RunError

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class FlowStart:
    """The run a task asks for: which flow, its parameters, whether to wait, extra labels."""

    flow_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    wait: bool = True
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlowRunOutcome:
    """How a started flow run ended (or, without waiting, the state it was created in)."""

    flow_run_id: str
    flow_name: str
    state: str
    message: str


_lock = threading.Lock()
_starter: Callable[[FlowStart], FlowRunOutcome] | None = None


def set_starter(starter: Callable[[FlowStart], FlowRunOutcome] | None) -> None:
    """What ``start_flow_run`` calls in this process (``None``: nothing may start runs)."""
    global _starter
    with _lock:
        _starter = starter


def start_flow_run(request: FlowStart) -> FlowRunOutcome:
    """Start the run through this process's starter; a clear error when there is none."""
    starter = _starter
    if starter is None:
        raise RunError(
            f"cannot start a run of flow {request.flow_name!r} here: this process has no nbflow "
            "server to ask (a Dask worker, or a flow run from Python without one); run the flow in "
            "the kernel, with `nbflow run`, on an agent, or call nbflow.flowrun.install() first"
        )
    return starter(request)
