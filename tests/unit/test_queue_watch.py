"""The queue watch wakes long-polling agents only when their queues may have changed: when any
journal moved (a run made by another replica, say) or a waiting run's time came."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING

from nbflow.server import auth, db
from nbflow.server.models import utcnow
from nbflow.server.services.feed import Notifier
from nbflow.server.services.flows import FlowSpec, register_flow
from nbflow.server.services.queuewatch import QueueWatch
from nbflow.server.services.runs import create_flow_run

if TYPE_CHECKING:
    from pathlib import Path

STRUCTURE = {"name": "f", "tasks": [{"slug": "a"}], "edges": [], "parameters": []}
STORAGE = {"kind": "local", "location": "/tmp/f.py", "sha256": "0" * 64}


def looks(tmp_path: Path) -> list[tuple[str, bool, bool]]:
    """(what happened, what check() said, whether a waiter woke), step by step."""

    async def go() -> list[tuple[str, bool, bool]]:
        engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'nbflow.db'}")
        await db.migrate(engine)
        sessions = db.sessionmaker(engine)
        notifier = Notifier()
        watch = QueueWatch(sessions, notifier)
        out = []

        async def step(what: str) -> None:
            waiter = asyncio.create_task(notifier.wait(5))
            await asyncio.sleep(0)
            changed = await watch.check()
            await asyncio.wait({waiter}, timeout=0.3)  # a woken waiter is done well within this
            out.append((what, changed, waiter.done()))
            waiter.cancel()

        async with sessions.begin() as session:
            tenant, _ = await auth.create_tenant(session, "team")
            flow, _, _ = await register_flow(session, tenant.id, FlowSpec("f", STRUCTURE, None, [], STORAGE))
        await step("first look")
        await step("nothing new")
        soon = utcnow() + timedelta(seconds=0.5)
        async with sessions.begin() as session:  # as another replica would: no notify here
            await create_flow_run(session, tenant.id, flow, scheduled_start_time=soon)
        await step("a run made elsewhere")
        await step("nothing new again")
        await asyncio.sleep(0.7)
        await step("its time came")
        await step("and passed")
        await engine.dispose()
        return out

    with ThreadPoolExecutor(max_workers=1) as pool:  # a loop of its own (Playwright may hold one)
        return pool.submit(asyncio.run, go()).result()


def test_waiters_wake_only_when_a_queue_may_have_changed(tmp_path: Path) -> None:
    assert looks(tmp_path) == [
        ("first look", False, False),
        ("nothing new", False, False),
        ("a run made elsewhere", True, True),
        ("nothing new again", False, False),
        ("its time came", True, True),
        ("and passed", False, False),
    ]
