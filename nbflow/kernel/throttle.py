"""``Throttle``: call a function at once, then at most once per interval, with a trailing call.

The widget's ``states`` sync and the cell badges' comm share it: both are fed by
the engine's event stream, which may deliver thousands of records a second, and
both must send the last state without flooding the comm.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class Throttle:
    """Run ``fn`` at once, then at most once per interval; a request meanwhile runs at the interval's end."""

    def __init__(self, fn: Callable[[], None], interval: Callable[[], float]) -> None:
        self._fn = fn
        self._interval = interval
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._last = float("-inf")

    def request(self) -> None:
        """Ask for a call: now if the interval has passed, else once at its end."""
        with self._lock:
            if self._timer is not None:
                return  # the trailing call will pick this change up
            wait = self._last + self._interval() - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._fire)
                self._timer.daemon = True
                self._timer.start()
                return
            self._last = time.monotonic()
        self._fn()

    def flush(self) -> None:
        """Call now, dropping a pending trailing call."""
        self.cancel()
        with self._lock:
            self._last = time.monotonic()
        self._fn()

    def cancel(self) -> None:
        """Drop a pending trailing call."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            self._last = time.monotonic()
        self._fn()
