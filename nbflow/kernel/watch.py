"""The widget pointed at a run on the server: it follows the server's live feed.

``%flow watch RUN_ID`` (and ``%flow run --server``) show a ``FlowWidget`` drawn
from the run's registered structure and fed by ``/events`` in a background
thread; a dropped connection resumes from the last cursor. The widget's cancel
button cancels the run it shows; its run button starts a new run like it and
the same widget follows the new one.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from nbflow.core.errors import ClientError
from nbflow.core.record import StateRecord, record_from_wire

if TYPE_CHECKING:
    from collections.abc import Callable

    from nbflow.client import Client


class ServerRunWatch:
    """Follows one server run (then the next one its Run button starts) in one widget."""

    def __init__(
        self, client: Client, run_id: str, *, on_records: Callable[[list[Any]], None] | None = None
    ) -> None:
        from nbflow.kernel.widget import FlowWidget

        self.client = client
        self.widget = FlowWidget(on_action=self._on_action)
        self.run_id = run_id
        self._on_records = on_records  # the task cells' badges follow the run too
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ServerRunWatch:
        """Draw the run's structure and start following its feed."""
        self.widget.set_structure(self.client.flow_run_structure(self.run_id))
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._follow,
            args=(self.run_id, self._stop, self.finished),
            name="nbflow-watch",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop following (the widget keeps what it shows)."""
        self._stop.set()

    def _follow(self, run_id: str, stop: threading.Event, finished: threading.Event) -> None:
        cursor: str | None = None
        while not stop.is_set() and not finished.is_set():
            try:
                for position, batch in self.client.events(
                    flow_run_id=run_id, cursor=cursor, from_start=cursor is None
                ):
                    cursor = position or cursor
                    records = [record_from_wire(e) for e in batch]
                    self.widget.observe(records)
                    if self._on_records is not None:
                        self._on_records(records)
                    if any(
                        isinstance(r, StateRecord) and r.task is None and r.is_finished() for r in records
                    ):
                        finished.set()
                    if finished.is_set() or stop.is_set():
                        break
            except ClientError as exc:
                self.widget.notify_error(f"live feed interrupted ({exc}); reconnecting")
                time.sleep(2)
        self.widget.flush()

    def _on_action(self, action: str, content: Any) -> None:  # noqa: ARG002
        try:
            if action == "cancel":
                self.client.cancel_flow_run(self.run_id)
            elif action == "run":
                run = self.client.flow_run(self.run_id)
                new = self.client.create_flow_run(flow_id=run.flow_id, parameters=run.parameters)
                self.stop()
                self.run_id = new.id
                self.start()
            else:
                self.widget.notify_error(
                    "for a server run, use run or cancel (re-run failed and run-to work in the kernel)"
                )
        except ClientError as exc:
            self.widget.notify_error(str(exc))
