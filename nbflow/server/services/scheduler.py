"""The scheduler service: keep the next 10 runs of every active schedule.

Safe with several server replicas: each scheduled run's idempotency key is
``schedule:<time>`` and (flow, key) is unique, so a run is made once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from nbflow.core.errors import NbflowError
from nbflow.core.schedules import Schedule
from nbflow.server.errors import RequestError
from nbflow.server.models import Flow
from nbflow.server.services.flows import SCHEDULE_KEY_PREFIX, latest_version
from nbflow.server.services.runs import create_flow_run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

logger = logging.getLogger("nbflow.server.scheduler")
RUNS_AHEAD = 10


async def schedule_flows(session: AsyncSession, *, now: datetime | None = None) -> int:
    """Create the missing runs among the next 10 of every active schedule; returns how many."""
    now = now or datetime.now(UTC)
    created = 0
    flows = (await session.execute(select(Flow).where(Flow.schedule_active.is_(True)))).scalars().all()
    for flow in flows:
        # Take the flow's row first (a row lock on PostgreSQL, the write lock on SQLite) and
        # re-check that its schedule is on: turning it off while we schedule then waits for
        # us (and deletes what we made), or wins first and we make nothing.
        claimed = await session.execute(
            update(Flow)
            .where(Flow.id == flow.id, Flow.schedule_active.is_(True))
            .values(schedule_active=True)
        )
        if claimed.rowcount != 1:
            continue
        version = await latest_version(session, flow.id)
        if version is None or not version.schedule:
            continue
        try:
            schedule = Schedule.from_dict(version.schedule)
        except NbflowError as exc:
            logger.warning("flow %s has an unreadable schedule: %s", flow.name, exc)
            continue
        try:
            for when in schedule.next(RUNS_AHEAD, after=now):
                key = f"{SCHEDULE_KEY_PREFIX}{when.astimezone(UTC).isoformat()}"
                _, new = await create_flow_run(
                    session,
                    flow.tenant_id,
                    flow,
                    parameters=dict(schedule.parameter_defaults),
                    idempotency_key=key,
                    scheduled_start_time=when,
                    version=version,
                )
                created += int(new)
        except RequestError as exc:  # e.g. schedule parameter defaults the flow does not have
            logger.warning("cannot schedule flow %s: %s", flow.name, exc)
    return created


async def scheduler_loop(
    sessions: async_sessionmaker[AsyncSession], interval: float, on_created: object = None
) -> None:
    while True:
        try:
            async with sessions.begin() as session:
                created = await schedule_flows(session)
            if created and callable(on_created):
                on_created()
        except asyncio.CancelledError:
            raise
        except Exception:  # the service keeps going; the next pass retries
            logger.exception("scheduler pass failed")
        await asyncio.sleep(interval)
