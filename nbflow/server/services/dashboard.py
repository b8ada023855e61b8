"""Read-only summaries the web UI shows: runs by state over a period, upcoming runs,
failing flows, agents and their heartbeats, scheduled runs no agent can take, each
flow's latest runs, a run's task-state history and searchable logs.

Every function takes an explicit session and the caller's tenant, and reads nothing
outside that tenant.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Select, case, func, select

from nbflow.core.record import LEVELS
from nbflow.core.states import StateType
from nbflow.server.db import checked_after
from nbflow.server.errors import RequestError
from nbflow.server.models import Agent, Flow, FlowRun, RunEvent, utcnow
from nbflow.server.services.runs import get_flow_run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

FAILED_STATES = (StateType.FAILED.value, StateType.TIMED_OUT.value, StateType.TRIGGER_FAILED.value)
ACTIVE_STATES = (StateType.SUBMITTED.value, StateType.RUNNING.value, StateType.CANCELLING.value)
MAX_BUCKETS = 96
MAX_HISTORY = 100_000
MAX_LOG_PAGE = 10_000


@dataclass
class Bucket:
    """One slice of a period: when it starts and how many runs are in each state."""

    start: datetime
    counts: dict[str, int] = field(default_factory=dict)


async def run_counts(
    session: AsyncSession, tenant_id: str, since: datetime, until: datetime
) -> dict[str, int]:
    """How many flow runs scheduled in [since, until) are in each state."""
    rows = await session.execute(
        select(FlowRun.state, func.count())
        .where(
            FlowRun.tenant_id == tenant_id,
            FlowRun.scheduled_start_time >= since,
            FlowRun.scheduled_start_time < until,
        )
        .group_by(FlowRun.state)
    )
    return {state: count for state, count in rows.all()}


async def run_buckets(
    session: AsyncSession, tenant_id: str, since: datetime, until: datetime, buckets: int
) -> list[Bucket]:
    """The same counts split into ``buckets`` equal time slices (a histogram)."""
    if not 1 <= buckets <= MAX_BUCKETS:
        raise RequestError(f"buckets must be between 1 and {MAX_BUCKETS}, got {buckets}")
    if until <= since:
        raise RequestError("the period's end must be after its start")
    width = (until - since) / buckets
    out = [Bucket(since + width * i) for i in range(buckets)]
    rows = await session.execute(
        select(FlowRun.scheduled_start_time, FlowRun.state).where(
            FlowRun.tenant_id == tenant_id,
            FlowRun.scheduled_start_time >= since,
            FlowRun.scheduled_start_time < until,
        )
    )
    for when, state in rows.all():
        index = min(buckets - 1, int((when - since) / width))
        counts = out[index].counts
        counts[state] = counts.get(state, 0) + 1
    return out


async def upcoming_runs(session: AsyncSession, tenant_id: str, *, limit: int = 10) -> list[FlowRun]:
    """Scheduled runs not yet due, soonest first."""
    return list(
        (
            await session.execute(
                select(FlowRun)
                .where(
                    FlowRun.tenant_id == tenant_id,
                    FlowRun.state == StateType.SCHEDULED.value,
                    FlowRun.scheduled_start_time > utcnow(),
                )
                .order_by(FlowRun.scheduled_start_time, FlowRun.id)
                .limit(limit)
            )
        ).scalars()
    )


@dataclass
class FailingFlow:
    """A flow with failed runs in the period: how many of how many, and the latest failure."""

    flow: Flow
    failed: int
    runs: int
    last_failure: datetime


async def failing_flows(session: AsyncSession, tenant_id: str, since: datetime) -> list[FailingFlow]:
    """Flows with failed runs since ``since``, most failures first."""
    is_failed = FlowRun.state.in_(FAILED_STATES)
    failed = func.sum(case((is_failed, 1), else_=0))
    last = func.max(case((is_failed, FlowRun.scheduled_start_time), else_=None))
    rows = (
        await session.execute(
            select(Flow, func.count(), failed, last)
            .join(FlowRun, FlowRun.flow_id == Flow.id)
            .where(
                Flow.tenant_id == tenant_id,
                FlowRun.scheduled_start_time >= since,
                FlowRun.scheduled_start_time <= utcnow(),
            )
            .group_by(Flow.id)
        )
    ).all()
    out = [
        FailingFlow(flow, int(failures or 0), runs, when) for flow, runs, failures, when in rows if failures
    ]
    return sorted(out, key=lambda f: (-f.failed, f.flow.name))


@dataclass
class AgentInfo:
    """An agent row, whether it is online (heard from within the timeout) and its active runs."""

    agent: Agent
    online: bool
    active_runs: int


async def agents(
    session: AsyncSession, tenant_id: str, *, seen_since: datetime, online_after: datetime
) -> list[AgentInfo]:
    """Agents heard from since ``seen_since``, newest heartbeat first, with their active runs."""
    rows = (
        await session.execute(
            select(Agent)
            .where(Agent.tenant_id == tenant_id, Agent.last_seen >= seen_since)
            .order_by(Agent.last_seen.desc(), Agent.name)
        )
    ).scalars()
    found = list(rows)
    active: dict[str, int] = {}
    if found:
        counts = await session.execute(
            select(FlowRun.agent_id, func.count())
            .where(
                FlowRun.tenant_id == tenant_id,
                FlowRun.agent_id.in_([a.id for a in found]),
                FlowRun.state.in_(ACTIVE_STATES),
            )
            .group_by(FlowRun.agent_id)
        )
        active = {agent_id: n for agent_id, n in counts.all() if agent_id is not None}
    return [AgentInfo(a, a.last_seen >= online_after, active.get(a.id, 0)) for a in found]


@dataclass
class StrandedRuns:
    """Scheduled runs needing labels that no online agent has."""

    labels: list[str]
    count: int
    flows: list[str]
    next_start: datetime


async def stranded_runs(
    session: AsyncSession, tenant_id: str, *, online_after: datetime, limit: int = 5000
) -> list[StrandedRuns]:
    """Group scheduled runs that no online agent's labels can take, by the labels they need."""
    label_sets = [
        set(labels)
        for (labels,) in (
            await session.execute(
                select(Agent.labels).where(Agent.tenant_id == tenant_id, Agent.last_seen >= online_after)
            )
        ).all()
    ]
    runs = (
        await session.execute(
            select(FlowRun.labels, FlowRun.scheduled_start_time, Flow.name)
            .join(Flow, Flow.id == FlowRun.flow_id)
            .where(FlowRun.tenant_id == tenant_id, FlowRun.state == StateType.SCHEDULED.value)
            .order_by(FlowRun.scheduled_start_time)
            .limit(limit)
        )
    ).all()
    groups: dict[tuple[str, ...], StrandedRuns] = {}
    for labels, when, name in runs:
        need = set(labels)
        if any(need <= have for have in label_sets):
            continue
        key = tuple(sorted(need))
        group = groups.setdefault(key, StrandedRuns(list(key), 0, [], when))
        group.count += 1
        if name not in group.flows:
            group.flows.append(name)
    return list(groups.values())


