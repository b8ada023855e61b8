"""The event stream: every state change and log record of a run, in order.

The widget, the CLI progress display, state and log handlers and the server
reporter are all observers of one ``EventStream``. Emitting is an append to a
list; a dispatcher thread hands observers *batches*, so a burst of 10,000
events costs the run almost nothing and an observer never blocks a task.
``flush()`` delivers everything pending before it returns (a run flushes
before it reports its final state, so observers have seen every event).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbflow.core.states import State, StateType

logger = logging.getLogger("nbflow.events")

STATE = "state"
LOG = "log"


class Event:
    """One state change (``kind="state"``) or log line (``kind="log"``).

    ``task`` is the task's slug, or ``None`` for the flow run itself.
    """

    __slots__ = (
        "kind",
        "flow_run_id",
        "task_run_id",
        "task",
        "state",
        "previous",
        "level",
        "message",
        "timestamp",
    )

    def __init__(
        self,
        kind: str,
        flow_run_id: str,
        task_run_id: str | None,
        task: str | None,
        *,
        state: State | None = None,
        previous: StateType | None = None,
        level: str | None = None,
        message: str = "",
        timestamp: float = 0.0,
    ) -> None:
        self.kind = kind
        self.flow_run_id = flow_run_id
        self.task_run_id = task_run_id
        self.task = task
        self.state = state
        self.previous = previous
        self.level = level
        self.message = message
        self.timestamp = state.timestamp if state is not None and not timestamp else timestamp

    def to_dict(self) -> dict[str, Any]:
        """The JSON form every non-Python observer (widget, server) receives."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "flow_run_id": self.flow_run_id,
            "task_run_id": self.task_run_id,
            "task": self.task,
            "timestamp": self.timestamp,
        }
        if self.kind == STATE and self.state is not None:
            out["state"] = self.state.type.value
            out["previous"] = self.previous.value if self.previous is not None else None
            out["message"] = self.state.message
            out["attempt"] = self.state.attempt
            out["result_ref"] = self.state.result_ref
            out["start_time"] = self.state.start_time
        else:
            out["level"] = self.level
            out["message"] = self.message
        return out

    def __repr__(self) -> str:
        what = self.state.type.value if self.state is not None else f"{self.level}: {self.message}"
        return f"<Event {self.kind} {self.task or 'flow'} {what}>"


Observer = Callable[[list[Event]], None]


class EventStream:
    """Ordered, batched fan-out of events to observers."""

    def __init__(self, *, max_latency: float = 0.05, idle_exit: float = 2.0) -> None:
        self._observers: list[Observer] = []
        self._pending: deque[Event] = deque()
        self._max_latency = max_latency
        self._idle_exit = idle_exit
        self._wakeup = threading.Event()
        self._deliver_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        """True when someone listens; emitters may skip building events otherwise."""
        return bool(self._observers)

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        self._observers = [*self._observers, observer]

        def unsubscribe() -> None:
            self._observers = [o for o in self._observers if o is not observer]

        return unsubscribe

    def emitter(self) -> Callable[[Event], None] | None:
        """``emit``, or ``None`` while nobody listens so hot paths skip building events."""
        return self.emit if self._observers else None

    def emit(self, event: Event) -> None:
        if not self._observers:
            return
        self._pending.append(event)
        if not self._wakeup.is_set():
            self._wakeup.set()
            thread = self._thread
            if thread is None or not thread.is_alive():
                self._start_dispatcher()

    def flush(self) -> None:
        """Deliver every pending event now, from the calling thread."""
        self._deliver()

    def _start_dispatcher(self) -> None:
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._dispatch_loop, name="nbflow-events", daemon=True)
            self._thread.start()

    def _dispatch_loop(self) -> None:
        while True:
            if not self._wakeup.wait(self._idle_exit):
                with self._start_lock:
                    # Exit only if nothing arrived while deciding; emit() restarts us.
                    if not self._wakeup.is_set():
                        self._thread = None
                        return
                continue
            # Let a burst accumulate so observers get one batch, not thousands.
            time.sleep(self._max_latency)
            self._wakeup.clear()
            self._deliver()

    def _deliver(self) -> None:
        with self._deliver_lock:
            # deque.popleft is atomic, so emitters on other threads never lose an event.
            pending = self._pending
            batch = [pending.popleft() for _ in range(len(pending))]
            if not batch:
                return
            for observer in self._observers:
                try:
                    observer(batch)
                except Exception:  # an observer must never break the run
                    logger.exception("nbflow event observer %r failed", observer)
