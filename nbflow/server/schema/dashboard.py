"""Read-side queries for the web UI: the dashboard, agents, flows' latest runs, a run's
task-state history (attempts for the timeline) and log search.

``DashboardQuery`` is merged into the schema's ``Query``; every field is scoped to the
caller's tenant and needs a key that may read (admin, user, read-only).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import strawberry
from strawberry.scalars import JSON

from nbflow.server.errors import RequestError
from nbflow.server.models import RunEvent, utcnow
from nbflow.server.schema.context import CanRead, ctx
from nbflow.server.schema.types import FlowRunType, FlowType, LogEntry, StateCount, StateEntry
from nbflow.server.schema.types import state_counts as _counts
from nbflow.server.services import dashboard as service

MAX_FLOWS = 500


@strawberry.type
class RunBucket:
    """Run counts by state in one slice of the period."""

    start: datetime
    counts: list[StateCount]


@strawberry.type
class FailingFlowType:
    """A flow with failed runs in the period."""

    flow: FlowType
    failed: int
    runs: int
    last_failure: datetime


@strawberry.type
class StrandedRunsType:
    """Scheduled runs that need labels no online agent has, grouped by those labels."""

    labels: list[str] = strawberry.field(description="What the runs need: no online agent has all of them.")
    count: int
    flows: list[str]
    next_start: datetime


@strawberry.type
class AgentType:
    """An agent: its labels, last heartbeat, whether it is online, and the runs it has."""

    id: str
    name: str
    labels: list[str]
    last_seen: datetime = strawberry.field(description="The agent's last heartbeat.")
    created: datetime
    online: bool = strawberry.field(description="Heard from within the server's heartbeat timeout.")
    active_runs: int


@strawberry.type
class Dashboard:
    """Everything the dashboard shows for one period."""

    since: datetime
    until: datetime
    counts: list[StateCount]
    buckets: list[RunBucket]
    upcoming: list[FlowRunType]
    failing_flows: list[FailingFlowType]
    stranded: list[StrandedRunsType]
    agents: list[AgentType]


@strawberry.type
class FlowRecentRuns:
    """A flow's latest runs."""

    flow_id: str
    runs: list[FlowRunType]


@strawberry.type
class RunStateEntry(StateEntry):
    """One state change of a run (``task_slug`` null) or of one of its tasks."""

    task_run_id: str | None
    task_slug: str | None

    @classmethod
    def from_row(cls, row: RunEvent, **more: Any) -> RunStateEntry:
        """The entry a stored state change makes, with its task."""
        return super().from_row(row, task_run_id=row.task_run_id, task_slug=row.task, **more)  # type: ignore[return-value]


@strawberry.type
class LogRows:
    """A page of log lines as compact rows."""

    rows: JSON
    count: int
    last_id: int = strawberry.field(description="The last row's id (afterId for the next page).")
    more: bool = strawberry.field(description="More lines follow: ask again with afterId = lastId.")


def _online_after(info: strawberry.Info) -> datetime:
    """Agents heard from after this are online: the server's heartbeat timeout."""
    timeout = float(getattr(ctx(info).settings, "heartbeat_timeout", 60.0))
    return utcnow() - timedelta(seconds=timeout)


async def _agents(info: strawberry.Info, hours: float) -> list[AgentType]:
    """Agents heard from in the last ``hours``, as GraphQL objects."""
    c = ctx(info)
    since, _ = service.period(hours)
    async with c.sessions() as session:
        found = await service.agents(session, c.tenant_id, seen_since=since, online_after=_online_after(info))
    return [
        AgentType(
            id=a.agent.id,
            name=a.agent.name,
            labels=list(a.agent.labels),
            last_seen=a.agent.last_seen,
            created=a.agent.created,
            online=a.online,
            active_runs=a.active_runs,
        )  # fmt: skip
        for a in found
    ]


