"""The widget pointed at a run on the server: it follows the server's live feed.

``%flow watch RUN_ID`` (and ``%flow run --server``) show a ``FlowWidget`` drawn
from the run's registered structure and fed by ``/events`` in a background
thread; a dropped connection resumes from the last cursor. The widget's cancel
button cancels the run on the server; run starts a new one like it.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from nbflow.core.errors import ClientError

if TYPE_CHECKING:
    from nbflow.client import Client

FINISHED = {"Success", "Failed", "Cancelled", "TimedOut", "TriggerFailed"}


class ServerRunWatch:
    def __init__(self, client: Client, run_id: str) -> None:
        from nbflow.notebook.widget import FlowWidget

        self.client = client
        self.run_id = run_id
        self.widget = FlowWidget(on_action=self._on_action)
        self.widget.set_structure(client.flow_run_structure(run_id))
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="nbflow-watch", daemon=True)

    def start(self) -> ServerRunWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _follow(self) -> None:
        cursor: str | None = None
        while not self._stop.is_set() and not self.finished.is_set():
            try:
                for position, batch in self.client.events(
                    flow_run_id=self.run_id, cursor=cursor, from_start=cursor is None
                ):
                    cursor = position or cursor
                    self.widget.observe(batch)
                    if any(e.get("task") is None and e.get("state") in FINISHED for e in batch):
                        self.finished.set()
                    if self.finished.is_set() or self._stop.is_set():
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
                self.__init__(self.client, new.id)  # type: ignore[misc]
                self.start()
            else:
                self.widget.notify_error(
                    "for a server run, use run or cancel (re-run failed and run-to work in the kernel)"
                )
        except ClientError as exc:
            self.widget.notify_error(str(exc))
