"""One watcher per server process for the agents' long-polls.

An agent waiting in ``getRunsInQueue`` must learn of runs another replica made and of
Scheduled runs whose time has come; neither is a write this process sees. Rather than
every waiting agent re-reading its queue four times a second, this loop reads two small
things four times a second — how far the tenants' journals have moved, and when the next
waiting run falls due — and wakes the waiters (through the process's ``Notifier``) only
when one of them says the queues may have changed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from nbflow.core.states import StateType
from nbflow.server.db import OutageLog
from nbflow.server.models import FlowRun, Tenant, utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from nbflow.server.services.feed import Notifier

logger = logging.getLogger("nbflow.server.queuewatch")
WATCH_INTERVAL = 0.25


class QueueWatch:
    """Wakes long-polling agents when any journal moved or a waiting run fell due."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], notifier: Notifier) -> None:
        self.sessions = sessions
        self.notifier = notifier
        self.journal_position: int | None = None
        self.next_due: datetime | None = None

    async def check(self) -> bool:
        """One look; True (and the waiters woken) when the queues may have changed."""
        async with self.sessions() as session:
            position = (
                await session.execute(select(func.coalesce(func.sum(Tenant.feed_position), 0)))
            ).scalar_one()
            now = utcnow()
            due = self.next_due is not None and self.next_due <= now
            if position == self.journal_position and not due:
                return False
            first = self.journal_position is None
            self.journal_position = position
            self.next_due = (
                await session.execute(
                    select(func.min(FlowRun.scheduled_start_time)).where(
                        FlowRun.state == StateType.SCHEDULED.value, FlowRun.scheduled_start_time > now
                    )
                )
            ).scalar_one()
        if first:
            return False
        self.notifier.notify()
        return True

    async def run(self) -> None:
        """Look every ``WATCH_INTERVAL`` seconds until cancelled."""
        outage = OutageLog(logger, "queue watch")
        while True:
            with outage:  # the database may be away for a moment; waiters fall back on their timeout
                await self.check()
            await asyncio.sleep(WATCH_INTERVAL)
