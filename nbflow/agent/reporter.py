"""Report a flow run to the server: engine events -> spool records -> batched API calls.

The flow process's event stream gets a ``ServerReporter`` observer. It numbers
log lines, versions each task run's states, and appends everything to the
run's spool; a ``SpoolSender`` delivers it. Flow-run states carry the version
the agent's claim left, so only the process that claimed the run may end it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from nbflow.agent.spool import FLOW_STATE, LOG, TASK_STATE, Spool
from nbflow.core.errors import APIError
from nbflow.core.events import STATE
from nbflow.core.states import StateType

if TYPE_CHECKING:
    from nbflow.client import Client
    from nbflow.core.events import Event

logger = logging.getLogger("nbflow.agent.reporter")
S = StateType


class ServerReporter:
    """An event-stream observer that writes the run's states and logs to its spool."""

    def __init__(
        self, spool: Spool, flow_run_id: str, flow_version: int, agent_id: str | None = None
    ) -> None:
        self.spool = spool
        self.agent_id = agent_id
        self.flow_run_id = flow_run_id
        self.flow_version = flow_version  # the server's version of the flow run after the claim
        self.task_versions: dict[str, int] = {}
        self.seq = 0
        self.open_tasks: dict[str, tuple[str, int]] = {}  # task_run_id -> (slug, attempt)
        self.final_sent = False
        self.running_confirmed = False

    def confirm_running(self, client: Client, *, patience: float = 60.0) -> str | None:
        """Move the run to Running on the server before any task starts: the compare-and-set
        that makes sure only this process runs it. ``None`` if confirmed, else why not."""
        import time

        from nbflow.core.errors import TransportError

        deadline = time.monotonic() + patience
        delay = 0.2
        while True:
            try:
                (result,) = client.set_flow_run_states(
                    [
                        {
                            "flowRunId": self.flow_run_id,
                            "version": self.flow_version,
                            "state": "Running",
                            "message": "running",
                        }
                    ]
                )
                break
            except TransportError as exc:
                if time.monotonic() > deadline:
                    return f"the server could not be reached to start the run ({exc})"
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        if not result.ok:
            return f"the claim was lost before the run started ({result.error})"
        self.flow_version = result.version
        self.running_confirmed = True
        return None

    def flow_state(self, state: str, message: str = "") -> None:
        self.spool.append([self._flow_record(state, message)])

    def _flow_record(self, state: str, message: str) -> dict[str, Any]:
        record = {
            "type": FLOW_STATE,
            "flowRunId": self.flow_run_id,
            "version": self.flow_version,
            "state": state,
            "message": message,
        }
        self.flow_version += 1
        if state in {t.value for t in (S.SUCCESS, S.FAILED, S.CANCELLED)}:
            self.final_sent = True
        return record

    def observe(self, batch: list[Event]) -> None:
        records: list[dict[str, Any]] = []
        for event in batch:
            if event.kind == STATE and event.state is not None:
                state = event.state
                if event.task is None:
                    # Running was confirmed before the run began (see confirm_running);
                    # Cancelling is the server's to set; the final state goes through the spool.
                    if state.is_finished() or (state.type is S.RUNNING and not self.running_confirmed):
                        records.append(self._flow_record(state.type.value, state.message))
                    continue
                task_run_id = event.task_run_id or ""
                version = self.task_versions.get(task_run_id, 0)
                self.task_versions[task_run_id] = version + 1
                if state.is_finished():
                    self.open_tasks.pop(task_run_id, None)
                else:
                    self.open_tasks[task_run_id] = (event.task or "", state.attempt)
                records.append(
                    {"type": TASK_STATE, "taskRunId": task_run_id, "flowRunId": self.flow_run_id, "taskSlug": event.task,
                     "version": version, "state": state.type.value, "message": state.message,
                     "attempt": state.attempt, "timestamp": state.timestamp}
                )  # fmt: skip
            else:
                self.seq += 1
                records.append(
                    {"type": LOG, "flowRunId": self.flow_run_id, "seq": self.seq, "level": event.level or "INFO",
                     "message": event.message, "timestamp": event.timestamp, "taskRunId": event.task_run_id,
                     "taskSlug": event.task}
                )  # fmt: skip
        self.spool.append(records)

    def cancel_open_tasks(self, message: str, timestamp: float) -> None:
        """When the process must stop mid-task: close what is still running as Cancelled."""
        records = []
        for task_run_id, (slug, attempt) in list(self.open_tasks.items()):
            version = self.task_versions.get(task_run_id, 0)
            self.task_versions[task_run_id] = version + 1
            records.append(
                {"type": TASK_STATE, "taskRunId": task_run_id, "flowRunId": self.flow_run_id, "taskSlug": slug,
                 "version": version, "state": S.CANCELLED.value, "message": message, "attempt": attempt,
                 "timestamp": timestamp}
            )  # fmt: skip
        self.open_tasks.clear()
        self.spool.append(records)


def make_sender(client: Client) -> Any:
    """``send(kind, records)`` for ``Spool.deliver``: one API call per batch."""

    def strip(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "type"} for r in records]

    def send(kind: str, records: list[dict[str, Any]]) -> None:
        try:
            if kind == LOG:
                client.write_run_logs(strip(records))
            elif kind == TASK_STATE:
                for result in client.set_task_run_states(strip(records)):
                    if not result.ok:
                        logger.warning("task run %s: the server refused a state: %s", result.id, result.error)
            elif kind == FLOW_STATE:
                for record in strip(records):
                    _send_flow_state(client, record)
        except APIError as exc:
            # Refused for good (not a network problem): say so, and let the rest of the spool go on.
            logger.error("the server refused %d %s record(s): %s", len(records), kind, exc)

    return send


def _send_flow_state(client: Client, record: dict[str, Any]) -> None:
    (result,) = client.set_flow_run_states([record])
    if result.ok:
        return
    # Someone else moved the run: a user cancelled it, or recovery gave up on us.
    current = StateType(result.state)
    if current is S.CANCELLING and record["state"] in (S.CANCELLED.value, S.FAILED.value, S.SUCCESS.value):
        (again,) = client.set_flow_run_states(
            [
                {
                    **record,
                    "version": result.version,
                    "state": S.CANCELLED.value,
                    "message": "cancelled by a user",
                }
            ]
        )
        if again.ok:
            return
    logger.warning(
        "flow run %s: state %s not recorded (%s)", record["flowRunId"], record["state"], result.error
    )
