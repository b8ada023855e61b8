"""The spool: states and logs of a run, on local disk first, delivered in order when the server answers.

A run's records are appended to ``<spool>/<flow_run_id>.jsonl``; ``.offset``
holds how many lines the server has acknowledged. Delivery sends consecutive
records of one kind as a batch and moves the offset only after the server
answered, so an outage loses nothing and a retried batch is not applied twice:
logs carry a sequence number, states a version, and the server acknowledges
a re-delivered one without applying it again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from nbflow.core.errors import ClientError, TransportError
from nbflow.core.files import atomic_write
from nbflow.core.settings import nbflow_home

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

logger = logging.getLogger("nbflow.agent.spool")

TASK_STATE, LOG, FLOW_STATE = "task_state", "log", "flow_state"
MAX_BATCH = 500


def spool_dir() -> Path:
    return nbflow_home() / "agent" / "spool"


class Spool:
    """Append-only record file of one flow run, plus the delivered offset."""

    def __init__(self, flow_run_id: str, directory: Path | None = None) -> None:
        self.directory = directory or spool_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{flow_run_id}.jsonl"
        self.offset_path = self.directory / f"{flow_run_id}.offset"
        self.flow_run_id = flow_run_id
        self._lock = threading.Lock()

    def append(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()

    def delivered(self) -> int:
        try:
            return int(self.offset_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _set_delivered(self, count: int) -> None:
        atomic_write(self.offset_path, str(count).encode())

    def pending(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self._lock:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        start = self.delivered()
        out = []
        for line in lines[start:]:
            try:
                out.append(json.loads(line))
            except ValueError:
                break  # a half-written last line (the process died mid-write): later, or never
        return out

    def done(self) -> bool:
        return not self.pending()

    def remove(self) -> None:
        for path in (self.path, self.offset_path):
            path.unlink(missing_ok=True)

    def deliver(self, send: Callable[[str, list[dict[str, Any]]], None]) -> int:
        """Send pending records in order, batch by batch; returns how many were delivered.
        Raises ``TransportError`` when the server cannot be reached (the rest stays)."""
        records = self.pending()
        base = self.delivered()
        sent = 0
        while sent < len(records):
            kind = records[sent]["type"]
            end = sent
            while end < len(records) and records[end]["type"] == kind and end - sent < MAX_BATCH:
                end += 1
            send(kind, records[sent:end])
            sent = end
            self._set_delivered(base + sent)
        return sent


class SpoolSender:
    """Delivers a spool in the background while the run goes on; waits out server outages."""

    def __init__(
        self, spool: Spool, send: Callable[[str, list[dict[str, Any]]], None], *, interval: float = 0.25
    ) -> None:
        self.spool = spool
        self.send = send
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nbflow-spool", daemon=True)
        self.last_error: str | None = None

    def start(self) -> SpoolSender:
        self._thread.start()
        return self

    def poke(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            try:
                self.spool.deliver(self.send)
                backoff = self.interval
                self.last_error = None
            except TransportError as exc:
                self.last_error = str(exc)
                backoff = min(backoff * 2, 5.0)
            except ClientError as exc:  # the server refused a batch: log it, keep the rest flowing
                logger.error("server refused a spooled batch of run %s: %s", self.spool.flow_run_id, exc)
                self.last_error = str(exc)
                backoff = min(backoff * 2, 5.0)

    def close(self, timeout: float) -> bool:
        """Stop, after trying to deliver everything for up to ``timeout`` seconds."""
        self._stop.set()
        self._wake.set()
        self._thread.join(5)
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            try:
                self.spool.deliver(self.send)
                return True
            except ClientError as exc:
                self.last_error = str(exc)
                if time.monotonic() + delay > deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
