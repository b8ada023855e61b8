"""The live feed: a tenant's run records after a cursor, in the order they were recorded.

The feed reads ``run_events`` by its per-tenant ``position`` (commit order, see
``services/journal.py``), so a consumer sees each run's records in recorded
order — never a final flow state before the task states recorded before it —
and it works across server replicas. An in-process ``Notifier`` wakes waiters
early when this process wrote something.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from nbflow.server.models import RunEvent
from nbflow.server.services.journal import record_of

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

FEED_BATCH = 500


def decode_cursor(text: str | None) -> int:
    """A cursor from ``/events?cursor=`` (the SSE ``id``); anything unreadable is the start."""
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0


async def latest_cursor(session: AsyncSession, tenant_id: str) -> int:
    """Where "from now on" starts for a tenant."""
    query = select(func.max(RunEvent.position)).where(RunEvent.tenant_id == tenant_id)
    return (await session.execute(query)).scalar_one() or 0


async def events_since(
    session: AsyncSession, tenant_id: str, cursor: int, *, flow_run_id: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Up to ``FEED_BATCH`` records after ``cursor`` as wire dicts (each with its
    ``position``), and the cursor to continue from."""
    query = select(RunEvent).where(RunEvent.tenant_id == tenant_id, RunEvent.position > cursor)
    if flow_run_id:
        query = query.where(RunEvent.flow_run_id == flow_run_id)
    events = []
    for row in (await session.execute(query.order_by(RunEvent.position).limit(FEED_BATCH))).scalars():
        cursor = row.position
        events.append({**record_of(row).to_wire(), "position": row.position})
    return events, cursor


class Notifier:
    """Wakes every waiter when this process writes runs, states or logs."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake everyone waiting now."""
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        """Wait until the next ``notify`` or ``seconds``, whichever comes first."""
        event = self._event
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass
