"""The comm between the kernel and nbflow's JupyterLab extension (``nbflow.cells``).

The kernel opens it when nbflow loads; a frontend without the extension (Notebook 7
without it, VS Code, nbclient) has no such target and the comm simply closes, so
nothing here is needed for the magics, the widget or the text messages to work.

Kernel to frontend::

    {"type": "states", "cells": {cell_id: badge}}        # cellstate.cell_states
    {"type": "detail", "task", "state", "message", "attempt", "duration", "logs"}
    {"type": "notice", "message"}                        # e.g. a move changed edges

Frontend to kernel::

    {"type": "order", "cells": [cell_id, ...]}           # the document order, on open and on moves
    {"type": "detail", "task": slug}                     # a badge was clicked
    {"type": "action", "action": "run_to" | "rerun_from" | "show", "task": slug}

``states`` is sent at most about five times a second while a run goes (the widget's
throttle), always followed by a trailing send, and once whenever cells change.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from nbflow.core.runview import RunView
from nbflow.kernel.cellstate import cell_states
from nbflow.kernel.throttle import Throttle

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from nbflow.kernel.session import NotebookSession

logger = logging.getLogger("nbflow.cellcomm")

TARGET = "nbflow.cells"
SYNC_INTERVAL = 0.2
MAX_WATCHED = 4
DETAIL_LOG_LINES = 200


class CellComm:
    """Sends task cells' states to the frontend and takes its document order and requests."""

    def __init__(self, session: NotebookSession, send: Callable[[dict[str, Any]], None]) -> None:
        self.session = session
        self._send = send
        self._throttle = Throttle(self._send_states, lambda: SYNC_INTERVAL)
        self._last_sent: dict[str, Any] | None = None
        # Server runs followed from this notebook (%flow run --server, %flow watch): their task
        # states show on the badges too. One view per run, the newest few.
        self.watched: list[RunView] = []

    # -- to the frontend -----------------------------------------------------------

    def observe(self, batch: Iterable[Any]) -> None:
        """An ``EventStream`` observer: a batch of records means states may have changed."""
        if any(getattr(record, "task", None) is not None for record in batch):
            self._throttle.request()

    def watching(self) -> Callable[[list[Any]], None]:
        """A new server run followed: the observer its records go to."""
        view = RunView(max_logs=DETAIL_LOG_LINES)
        self.watched = [*self.watched[-(MAX_WATCHED - 1) :], view]

        def observe(records: list[Any]) -> None:
            if view.observe(records):
                self._throttle.request()

        return observe

    def changed(self) -> None:
        """Cells were defined, moved or reset: send the badges again."""
        self._throttle.request()

    def flush(self) -> None:
        """Send the badges now (the end of a run)."""
        self._throttle.flush()

    def resend(self) -> None:
        """Send the badges again even if unchanged (a page just connected)."""
        self._last_sent = None
        self._throttle.request()

    def notice(self, message: str) -> None:
        """Show ``message`` to the user in the frontend."""
        self._send({"type": "notice", "message": message})

    def _send_states(self) -> None:
        session = self.session
        try:
            cells = cell_states(session.flow, session.view, session.ran_sources, watched=self.watched)
        except Exception:  # a badge must never break a run
            logger.exception("nbflow: cell states failed")
            return
        message = {"type": "states", "cells": cells}
        if message == self._last_sent:
            return
        self._last_sent = message
        self._send(message)

    def _view_of(self, task: str) -> RunView:
        """The view with the task's newest run: the kernel's, or a watched server run's."""

        def newest(view: RunView) -> float:
            latest = view.latest(task)
            return (latest.ended or latest.started or 0.0) if latest is not None else -1.0

        return max([self.session.view, *self.watched], key=newest)

    # -- from the frontend ----------------------------------------------------------

    def receive(self, data: Mapping[str, Any]) -> None:
        """Handle one message from the frontend; a bad one is answered with a notice."""
        kind = data.get("type")
        try:
            if kind == "order":
                cells = data.get("cells")
                if not isinstance(cells, list):
                    raise ValueError("'order' needs a list of cell ids")
                note = self.session.order_by_cells([str(c) for c in cells])
                if note:
                    self.notice(note)
                self.resend()
            elif kind == "detail":
                task = str(data.get("task", ""))
                detail = self._view_of(task).detail(task, log_lines=DETAIL_LOG_LINES)
                self._send({"type": "detail", "task": task, **detail})
            elif kind == "action":
                self.session.cell_action(str(data.get("action", "")), str(data.get("task", "")))
            else:
                raise ValueError(f"unknown message type {kind!r}")
        except Exception as exc:  # the kernel must keep serving the notebook
            logger.exception("nbflow: cell comm message %r failed", kind)
            self.notice(f"nbflow: {exc}")


class _Channels:
    """The open comms to this kernel's frontends: a page opened later, or reloaded, opens its own."""

    def __init__(self) -> None:
        self._open: list[Any] = []
        self.cell_comm: CellComm | None = None

    def send(self, message: dict[str, Any]) -> None:
        for channel in list(self._open):
            try:
                channel.send(data=message)
            except Exception:  # a closed page: drop it, keep the others
                self._open.remove(channel)

    def add(self, channel: Any) -> None:
        self._open.append(channel)

        def on_msg(msg: Mapping[str, Any]) -> None:
            data = msg.get("content", {}).get("data", {})
            if isinstance(data, dict) and self.cell_comm is not None:
                self.cell_comm.receive(data)

        def on_close(_msg: Any) -> None:
            if channel in self._open:
                self._open.remove(channel)

        channel.on_msg(on_msg)
        channel.on_close(on_close)


def open_cell_comm(session: NotebookSession) -> CellComm | None:
    """Open the comm to the frontend (a real kernel only); the ``CellComm`` feeding it.

    The kernel opens one comm when nbflow loads, and takes the ones a page opens later
    (a reloaded page, a second view of the notebook): every open comm gets the badges.
    """
    kernel = getattr(session.shell, "kernel", None)
    if kernel is None:
        return None  # a plain IPython shell (tests, terminals): no frontend to talk to
    try:
        from comm import create_comm, get_comm_manager
    except ImportError:  # pragma: no cover - ipykernel depends on comm
        return None
    channels = _Channels()
    cell_comm = channels.cell_comm = CellComm(session, channels.send)

    def on_open(channel: Any, _msg: Any) -> None:
        channels.add(channel)
        cell_comm.resend()

    get_comm_manager().register_target(TARGET, on_open)
    channels.add(create_comm(target_name=TARGET, data={"type": "hello"}))
    return cell_comm
