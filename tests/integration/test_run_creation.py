"""Creating a run on request (``services/runcreate.create_requested_run``): on PostgreSQL two
statements on the driver's connection, elsewhere the session's path. The stored run, its
labels and its journal entry are the same either way; an idempotency key makes one run however
many callers race; a refused request stores nothing."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from server_helpers import (
    ONE_TASK_STORAGE,
    fresh_postgres_database,
    on_postgres,
    postgres_url,
    run_in_own_loop,
)

from nbflow.server import auth, db
from nbflow.server.models import FlowRun, FlowRunLabel, RunEvent, Tenant
from nbflow.server.services.flows import FlowSpec, get_flow_and_latest_version, register_flow
from nbflow.server.services.runcreate import RunRequest, create_in_session, create_requested_run
from nbflow.server.services.runs import create_flow_run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

pytestmark = pytest.mark.integration

STRUCTURE: dict[str, Any] = {
    "name": "etl",
    "tasks": [{"slug": "a", "name": "a"}],
    "edges": [],
    "parameters": [{"name": "day", "default": "2024-01-01"}, {"name": "n", "default": 3}],
}
WHEN = datetime(2031, 5, 4, 3, 2, 1, tzinfo=UTC)


class Team:
    """A migrated database with one tenant and one registered flow (labelled ``gpu``)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], tenant_id: str) -> None:
        self.sessions = sessions
        self.tenant_id = tenant_id
        self.store = create_requested_run

    async def create(self, **request: Any) -> Any:
        """A run of ``etl`` (or of ``flow``), at ``WHEN`` unless told otherwise."""
        request.setdefault("scheduled_start_time", WHEN)
        asked = RunRequest(flow_id=None, flow_name=request.pop("flow", "etl"), **request)
        return await self.store(self.sessions, self.tenant_id, asked)

    async def stored(self) -> dict[str, Any]:
        """Every run's columns, label rows and journal entries, and the journal's counter."""
        async with self.sessions() as session:
            runs = (await session.execute(select(FlowRun).order_by(FlowRun.created))).scalars().all()
            labels = (await session.execute(select(FlowRunLabel.flow_run_id, FlowRunLabel.label))).all()
            events = (
                (
                    await session.execute(
                        select(RunEvent)
                        .where(RunEvent.tenant_id == self.tenant_id)
                        .order_by(RunEvent.position)
                    )
                )
                .scalars()
                .all()
            )
            tenant = await session.get(Tenant, self.tenant_id)
            assert tenant is not None
            return {
                "runs": [{c.key: getattr(r, c.key) for c in FlowRun.__table__.columns} for r in runs],
                "labels": sorted(tuple(row) for row in labels),
                "events": [
                    {c.key: getattr(e, c.key) for c in RunEvent.__table__.columns if c.key != "id"}
                    for e in events
                ],
                "counter": tenant.feed_position,
            }


async def team(url: str) -> Team:
    engine = db.create_engine(url)
    await db.migrate(engine)
    sessions = db.sessionmaker(engine)
    async with sessions.begin() as session:
        made, _ = await auth.create_tenant(session, "team")
        await register_flow(session, made.id, FlowSpec("etl", STRUCTURE, None, ["gpu"], ONE_TASK_STORAGE))
    return Team(sessions, made.id)


def comparable(stored: dict[str, Any]) -> dict[str, Any]:
    """What two databases given the same requests must agree on: ids, clocks and the journal's
    transition ids, which each run makes afresh, left out."""
    fresh = {"id", "created", "updated", "flow_id", "flow_version_id", "tenant_id"}
    runs = [{k: v for k, v in run.items() if k not in fresh} for run in stored["runs"]]
    events = [
        {
            k: v
            for k, v in event.items()
            if k not in {"flow_run_id", "transition_id", "timestamp", "tenant_id"}
        }
        for event in stored["events"]
    ]
    order = {run["id"]: i for i, run in enumerate(stored["runs"])}  # ids differ; the order does not
    labels = sorted((order[run_id], label) for run_id, label in stored["labels"])
    return {"runs": runs, "labels": labels, "events": events,
            "counter": stored["counter"]}  # fmt: skip


