"""Route a task's ``print`` and ``logging`` output into its task run's logs.

While any run is active, ``sys.stdout``/``sys.stderr`` are proxies and the
root logger has one extra handler. Each looks up the *current task run* in a
context variable, so parallel tasks on threads keep their lines apart, and
output of code outside a task passes through untouched. Installing is
reference-counted: overlapping runs share one proxy.
"""

from __future__ import annotations

import contextvars
import io
import logging
import sys
import threading
from collections.abc import Callable
from typing import TextIO

LogFn = Callable[[str, str], None]  # (level, message)

_sink: contextvars.ContextVar[TaskOutput | None] = contextvars.ContextVar("nbflow_task_output", default=None)


class TaskOutput:
    """Collects one task run's output, line by line, as log records."""

    __slots__ = ("_log", "echo", "_partial")

    def __init__(self, log: LogFn, *, echo: bool) -> None:
        self._log = log
        self.echo = echo
        self._partial: dict[str, str] = {}

    def write(self, text: str, level: str) -> None:
        """Add text written to stdout/stderr; each complete line becomes a log record."""
        buffered = self._partial.pop(level, "") + text
        *lines, rest = buffered.split("\n")
        for line in lines:
            self._log(level, line)
        if rest:
            self._partial[level] = rest

    def log(self, level: str, message: str) -> None:
        """Add one log record as is (from the logging module)."""
        self._log(level, message)

    def close(self) -> None:
        """Flush a last line that had no newline."""
        if not self._partial:
            return
        for level, rest in list(self._partial.items()):
            self._log(level, rest)
        self._partial.clear()


def activate(output: TaskOutput) -> contextvars.Token:
    """Route this context's output to ``output``; returns the token ``deactivate`` takes."""
    return _sink.set(output)


def deactivate(token: contextvars.Token) -> None:
    """Stop routing to the active output (flushing its last line)."""
    output = _sink.get()
    if output is not None:
        output.close()
    _sink.reset(token)


class _StreamProxy(io.TextIOBase):
    def __init__(self, original: TextIO, level: str) -> None:
        self._original = original
        self._level = level

    def write(self, text: str) -> int:
        output = _sink.get()
        if output is not None:
            output.write(text, self._level)
            if not output.echo:
                return len(text)
        return self._original.write(text)

    def flush(self) -> None:
        # The stream underneath may be closed by its owner (pytest's capture, a
        # finished kernel) while this proxy is still referenced somewhere.
        if not getattr(self._original, "closed", False):
            self._original.flush()

    def close(self) -> None:
        """Do nothing: the proxy does not own the stream it wraps (and IOBase closes on collection)."""

    def isatty(self) -> bool:
        return self._original.isatty()

    def fileno(self) -> int:
        return self._original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._original, "encoding", "utf-8")

    def __getattr__(self, name: str) -> object:
        return getattr(self._original, name)


#: Set on the records ``forward`` makes: they are in the task's log already.
FORWARDED = "nbflow_forwarded"


def forward(level: str, message: str, **fields: object) -> None:
    """Give an engine-made log line (a failure's traceback, a timeout, a retry) to the
    ``nbflow.task`` logger too, so logging handlers configured in ``%%setup`` see every line
    of a task's log, not only those the task itself logged; ``fields`` become record attributes."""
    from nbflow.core.context import task_logger

    logger = task_logger()
    levelno = logging.getLevelName(level)
    # Without a handler anywhere, logging would print it through its last resort (stderr):
    # the line is in the task's log already, so it goes only to handlers someone set up.
    if isinstance(levelno, int) and logger.isEnabledFor(levelno) and logger.hasHandlers():
        logger.log(levelno, message, extra={FORWARDED: True, **fields})


class _CaptureHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        output = _sink.get()
        if output is None or getattr(record, FORWARDED, False):
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # a bad format string must not fail the task
            message = str(record.msg)
        output.log(record.levelname, message)


_lock = threading.Lock()
_installed = 0
_saved: tuple[TextIO, TextIO] | None = None
_handler = _CaptureHandler(level=logging.DEBUG)


def install() -> None:
    """Start routing output of task runs (reference-counted)."""
    global _installed, _saved
    with _lock:
        _installed += 1
        if _installed > 1:
            return
        _saved = (sys.stdout, sys.stderr)
        sys.stdout = _StreamProxy(sys.stdout, "INFO")  # type: ignore[assignment]
        sys.stderr = _StreamProxy(sys.stderr, "WARNING")  # type: ignore[assignment]
        logging.getLogger().addHandler(_handler)


def uninstall() -> None:
    """Undo one ``install`` (the proxies go when the last run ends)."""
    global _installed, _saved
    with _lock:
        _installed -= 1
        if _installed > 0:
            return
        _installed = 0
        logging.getLogger().removeHandler(_handler)
        if _saved is not None:
            # Only undo our own proxies; someone may have replaced them since.
            if isinstance(sys.stdout, _StreamProxy):
                sys.stdout = _saved[0]
            if isinstance(sys.stderr, _StreamProxy):
                sys.stderr = _saved[1]
            _saved = None
