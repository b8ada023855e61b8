"""Recovery: runs whose agent went silent are failed or resubmitted; stuck claims are released.

* Running (or Cancelling) with no heartbeat for ``heartbeat_timeout`` seconds: back to
  Scheduled if the flow allows resubmits (``max_resubmits``) and some are left, else
  Failed (Cancelling ends Cancelled). Task runs left running end Failed.
* Submitted with no heartbeat for ``submitted_timeout``: the agent claimed it but never
  started it; back to Scheduled for any agent to take.

Each change is a compare-and-set on the run's version, so an agent that comes back at
the same moment and the recovery service never both win. After the server starts, and
after its database comes back from an outage, the service waits one timeout before
judging: during an outage nobody could beat.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, text, update

from nbflow.core.states import ACTIVE_TYPES, StateType
from nbflow.server.db import OutageLog
from nbflow.server.models import FlowRun, FlowVersion
from nbflow.server.services.transitions import fail_open_task_runs, server_change, set_flow_run_state

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

logger = logging.getLogger("nbflow.server.recovery")
S = StateType


async def recover(session: AsyncSession, *, heartbeat_timeout: float, submitted_timeout: float) -> int:
    """One recovery pass: fail or resubmit silent runs, release stale claims; how many changed."""
    now = datetime.now(UTC)
    changed = 0
    lost_before = now - timedelta(seconds=heartbeat_timeout)
    stuck_before = now - timedelta(seconds=submitted_timeout)
    rows = (
        await session.execute(
            select(FlowRun, FlowVersion.max_resubmits)
            .join(FlowVersion, FlowVersion.id == FlowRun.flow_version_id)
            .where(FlowRun.state.in_([s.value for s in ACTIVE_TYPES]))
            .order_by(FlowRun.id)  # the order writers share-lock runs in: no deadlock between them
        )
    ).all()
    for run, max_resubmits in rows:
        beat = run.heartbeat or run.updated
        state = StateType(run.state)
        if state is S.SUBMITTED:
            if beat >= stuck_before:
                continue
            target, message = S.SCHEDULED, f"released: claimed but not started within {submitted_timeout:g}s"
        else:
            if beat >= lost_before:
                continue
            silent = f"no heartbeat for {heartbeat_timeout:g}s: the agent or the flow process died"
            if state is S.CANCELLING:
                target, message = S.CANCELLED, f"cancelled ({silent})"
            elif run.resubmits < max_resubmits:
                target, message = (
                    S.SCHEDULED,
                    f"resubmitted ({run.resubmits + 1} of {max_resubmits}): {silent}",
                )
            else:
                target, message = S.FAILED, silent
        result = await set_flow_run_state(
            session, run.tenant_id, server_change(run, target, message), version=run.version
        )
        if not result.ok:
            continue  # the agent came back and wrote first
        changed += 1
        if target is S.SCHEDULED and state is not S.SUBMITTED:
            await session.execute(
                update(FlowRun).where(FlowRun.id == run.id).values(resubmits=FlowRun.resubmits + 1)
            )
        await fail_open_task_runs(session, run, message)
        logger.warning("flow run %s: %s -> %s (%s)", run.id, state.value, target.value, message)
    return changed


async def recovery_loop(
    sessions: async_sessionmaker[AsyncSession], settings: Any, on_change: Any = None
) -> None:
    """Run recovery passes forever, after waiting one timeout after start and after the
    database comes back from an outage."""
    # After an outage of the server or of its database every heartbeat looks old (none could
    # be stored): the agents get one timeout to check in again before runs are judged.
    grace = max(settings.heartbeat_timeout, settings.submitted_timeout)
    await asyncio.sleep(grace)
    outage = OutageLog(logger, "recovery pass")
    while True:
        was_away, changed = outage.away, False
        with outage:
            async with sessions.begin() as session:
                if was_away:  # is it back? (judging runs waits for the agents' heartbeats)
                    await session.execute(text("SELECT 1"))
                else:
                    changed = await recover(
                        session,
                        heartbeat_timeout=settings.heartbeat_timeout,
                        submitted_timeout=settings.submitted_timeout,
                    )
            if changed and callable(on_change):
                on_change()
        if was_away and not outage.away:  # back from an outage
            await asyncio.sleep(grace)
            continue
        await asyncio.sleep(settings.recovery_interval)
