"""The scheduler service: keep the next 10 runs of every active schedule.

Safe with several server replicas: each scheduled run's idempotency key is
``schedule:<time>`` and (flow, key) is unique, so a run is made once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update

from nbflow.core.schedules import Schedule
from nbflow.core.states import StateType
from nbflow.server.db import OutageLog
from nbflow.server.models import Flow, FlowRun, FlowVersion
from nbflow.server.services.flows import SCHEDULE_KEY_PREFIX, latest_version
from nbflow.server.services.runs import new_flow_run, record_new_runs

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

logger = logging.getLogger("nbflow.server.scheduler")
RUNS_AHEAD = 10


async def schedule_flows(sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None) -> int:
    """One pass: create the missing runs among the next 10 of every active schedule; how many.

    Each flow is scheduled in a transaction of its own, so one flow's bad schedule (or a
    failed write) costs that flow its runs for this pass and never the other flows theirs.
    Flows that cannot need a run (no schedule, or their next 10 runs already waiting) are
    found in two queries, so a pass over thousands of quiet schedules costs two round trips."""
    now = now or datetime.now(UTC)
    async with sessions() as session:
        flow_ids = await _flows_needing_runs(session, now)
    created = 0
    for flow_id in flow_ids:
        try:
            async with sessions.begin() as session:
                created += await schedule_flow(session, flow_id, now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("cannot schedule flow %s: %s: %s", flow_id, type(exc).__name__, exc)
    return created


async def _flows_needing_runs(session: AsyncSession, now: datetime) -> list[str]:
    """Active flows whose latest version has a schedule and fewer than 10 runs waiting."""
    newest = (
        select(FlowVersion.flow_id, func.max(FlowVersion.version).label("version"))
        .join(Flow, Flow.id == FlowVersion.flow_id)
        .where(Flow.schedule_active.is_(True))
        .group_by(FlowVersion.flow_id)
        .subquery()
    )
    schedules = await session.execute(
        select(FlowVersion.flow_id, FlowVersion.schedule).join(
            newest, (FlowVersion.flow_id == newest.c.flow_id) & (FlowVersion.version == newest.c.version)
        )
    )
    scheduled = [flow_id for flow_id, schedule in schedules if schedule]
    if not scheduled:
        return []
    # Only runs still waiting count: a schedule change deletes those, so they are all of the
    # current schedule; anything else (a cancelled run, say) sends the flow the slow way.
    # A plain join on the flow (never the versions' aggregate again): with the planner's
    # statistics taken before the runs existed, a subquery here was re-run per waiting run.
    waiting = dict(
        (
            await session.execute(
                select(FlowRun.flow_id, func.count())
                .join(Flow, Flow.id == FlowRun.flow_id)
                .where(
                    Flow.schedule_active.is_(True),
                    FlowRun.state == StateType.SCHEDULED.value,
                    FlowRun.idempotency_key.like(f"{SCHEDULE_KEY_PREFIX}%"),
                    FlowRun.scheduled_start_time > now,
                )
                .group_by(FlowRun.flow_id)
            )
        ).all()
    )
    return [flow_id for flow_id in scheduled if waiting.get(flow_id, 0) < RUNS_AHEAD]


async def schedule_flow(session: AsyncSession, flow_id: str, now: datetime) -> int:
    """Create the missing runs among the next 10 of one flow's schedule; how many."""
    # Take the flow's row first (a row lock on PostgreSQL, the write lock on SQLite) and
    # re-check that its schedule is on: turning it off while we schedule then waits for
    # us (and deletes what we made), or wins first and we make nothing.
    claimed = await session.execute(
        update(Flow).where(Flow.id == flow_id, Flow.schedule_active.is_(True)).values(schedule_active=True)
    )
    if claimed.rowcount != 1:
        return 0
    flow = await session.get_one(Flow, flow_id)
    version = await latest_version(session, flow_id)
    if version is None or not version.schedule:
        return 0
    schedule = Schedule.from_dict(version.schedule)
    wanted = {
        f"{SCHEDULE_KEY_PREFIX}{when.astimezone(UTC).isoformat()}": when
        for when in schedule.next(RUNS_AHEAD, after=now)
    }
    # One query for the runs that exist already: the flow's row lock above makes a second
    # replica wait for our commit, so what is missing now is ours to make.
    made = set(
        (
            await session.scalars(
                select(FlowRun.idempotency_key).where(
                    FlowRun.flow_id == flow_id, FlowRun.idempotency_key.in_(list(wanted))
                )
            )
        ).all()
    )
    runs = [
        new_flow_run(
            flow.tenant_id,
            flow,
            version,
            parameters=dict(schedule.parameter_defaults),
            idempotency_key=key,
            scheduled_start_time=when,
        )  # fmt: skip
        for key, when in wanted.items()
        if key not in made
    ]
    session.add_all(runs)
    record_new_runs(session, flow.tenant_id, runs)
    return len(runs)


async def scheduler_loop(
    sessions: async_sessionmaker[AsyncSession], interval: float, on_created: object = None
) -> None:
    """Run scheduler passes forever, every ``interval`` seconds."""
    outage = OutageLog(logger, "scheduler pass")
    while True:
        with outage:  # the service keeps going; the next pass retries
            created = await schedule_flows(sessions)
            if created and callable(on_created):
                on_created()
        await asyncio.sleep(interval)
