"""The spool: a run's records on local disk first, delivered in order when the server answers.

A run's records (``to_wire()`` dicts; flow-run states also carry the version
for their compare-and-set) are appended to ``<spool>/<flow_run_id>.jsonl``;
``.offset`` holds how many lines the server has acknowledged. Delivery sends
consecutive records of one channel (flow states, task states, logs) as a
batch of at most ``MAX_BATCH`` records and ``MAX_BATCH_BYTES`` bytes, and moves
the offset only after the server answered, so an outage loses nothing and a
retried batch is not applied twice: the server recognises a re-delivered
state by its transition id and a re-delivered line by its sequence number.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
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
MAX_BATCH_BYTES = 1_000_000
"""Bytes of records per request: well under the server's body limit (4 MB by default)."""


def channel(entry: dict[str, Any]) -> str:
    """Which API call delivers a spooled record: flow states, task states or logs."""
    if entry.get("kind") == "log":
        return LOG
    return FLOW_STATE if entry.get("task") is None else TASK_STATE


def spool_dir() -> Path:
    """``NBFLOW_HOME/agent/spool``."""
    return nbflow_home() / "agent" / "spool"


def left_behind() -> list[Spool]:
    """Spools on this machine, by file name: the (run, execution) of each ``.jsonl`` file."""
    folder = spool_dir()
    spools = []
    for path in sorted(folder.glob("*.jsonl")) if folder.exists() else []:
        run_id, _, execution = path.stem.rpartition(".")
        if run_id and execution.isdigit():
            spools.append(Spool(run_id, int(execution), folder))
    return spools


class Spool:
    """Append-only record file of one flow run, plus the delivered offset."""

    def __init__(self, flow_run_id: str, execution: int, directory: Path | None = None) -> None:
        self.directory = directory or spool_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        # One file per execution: a resubmitted run's new execution never delivers (and is
        # never refused for) what an older one left behind on this machine.
        stem = f"{flow_run_id}.{execution}"
        self.path = self.directory / f"{stem}.jsonl"
        self.offset_path = self.directory / f"{stem}.offset"
        self.hold_path = self.directory / f"{stem}.hold"
        self.flow_run_id = flow_run_id
        self.execution = execution
        self._lock = threading.Lock()
        self._held: int | None = None

    def hold(self) -> bool:
        """Take the spool for delivery, until ``release`` or this process's end: ``False`` if
        another live process holds it (its flow process still reporting, or another agent that
        shares this home). The hold dies with its process, so a crashed flow process's spool
        is free for the agent to deliver."""
        if self._held is not None:
            return True
        fd = os.open(self.hold_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held = fd
        return True

    def release(self) -> None:
        """Give up ``hold``."""
        if self._held is not None:
            os.close(self._held)
            self._held = None

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append records (written and flushed before returning)."""
        if not records:
            return
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(data)
            fh.flush()

    def delivered(self) -> int:
        """How many records the server has acknowledged."""
        try:
            return int(self.offset_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _set_delivered(self, count: int) -> None:
        atomic_write(self.offset_path, str(count).encode())

    def pending(self) -> list[tuple[dict[str, Any], int]]:
        """Records not yet acknowledged, in order, each with its size in bytes."""
        if not self.path.exists():
            return []
        with self._lock:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        start = self.delivered()
        out = []
        for line in lines[start:]:
            try:
                out.append((json.loads(line), len(line)))
            except ValueError:
                break  # a half-written last line (the process died mid-write): later, or never
        return out

    def done(self) -> bool:
        """True when the server has acknowledged every record."""
        return not self.pending()

    def remove(self) -> None:
        """Delete the spool (everything was delivered, or the run was not ours)."""
        for path in (self.path, self.offset_path, self.hold_path):
            path.unlink(missing_ok=True)
        self.release()

    def deliver(self, send: Callable[[str, list[dict[str, Any]]], None]) -> int:
        """Send pending records in order, batch by batch; returns how many were delivered.
        Raises ``TransportError`` when the server cannot be reached (the rest stays)."""
        records = self.pending()
        base = self.delivered()
        sent = 0
        while sent < len(records):
            kind = channel(records[sent][0])
            end, size = sent, 0
            while (
                end < len(records)
                and channel(records[end][0]) == kind
                and end - sent < MAX_BATCH
                and (end == sent or size + records[end][1] <= MAX_BATCH_BYTES)
            ):
                size += records[end][1]
                end += 1
            send(kind, [record for record, _ in records[sent:end]])
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

    def start(self) -> SpoolSender:
        """Start delivering in the background."""
        self._thread.start()
        return self

    def _loop(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            try:
                self.spool.deliver(self.send)
                backoff = self.interval
            except TransportError:
                backoff = min(backoff * 2, 5.0)
            except ClientError as exc:  # the server refused a batch: log it, keep the rest flowing
                logger.error("server refused a spooled batch of run %s: %s", self.spool.flow_run_id, exc)
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
            except ClientError:
                if time.monotonic() + delay > deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
