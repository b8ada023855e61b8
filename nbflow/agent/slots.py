"""The flow process's ``SlotGate``: concurrency slots from the run's server, with its run token."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbflow import client_team

if TYPE_CHECKING:
    from nbflow.client import Client


class ServerGate:
    """Asks the server for the slots of a task run of this flow run (``core/slots.py``)."""

    def __init__(self, client: Client, flow_run_id: str) -> None:
        self.client = client
        self.flow_run_id = flow_run_id

    def acquire(self, task_run_id: str, task_slug: str, tags: tuple[str, ...]) -> tuple[bool, str]:
        """(granted, why not)."""
        return self.client.execute(
            client_team.acquire_slots(self.flow_run_id, task_run_id, task_slug, list(tags))
        )

    def release(self, task_run_id: str) -> None:
        """Give the task run's slots back."""
        self.client.execute(client_team.release_slots(self.flow_run_id, task_run_id))