async def recent_runs(
    session: AsyncSession, tenant_id: str, flow_ids: list[str], *, per_flow: int
) -> dict[str, list[FlowRun]]:
    """The latest ``per_flow`` runs (due or done, newest first) of each flow."""
    if not 1 <= per_flow <= 50:
        raise RequestError(f"per_flow must be between 1 and 50, got {per_flow}")
    rank = (
        func.row_number()
        .over(partition_by=FlowRun.flow_id, order_by=(FlowRun.scheduled_start_time.desc(), FlowRun.id))
        .label("rank")
    )
    inner = (
        select(FlowRun.id, rank)
        .where(
            FlowRun.tenant_id == tenant_id,
            FlowRun.flow_id.in_(flow_ids),
            FlowRun.scheduled_start_time <= utcnow(),
        )
        .subquery()
    )
    rows = (
        await session.execute(
            select(FlowRun)
            .join(inner, inner.c.id == FlowRun.id)
            .where(inner.c.rank <= per_flow)
            .order_by(FlowRun.scheduled_start_time.desc(), FlowRun.id)
        )
    ).scalars()
    out: dict[str, list[FlowRun]] = defaultdict(list)
    for run in rows:
        out[run.flow_id].append(run)
    return out


def _history(tenant_id: str, flow_run_id: str, base: Select) -> Select:  # type: ignore[type-arg]
    return (
        base.where(
            RunEvent.flow_run_id == flow_run_id,
            checked_after(RunEvent.tenant_id) == tenant_id,
            RunEvent.kind == "state",
        )
        .order_by(RunEvent.position)
        .limit(MAX_HISTORY)
    )


async def run_history(session: AsyncSession, tenant_id: str, flow_run_id: str) -> list[RunEvent]:
    """Every state change of a run and its tasks in recorded order: attempts for the timeline."""
    await get_flow_run(session, tenant_id, flow_run_id)  # NotFound outside the tenant
    return list((await session.execute(_history(tenant_id, flow_run_id, select(RunEvent)))).scalars())


