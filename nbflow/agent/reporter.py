"""Report a flow run to the server: run records -> spool -> batched API calls.

The flow process's event stream gets a ``ServerReporter`` observer: it
appends each record's wire form to the run's spool (flow-run states with the
version the claim left, so only the process that claimed the run may end it);
a ``SpoolSender`` delivers it. Records carry the execution number (the claim's
version) the runner stamps on them, and the server refuses those of an
execution that no longer owns the run.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from nbflow.agent.spool import FLOW_STATE, LOG, TASK_STATE, Spool
from nbflow.core import secrets
from nbflow.core.errors import APIError, TransportError, asks_again
from nbflow.core.record import StateRecord, cut, new_id, state_change
from nbflow.core.states import State, StateType

if TYPE_CHECKING:
    from collections.abc import Callable

    from nbflow.client import Client
    from nbflow.core.events import Event

logger = logging.getLogger("nbflow.agent.reporter")
S = StateType


def fit(text: str) -> str:
    """``text`` with secret values masked, within the record's message limit (with a marker
    saying how much went): every message leaves for the server through here."""
    return cut(secrets.mask(text), "the agent")


class ServerReporter:
    """An event-stream observer that writes the run's records to its spool."""

    def __init__(self, spool: Spool, flow_run_id: str, flow_version: int, *, private: bool = False) -> None:
        self.spool = spool
        self.private = private
        self.flow_run_id = flow_run_id
        self.flow_version = flow_version  # the server's version of the flow run after the claim
        self.execution = flow_version
        self.open_tasks: dict[str, StateRecord] = {}  # task_run_id -> its latest record
        self.final_sent = False
        self.running_confirmed = False

    def confirm_running(self, client: Client, *, patience: float = 60.0) -> str | None:
        """Move the run to Running on the server before any task starts: the compare-and-set
        that makes sure only this process runs it. ``None`` if confirmed, else why not."""
        running = state_change(
            self.flow_run_id, None, None, S.SUBMITTED, State(S.RUNNING, "running"), execution=self.execution
        )
        deadline = time.monotonic() + patience
        delay = 0.2
        while True:
            try:
                (result,) = client.set_flow_run_states([{**running.to_wire(), "version": self.flow_version}])
                break
            except (TransportError, APIError) as exc:
                # The same change again is safe: one the server stored already is acknowledged.
                if isinstance(exc, APIError) and not asks_again(exc):
                    raise
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
        """Spool a flow-run state the process decides itself (could not start, cancelled)."""
        record = StateRecord(
            flow_run_id=self.flow_run_id,
            state=state,
            transition_id=new_id(),
            timestamp=time.time(),
            message=fit(message),
            execution=self.execution,
        )
        self.spool.append([self._flow_entry(record)])

    def _flow_entry(self, record: StateRecord) -> dict[str, Any]:
        entry = {**self._wire(record), "version": self.flow_version}
        self.flow_version += 1
        if record.is_finished():
            self.final_sent = True
        return entry

    def observe(self, batch: list[Event]) -> None:
        """Spool a batch of the run's records (an ``EventStream`` observer)."""
        entries: list[dict[str, Any]] = []
        for record in batch:
            if not isinstance(record, StateRecord):
                if not self.private:  # a private run's lines stay in the agent's run log
                    entries.append(self._wire(record))
            elif record.task is None:
                # Running was confirmed before the run began (see confirm_running);
                # Cancelling is the server's to set; the final state goes through the spool.
                if record.is_finished() or (record.type is S.RUNNING and not self.running_confirmed):
                    entries.append(self._flow_entry(record))
            else:
                if record.is_finished():
                    self.open_tasks.pop(record.task_run_id or "", None)
                else:
                    self.open_tasks[record.task_run_id or ""] = record
                entries.append(self._wire(record))
        self.spool.append(entries)

    def _wire(self, record: Event) -> dict[str, Any]:
        message = fit(record.message)
        if self.private and isinstance(record, StateRecord) and record.type in _DETAILED:
            message = _without_details(record)
        return {**record.to_wire(), "message": message}

    def cancel_open_tasks(self, message: str) -> None:
        """When the process must stop mid-task: close what is still running as Cancelled."""
        entries = []
        for last in self.open_tasks.values():
            cancelled = State(S.CANCELLED, message, attempt=last.attempt)
            change = state_change(
                self.flow_run_id, last.task_run_id, last.task, last.type, cancelled, execution=self.execution
            )
            entries.append(change.to_wire())
        self.open_tasks.clear()
        self.spool.append(entries)


# States whose message carries the task's own words (an exception's text): private runs keep them.
_DETAILED = frozenset({S.FAILED, S.RETRYING})


def _without_details(record: StateRecord) -> str:
    """What a private run tells the server about a failure: the exception's type, not its text."""
    error = record.value.result if record.value is not None else None
    kind = type(error).__name__ if isinstance(error, BaseException) else "error"
    what = f"attempt {record.attempt} failed" if record.type is S.RETRYING else "failed"
    return f"{what} ({kind}); details are kept in the agent's run log"


SUPERSEDED = "superseded execution"


def make_sender(client: Client, *, on_superseded: Callable[[], None] | None = None) -> Any:
    """``send(channel, entries)`` for ``Spool.deliver``: one API call per batch.

    A batch the server refuses as a whole (too large, or one malformed record) is split
    in halves and sent again, so one bad record is the only one lost, and said so.
    ``on_superseded`` is called when the server says a newer execution owns the run."""

    def refused(error: str | None) -> None:
        if on_superseded is not None and error and SUPERSEDED in error:
            on_superseded()

    def send(kind: str, entries: list[dict[str, Any]]) -> None:
        try:
            if kind == LOG:
                client.write_run_logs(entries)
            elif kind == TASK_STATE:
                for result in client.set_task_run_states(entries, refused_only=True):
                    if not result.ok:
                        refused(result.error)
                        logger.warning("task run %s: the server refused a state: %s", result.id, result.error)
            elif kind == FLOW_STATE:
                for entry in entries:
                    _send_flow_state(client, entry)
        except APIError as exc:
            if asks_again(exc):  # nothing wrong with the batch: the spool keeps it for later
                raise TransportError(f"the server asks for the batch again: {exc}") from exc
            refused(str(exc))
            if len(entries) > 1 and SUPERSEDED not in str(exc):
                half = len(entries) // 2
                send(kind, entries[:half])
                send(kind, entries[half:])
                return
            # Refused for good (not a network problem): say so, and let the rest of the spool go on.
            logger.error("the server refused %d %s record(s): %s", len(entries), kind, exc)

    return send


def _send_flow_state(client: Client, entry: dict[str, Any]) -> None:
    (result,) = client.set_flow_run_states([entry])
    if result.ok:
        return
    # Someone else moved the run: a user cancelled it, or recovery gave up on us.
    current = StateType(result.state)
    if current is S.CANCELLING and entry["state"] in (S.CANCELLED.value, S.FAILED.value, S.SUCCESS.value):
        cancelled = {
            **entry,
            "version": result.version,
            "state": S.CANCELLED.value,
            "previous": S.CANCELLING.value,
            "message": "cancelled by a user",
            "transition_id": new_id(),
        }
        (again,) = client.set_flow_run_states([cancelled])
        if again.ok:
            return
    logger.warning(
        "flow run %s: state %s not recorded (%s)", entry["flow_run_id"], entry["state"], result.error
    )
