"""The event stream: every state change and log line of a run, in order.

The widget, the CLI progress display, state and log handlers and the server
reporter are all observers of one ``EventStream``; what flows through it is
the run record (``StateRecord`` / ``LogRecord``). Emitting is an append to a
list; a dispatcher thread hands observers *batches*, so a burst of 10,000
events costs the run almost nothing and an observer never blocks a task.
``flush()`` delivers everything pending before it returns (a run flushes
before it reports its final state, so observers have seen every event).

The stream numbers log lines (``LogRecord.seq``) in the order it delivers
them: one stream serves one execution of a run, so the numbers are that
execution's sequence.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from nbflow.core.record import LOG, LogRecord, StateRecord

logger = logging.getLogger("nbflow.events")

#: What the stream carries: the run record (``nbflow.core.record``).
Event = StateRecord | LogRecord

Observer = Callable[[list[Event]], object]


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
        self._log_seq = 0

    @property
    def active(self) -> bool:
        """True when someone listens; emitters may skip building events otherwise."""
        return bool(self._observers)

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Add an observer of event batches; returns the function that removes it."""
        self._observers = [*self._observers, observer]

        def unsubscribe() -> None:
            self._observers = [o for o in self._observers if o is not observer]

        return unsubscribe

    def emitter(self) -> Callable[[Event], None] | None:
        """``emit``, or ``None`` while nobody listens so hot paths skip building events."""
        return self.emit if self._observers else None

    def emit(self, event: Event) -> None:
        """Queue one record for the observers (nothing happens while nobody listens)."""
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
            seq = self._log_seq
            for event in batch:
                if event.kind == LOG:
                    seq += 1
                    event.seq = seq  # type: ignore[union-attr]
            self._log_seq = seq
            for observer in self._observers:
                try:
                    observer(batch)
                except Exception:  # an observer must never break the run
                    logger.exception("nbflow event observer %r failed", observer)