HISTORY_ROW = (
    RunEvent.position, RunEvent.task, RunEvent.state, RunEvent.message, RunEvent.attempt, RunEvent.timestamp,
    RunEvent.transition_id,
)  # fmt: skip


async def run_history_rows(session: AsyncSession, tenant_id: str, flow_run_id: str) -> list[list[object]]:
    """The same history as rows ``[position, task, state, message, attempt, timestamp,
    transition_id]``: a 1,000-task run's thousands of states load in a few tens of ms."""
    await get_flow_run(session, tenant_id, flow_run_id)
    rows = await session.execute(_history(tenant_id, flow_run_id, select(*HISTORY_ROW)))
    return [list(row) for row in rows.all()]


@dataclass
class LogQuery:
    """What a log search asks for: one run, levels or a minimum level, a task, text, a page."""

    flow_run_id: str
    levels: list[str] | None = None
    min_level: str | None = None
    search: str | None = None
    task_slug: str | None = None
    after_id: int = 0
    limit: int = 1000


def _levels(query: LogQuery) -> list[str] | None:
    """The levels a query asks for (``LEVELS`` is in order, so a minimum level is a slice)."""
    chosen: set[str] | None = None
    if query.levels:
        chosen = {level.upper() for level in query.levels}
        unknown = sorted(chosen - set(LEVELS))
        if unknown:
            raise RequestError(f"unknown log level {unknown[0]!r}; levels: {', '.join(LEVELS)}")
    if query.min_level:
        floor = query.min_level.upper()
        if floor not in LEVELS:
            raise RequestError(f"unknown log level {query.min_level!r}; levels: {', '.join(LEVELS)}")
        above = set(LEVELS[LEVELS.index(floor) :])
        chosen = above if chosen is None else chosen & above
    return sorted(chosen) if chosen is not None else None


async def search_logs(session: AsyncSession, tenant_id: str, query: LogQuery) -> list[RunEvent]:
    """A run's log lines after position ``after_id``, filtered by level, task and text
    (case-insensitive, ``%`` and ``_`` are plain text)."""
    statement = await _log_statement(session, tenant_id, query, select(RunEvent))
    return list((await session.execute(statement)).scalars())


LOG_ROW = (
    RunEvent.position,
    RunEvent.seq,
    RunEvent.task,
    RunEvent.level,
    RunEvent.message,
    RunEvent.timestamp,
)


async def log_rows(session: AsyncSession, tenant_id: str, query: LogQuery) -> tuple[list[list[object]], bool]:
    """The same lines as rows ``[position, seq, task, level, message, timestamp]`` (no ORM
    objects, so 10,000 lines load and serialize in a few tens of milliseconds), and whether
    more lines follow."""
    statement = await _log_statement(session, tenant_id, query, select(*LOG_ROW), extra=1)
    rows = [list(row) for row in (await session.execute(statement)).all()]
    return rows[: query.limit], len(rows) > query.limit


async def _log_statement(
    session: AsyncSession, tenant_id: str, query: LogQuery, base: Select, *, extra: int = 0
) -> Select:  # type: ignore[type-arg]
    """The filtered, ordered, bounded query both forms share."""
    if not 1 <= query.limit <= MAX_LOG_PAGE:
        raise RequestError(f"limit must be between 1 and {MAX_LOG_PAGE}, got {query.limit}")
    await get_flow_run(session, tenant_id, query.flow_run_id)
    statement = base.where(
        RunEvent.flow_run_id == query.flow_run_id,
        checked_after(RunEvent.tenant_id) == tenant_id,
        RunEvent.kind == "log",
        RunEvent.position > query.after_id,
    )
    levels = _levels(query)
    if levels is not None:
        statement = statement.where(RunEvent.level.in_(levels))
    if query.task_slug is not None:
        statement = statement.where(RunEvent.task == query.task_slug)
    if query.search:
        needle = query.search.lower()
        statement = statement.where(func.lower(RunEvent.message).contains(needle, autoescape=True))
    return statement.order_by(RunEvent.position).limit(query.limit + extra)


def period(hours: float) -> tuple[datetime, datetime]:
    """(now - hours, now), checked: the UI's periods are an hour to 90 days."""
    if not 1 <= hours <= 24 * 90:
        raise RequestError(f"hours must be between 1 and {24 * 90}, got {hours:g}")
    now = utcnow()
    return now - timedelta(hours=hours), now
