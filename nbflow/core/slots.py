"""Concurrency slots: a task with tags waits for a slot of each limited tag before it runs.

The engine only knows the ``SlotGate`` protocol; the agent's flow process gives the runner
one that asks the server (``nbflow/agent/slots.py``), which holds the limits (``nbflow
limits set TAG N``) and leases slots to the execution. While it waits, the task run is
``Scheduled`` with the reason ("waiting for a concurrency slot: ..."); a cancelled run stops
waiting. Runs without a gate (the kernel, headless, Dask workers) are not limited.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

logger = logging.getLogger("nbflow.slots")
WAITING = "waiting for a concurrency slot"
_FIRST_WAIT, _LONGEST_WAIT = 0.25, 2.0


class SlotGate(Protocol):
    """Where slots come from: ``acquire`` answers (granted, reason); ``release`` gives them back."""

    def acquire(self, task_run_id: str, task_slug: str, tags: tuple[str, ...]) -> tuple[bool, str]:
        """Take a slot of every limited tag for this task run, or none; why not."""
        ...

    def release(self, task_run_id: str) -> None:
        """Give back every slot this task run holds."""
        ...


def wait_for_slots(
    gate: SlotGate,
    task_run_id: str,
    task_slug: str,
    tags: tuple[str, ...],
    *,
    waiting: Callable[[str], None],
    cancel_event: threading.Event | None,
) -> bool:
    """Block until the gate grants the slots (True) or the run is cancelled (False).
    ``waiting(reason)`` is called once, when the task starts to wait (its Scheduled state)."""
    delay, said = _FIRST_WAIT, False
    while True:
        try:
            granted, reason = gate.acquire(task_run_id, task_slug, tags)
        except Exception as exc:  # the server is away: keep waiting (a cancel still ends it)
            granted, reason = False, f"cannot ask the server for a slot ({type(exc).__name__}: {exc})"
        if granted:
            return True
        if not said:
            waiting(f"{WAITING}: {reason}")
            said = True
        if cancel_event is not None:
            if cancel_event.wait(delay):
                return False
        else:
            time.sleep(delay)
        delay = min(delay * 2, _LONGEST_WAIT)


def release_slots(gate: SlotGate, task_run_id: str) -> None:
    """Give the slots back; a failure is logged (the server frees them when the run ends)."""
    try:
        gate.release(task_run_id)
    except Exception:
        logger.warning("could not release the concurrency slots of task run %s", task_run_id, exc_info=True)