@strawberry.type
class DashboardQuery:
    """The web UI's read-side queries (merged into ``Query``)."""

    @strawberry.field(
        permission_classes=[CanRead],
        description="Runs by state over the last `hours` (split in `buckets`), upcoming runs, "
        "failing flows, agents, and scheduled runs no online agent can take.",
    )
    async def dashboard(self, info: strawberry.Info, hours: float = 24, buckets: int = 24) -> Dashboard:
        """The dashboard's figures for the last ``hours``."""
        c = ctx(info)
        since, until = service.period(hours)
        async with c.sessions() as session:
            counts = await service.run_counts(session, c.tenant_id, since, until)
            slices = await service.run_buckets(session, c.tenant_id, since, until, buckets)
            upcoming = await FlowRunType.many(session, await service.upcoming_runs(session, c.tenant_id))
            failing = await service.failing_flows(session, c.tenant_id, since)
            stranded = await service.stranded_runs(session, c.tenant_id, online_after=_online_after(info))
        return Dashboard(
            since=since,
            until=until,
            counts=_counts(counts),
            buckets=[RunBucket(start=b.start, counts=_counts(b.counts)) for b in slices],
            upcoming=upcoming,
            failing_flows=[
                FailingFlowType(
                    flow=FlowType.from_row(f.flow), failed=f.failed, runs=f.runs, last_failure=f.last_failure
                )
                for f in failing
            ],
            stranded=[
                StrandedRunsType(labels=s.labels, count=s.count, flows=s.flows, next_start=s.next_start)
                for s in stranded
            ],
            agents=await _agents(info, hours),
        )

    @strawberry.field(permission_classes=[CanRead], description="Agents heard from in the last `hours`.")
    async def agents(self, info: strawberry.Info, hours: float = 24) -> list[AgentType]:
        """Agents heard from in the last ``hours``, newest heartbeat first."""
        return await _agents(info, hours)

    @strawberry.field(permission_classes=[CanRead], description="Each flow's latest runs, newest first.")
    async def recent_runs(
        self, info: strawberry.Info, flow_ids: list[str], per_flow: int = 10
    ) -> list[FlowRecentRuns]:
        """Each flow's latest ``per_flow`` runs that are due or done."""
        c = ctx(info)
        if len(flow_ids) > MAX_FLOWS:
            raise RequestError(f"at most {MAX_FLOWS} flows per call, got {len(flow_ids)}")
        async with c.sessions() as session:
            found = await service.recent_runs(session, c.tenant_id, flow_ids, per_flow=per_flow)
        return [
            FlowRecentRuns(flow_id=f, runs=[FlowRunType.from_row(r) for r in found.get(f, [])])
            for f in flow_ids
        ]

    @strawberry.field(
        permission_classes=[CanRead],
        description="Every state change of a run and its tasks, in recorded order (attempts for a timeline).",
    )
    async def run_history(self, info: strawberry.Info, flow_run_id: str) -> list[RunStateEntry]:
        """The run's state history, flow and tasks together."""
        rows = await ctx(info).read(service.run_history, flow_run_id)
        return [RunStateEntry.from_row(r) for r in rows]

    @strawberry.field(
        permission_classes=[CanRead],
        description="runHistory in a compact form: a JSON list of "
        "[position, taskSlug, state, message, attempt, timestamp, transitionId].",
    )
    async def run_history_rows(self, info: strawberry.Info, flow_run_id: str) -> JSON:
        """The run's state history as compact rows (what the web UI's run page loads)."""
        return await ctx(info).read(service.run_history_rows, flow_run_id)  # type: ignore[return-value]

    @strawberry.field(
        permission_classes=[CanRead],
        description="A run's log lines after `afterId`: by levels or a minimum level, task, and text.",
    )
    async def run_logs(
        self,
        info: strawberry.Info,
        flow_run_id: str,
        levels: list[str] | None = None,
        min_level: str | None = None,
        search: str | None = None,
        task_slug: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[LogEntry]:
        """A run's log lines, filtered and paged."""
        query = service.LogQuery(flow_run_id, levels, min_level, search, task_slug, after_id, limit)
        return [LogEntry.from_row(r) for r in await ctx(info).read(service.search_logs, query)]

    @strawberry.field(
        permission_classes=[CanRead],
        description="runLogs in a compact form for large pages: `rows` is a JSON list of "
        "[id, seq, taskSlug, level, message, timestamp] (id: the position); page on with afterId = lastId.",
    )
    async def run_log_rows(
        self,
        info: strawberry.Info,
        flow_run_id: str,
        levels: list[str] | None = None,
        min_level: str | None = None,
        search: str | None = None,
        task_slug: str | None = None,
        after_id: int = 0,
        limit: int = 10_000,
    ) -> LogRows:
        """The same lines as ``runLogs``, compact: one JSON value for a whole page."""
        query = service.LogQuery(flow_run_id, levels, min_level, search, task_slug, after_id, limit)
        rows, more = await ctx(info).read(service.log_rows, query)
        last_id = rows[-1][0] if rows else after_id
        return LogRows(rows=rows, count=len(rows), last_id=last_id, more=more)  # type: ignore[arg-type]
