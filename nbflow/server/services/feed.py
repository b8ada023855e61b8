"""The live feed: state changes and logs after a cursor, as engine-shaped event dicts.

The feed reads the history tables, so it works across server replicas; an
in-process ``Notifier`` wakes waiters early when this process wrote something.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from nbflow.server.models import FlowRunState, Log, TaskRunState

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

FEED_BATCH = 500


@dataclass
class Cursor:
    flow_states: int = 0
    task_states: int = 0
    logs: int = 0

    def encode(self) -> str:
        return f"{self.flow_states}.{self.task_states}.{self.logs}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        if not text:
            return cls()
        try:
            a, b, c = (int(part) for part in text.split("."))
        except ValueError:
            return cls()
        return cls(a, b, c)


async def latest_cursor(session: AsyncSession, tenant_id: str) -> Cursor:
    """Where "from now on" starts for a tenant."""
    from sqlalchemy import func

    values = []
    for table in (FlowRunState, TaskRunState, Log):
        values.append(
            (
                await session.execute(select(func.max(table.id)).where(table.tenant_id == tenant_id))
            ).scalar_one()
            or 0
        )
    return Cursor(*values)


async def events_since(
    session: AsyncSession, tenant_id: str, cursor: Cursor, *, flow_run_id: str | None = None
) -> tuple[list[dict], Cursor]:
    events: list[dict] = []
    q = select(FlowRunState).where(FlowRunState.tenant_id == tenant_id, FlowRunState.id > cursor.flow_states)
    if flow_run_id:
        q = q.where(FlowRunState.flow_run_id == flow_run_id)
    for row in (await session.execute(q.order_by(FlowRunState.id).limit(FEED_BATCH))).scalars():
        cursor.flow_states = row.id
        events.append(
            {"kind": "state", "flow_run_id": row.flow_run_id, "task_run_id": None, "task": None,
             "state": row.state, "message": row.message, "attempt": 0, "timestamp": row.timestamp}
        )  # fmt: skip
    q2 = select(TaskRunState).where(TaskRunState.tenant_id == tenant_id, TaskRunState.id > cursor.task_states)
    if flow_run_id:
        q2 = q2.where(TaskRunState.flow_run_id == flow_run_id)
    for row in (await session.execute(q2.order_by(TaskRunState.id).limit(FEED_BATCH))).scalars():
        cursor.task_states = row.id
        events.append(
            {"kind": "state", "flow_run_id": row.flow_run_id, "task_run_id": row.task_run_id, "task": row.task_slug,
             "state": row.state, "message": row.message, "attempt": row.attempt, "timestamp": row.timestamp}
        )  # fmt: skip
    q3 = select(Log).where(Log.tenant_id == tenant_id, Log.id > cursor.logs)
    if flow_run_id:
        q3 = q3.where(Log.flow_run_id == flow_run_id)
    for row in (await session.execute(q3.order_by(Log.id).limit(FEED_BATCH))).scalars():
        cursor.logs = row.id
        events.append(
            {"kind": "log", "flow_run_id": row.flow_run_id, "task_run_id": row.task_run_id, "task": row.task_slug,
             "level": row.level, "message": row.message, "timestamp": row.timestamp}
        )  # fmt: skip
    events.sort(key=lambda e: e["timestamp"])
    return events, cursor


class Notifier:
    """Wakes every waiter when this process writes runs, states or logs."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass
