"""Flow of flows: start a run of another registered flow on the server and wait for it.

``StartFlowRun("etl", parameters={"day": "2024-01-01"})`` is a task (Prefect's
``StartFlowRun``): when it runs it creates a run of the registered flow on the nbflow
server (an agent runs it), waits until that run finishes and fails if the run did
not succeed. Its inputs in the flow are more parameters of the started run, so an
upstream task's result can choose them::

    with Flow("nightly") as flow:
        day = Parameter("day", default="2024-01-01")
        load = StartFlowRun("etl", wait=True)(day=day)
        report = StartFlowRun("report")(upstream_tasks=[load])

Its result is a ``FlowRunOutcome`` (run id, state, message). ``ServerStarter`` is the one
place that creates, polls and cancels the started run; ``%%task --starts FLOW`` cells reach
it through ``nbflow.core.flowstarts`` (``install`` makes it this process's starter). The
server and key are the client's defaults (``NBFLOW_API_URL`` / ``NBFLOW_API_KEY`` / the
saved config) unless given. Interrupting the task (a cancelled parent run) cancels the
started run.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from nbflow.core.errors import RunError
from nbflow.core.flowstarts import FlowRunOutcome, FlowStart, set_starter
from nbflow.core.states import FINISHED_TYPES, SUCCESSFUL_TYPES
from nbflow.core.tasks import Task

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["FlowRunOutcome", "ServerStarter", "StartFlowRun", "install"]

_FINISHED = frozenset(t.value for t in FINISHED_TYPES)
_SUCCESSFUL = frozenset(t.value for t in SUCCESSFUL_TYPES)


class ServerStarter:
    """Starts runs on one server with one key: create, wait (polling), fail unless it succeeded.

    ``key`` may be a function, asked when the first run starts (an agent's flow process
    looks its key up only if a task starts a run).
    """

    def __init__(
        self,
        server: str | None = None,
        key: str | Callable[[], str | None] | None = None,
        *,
        poll_interval: float = 1.0,
    ) -> None:
        self.server = server
        self.key = key
        self.poll_interval = poll_interval

    def __call__(self, request: FlowStart) -> FlowRunOutcome:
        """Create the run; with ``request.wait``, poll it to its end and raise unless it succeeded."""
        from nbflow.client import Client

        key = self.key() if callable(self.key) else self.key
        with Client(self.server, key) as api:
            run = api.create_flow_run(
                flow_name=request.flow_name, parameters=request.parameters, labels=list(request.labels)
            )
            print(f"started flow run {run.id} of {request.flow_name!r}")
            if not request.wait:
                return FlowRunOutcome(run.id, request.flow_name, run.state, run.message)
            try:
                while run.state not in _FINISHED:
                    time.sleep(self.poll_interval)
                    run = api.flow_run(run.id)
            except BaseException:  # the parent run was cancelled or interrupted: so is this one
                with contextlib.suppress(Exception):
                    api.cancel_flow_run(run.id)
                raise
        if run.state not in _SUCCESSFUL:
            raise RunError(f"flow run {run.id} of {request.flow_name!r} ended {run.state}: {run.message}")
        return FlowRunOutcome(run.id, request.flow_name, run.state, run.message)


def install(server: str | None = None, key: str | Callable[[], str | None] | None = None) -> None:
    """Make ``ServerStarter(server, key)`` this process's starter (``%%task --starts`` cells use it)."""
    set_starter(ServerStarter(server, key))


class StartFlowRun(Task):
    """A task that runs another registered flow on the server (and, with ``wait``, waits)."""

    def __init__(
        self,
        flow_name: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        wait: bool = True,
        server: str | None = None,
        key: str | None = None,
        poll_interval: float = 1.0,
        labels: list[str] | None = None,
        name: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name=name or f"run_{flow_name}", **options)
        if not flow_name or not isinstance(flow_name, str):
            raise RunError("StartFlowRun needs the name of a registered flow, e.g. StartFlowRun('etl')")
        self.flow_name = flow_name
        self.parameters = dict(parameters or {})
        self.wait = wait
        self.labels = list(labels or [])
        self.starter = ServerStarter(server, key, poll_interval=poll_interval)

    def run(self, **inputs: Any) -> FlowRunOutcome:
        """Create the run (inputs are more parameters), wait for it if asked; fail unless it succeeded."""
        request = FlowStart(self.flow_name, {**self.parameters, **inputs}, self.wait, tuple(self.labels))
        return self.starter(request)

    def cache_source(self) -> str:
        """The flow started and the fixed parameters."""
        return f"start-flow-run:{self.flow_name}:{sorted(self.parameters.items())!r}"