async def every_kind_of_request(url: str, *, session_path: bool = False) -> tuple[list[Any], dict[str, Any]]:
    """One request of each kind a caller makes, in order: the answers (created or not, and the
    run's labels and parameters; or the error's type and message), then what was stored."""
    t = await team(url)
    if session_path:
        t.store = create_in_session
    requests: list[dict[str, Any]] = [
        {},
        {"parameters": {"day": "2024-03-01"}, "labels": ["eu", "gpu"]},
        {"idempotency_key": "k-1", "parameters": {"n": 7}, "context": {"who": "me"}},
        {"idempotency_key": "k-1", "parameters": {"n": 8}},  # the same key: the first run back
        {"idempotency_key": "  "},  # a blank key
        {"parameters": {"nope": 1}},  # not a parameter of the flow
        {"parameters": [1, 2]},  # not an object
        {"flow": "no-such-flow"},
        {"labels": ["x" * 500]},
        {"scheduled_start_time": datetime(2031, 1, 1)},  # naive: taken as UTC
    ]
    answers: list[Any] = []
    first_keyed = None
    for request in requests:
        try:
            made = await t.create(**request)
        except Exception as exc:  # noqa: BLE001 - the refusal is the answer compared
            answers.append((type(exc).__name__, str(exc)))
            continue
        if request.get("idempotency_key") == "k-1":
            first_keyed = first_keyed or made.run.id
            assert made.run.id == first_keyed
            assert made.version is not None and made.version.id == made.run.flow_version_id
        answers.append((made.created, made.run.labels, made.run.parameters, made.run.state, made.flow.name))
    return answers, comparable(await t.stored())


def test_postgres_stores_what_the_session_path_stores() -> None:
    """The two stores, given the same requests on PostgreSQL, answer the same and store the same
    rows, labels and journal; the refusals store nothing and move no counter."""
    if not postgres_url():
        pytest.skip(
            "NBFLOW_TEST_POSTGRES_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
    with fresh_postgres_database() as url:
        direct = run_in_own_loop(every_kind_of_request(url))
    with fresh_postgres_database() as url:
        session = run_in_own_loop(every_kind_of_request(url, session_path=True))
    assert direct[0] == session[0]
    assert direct[1] == session[1]
    answers, stored = direct
    assert [a[0] for a in answers] == [True, True, True, False, "RequestError", "ParameterError", "RequestError",
                                       "NotFound", "RequestError", True]  # fmt: skip
    assert answers[1][1] == ["eu", "gpu"] and answers[1][2] == {"day": "2024-03-01", "n": 3}
    assert len(stored["runs"]) == 4 and stored["counter"] == 4
    assert [e["position"] for e in stored["events"]] == [1, 2, 3, 4]
    assert all(e["state"] == "Scheduled" and e["previous"] is None for e in stored["events"])
    assert stored["runs"][1]["scheduled_start_time"] == WHEN
    assert stored["runs"][2]["context"] == {"who": "me"} and stored["runs"][2]["idempotency_key"] == "k-1"


def test_sqlite_answers_as_postgres(tmp_path: Path) -> None:
    """SQLite's session path gives the same answers and rows as PostgreSQL's statements."""
    sqlite = run_in_own_loop(every_kind_of_request(f"sqlite+aiosqlite:///{tmp_path}/nbflow.db"))
    if not postgres_url():
        pytest.skip("NBFLOW_TEST_POSTGRES_URL is not set: compared with nothing")
    with fresh_postgres_database() as url:
        postgres = run_in_own_loop(every_kind_of_request(url))
    assert sqlite == postgres


def test_racing_callers_with_one_key_make_one_run() -> None:
    """Twenty callers with the same idempotency key at once, over two engines (two server
    processes): one run, one journal entry, every caller answered with that run."""

    async def race(url: str) -> None:
        t = await team(url)
        other = Team(db.sessionmaker(db.create_engine(url)), t.tenant_id)
        made = await asyncio.gather(
            *((t if i % 2 else other).create(idempotency_key="once", parameters={"n": i}) for i in range(20))
        )
        assert len({m.run.id for m in made}) == 1
        assert sum(m.created for m in made) == 1
        stored = await t.stored()
        assert len(stored["runs"]) == 1 and len(stored["events"]) == 1 and stored["counter"] == 1
        assert stored["labels"] == [(made[0].run.id, "gpu")]

    on_postgres(race)


def test_runs_created_alongside_state_writes_keep_the_journal_whole() -> None:
    """Runs created while the session's path writes other runs' journal entries: positions stay
    consecutive and every entry belongs to a stored run."""

    async def mixed(url: str) -> None:
        t = await team(url)

        async def by_session() -> None:
            async with t.sessions.begin() as session:
                flow, version = await get_flow_and_latest_version(session, t.tenant_id, name="etl")
                await create_flow_run(session, t.tenant_id, flow, version=version)

        await asyncio.gather(*(t.create() if i % 2 else by_session() for i in range(30)))
        stored = await t.stored()
        assert [e["position"] for e in stored["events"]] == list(range(1, 31))
        assert {e["flow_run_id"] for e in stored["events"]} == {r["id"] for r in stored["runs"]}
        async with t.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(FlowRun)) == 30

    on_postgres(mixed)
