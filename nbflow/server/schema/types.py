"""GraphQL object types, built from ORM rows; nested fields load lazily."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON

from nbflow.core.record import StateResult
from nbflow.server.models import Flow, FlowRun, FlowVersion, RunEvent, TaskRun
from nbflow.server.schema.context import CanRead, ctx
from nbflow.server.services import flows as flow_service
from nbflow.server.services import logs as log_service
from nbflow.server.services import runs as run_service

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


@strawberry.type(description="One recorded state change of a flow run or task run.")
class StateEntry:
    state: str
    previous: str | None
    message: str
    attempt: int
    timestamp: float
    transition_id: str
    position: int
    execution: int

    @classmethod
    def from_row(cls, row: RunEvent, **more: Any) -> StateEntry:
        """The entry a stored state change makes (``more``: a subclass's own fields)."""
        return cls(
            state=row.state or "", previous=row.previous, message=row.message, attempt=row.attempt,
            timestamp=row.timestamp, transition_id=row.transition_id or "", position=row.position,
            execution=row.execution, **more,
        )  # fmt: skip


@strawberry.type(description="One log line; `id` is its position in the tenant's record (read on after it).")
class LogEntry:
    id: int
    seq: int
    execution: int
    task_slug: str | None
    task_run_id: str | None
    level: str
    message: str
    timestamp: float

    @classmethod
    def from_row(cls, row: RunEvent) -> LogEntry:
        """The entry a stored log line makes."""
        return cls(
            id=row.position, seq=row.seq or 0, execution=row.execution, task_slug=row.task,
            task_run_id=row.task_run_id, level=row.level or "INFO", message=row.message, timestamp=row.timestamp,
        )  # fmt: skip


@strawberry.type
class FlowVersionType:
    """One registered version of a flow: its structure, schedule, labels and storage reference."""

    id: str
    flow_id: str
    version: int
    structure: JSON
    parameters: JSON
    schedule: JSON | None
    labels: list[str]
    storage: JSON
    max_resubmits: int
    private: bool
    created: datetime

    @classmethod
    def from_row(cls, row: FlowVersion) -> FlowVersionType:
        """The GraphQL object of a stored version."""
        return cls(
            id=row.id, flow_id=row.flow_id, version=row.version, structure=row.structure, parameters=row.parameters,
            schedule=row.schedule, labels=list(row.labels), storage=row.storage, max_resubmits=row.max_resubmits,
            private=row.private,
            created=row.created,
        )  # fmt: skip

    @strawberry.field
    async def flow(self, info: strawberry.Info) -> FlowType:
        """The flow this is a version of."""
        return FlowType.from_row(await ctx(info).read(flow_service.get_flow, flow_id=self.flow_id))


@strawberry.type
class FlowType:
    """A flow: every registration of one name in a tenant."""

    id: str
    name: str
    schedule_active: bool
    created: datetime

    @classmethod
    def from_row(cls, row: Flow) -> FlowType:
        """The GraphQL object of a stored flow."""
        return cls(id=row.id, name=row.name, schedule_active=row.schedule_active, created=row.created)

    @strawberry.field(permission_classes=[CanRead])
    async def versions(self, info: strawberry.Info) -> list[FlowVersionType]:
        """Every version, oldest first."""
        async with ctx(info).sessions() as session:
            return [FlowVersionType.from_row(v) for v in await flow_service.versions(session, self.id)]

    @strawberry.field(permission_classes=[CanRead])
    async def latest_version(self, info: strawberry.Info) -> FlowVersionType | None:
        """The newest version (what new runs use)."""
        async with ctx(info).sessions() as session:
            row = await flow_service.latest_version(session, self.id)
            return FlowVersionType.from_row(row) if row else None


@strawberry.type
class StateCount:
    """How many runs (or a mapped task's children) are in one state."""

    state: str
    count: int


def state_counts(counts: dict[str, int]) -> list[StateCount]:
    """State counts in a stable order."""
    return [StateCount(state=s, count=n) for s, n in sorted(counts.items())]


@strawberry.type
class TaskRunType:
    """One run of one task: its current state and times. A mapped task's children are task
    runs named ``slug[i]`` (``map_index`` i); the parent carries their counts by state."""

    id: str
    flow_run_id: str
    task_slug: str
    state: str
    message: str
    attempt: int
    version: int
    execution: int
    start_time: datetime | None
    end_time: datetime | None
    map_index: int | None = None
    result_ref: str | None = strawberry.field(
        default=None, description="Where its result is stored and its sha256 (never the data)."
    )
    children: list[StateCount] = strawberry.field(default_factory=list)

    @classmethod
    def from_row(cls, row: TaskRun) -> TaskRunType:
        """The GraphQL object of a stored task run."""
        return cls(
            id=row.id, flow_run_id=row.flow_run_id, task_slug=row.task_slug, state=row.state,
            message=row.state_message, attempt=row.attempt, version=row.version, execution=row.execution,
            start_time=row.start_time, end_time=row.end_time, map_index=run_service.map_index(row.task_slug),
            result_ref=row.result_ref,
        )  # fmt: skip

    @strawberry.field(permission_classes=[CanRead])
    async def states(self, info: strawberry.Info) -> list[StateEntry]:
        """Every state change of this task run, in recorded order."""
        c = ctx(info)
        async with c.sessions() as session:
            return [
                StateEntry.from_row(r)
                for r in await run_service.state_history(session, c.tenant_id, task_run_id=self.id)
            ]

    @strawberry.field
    async def flow_run(self, info: strawberry.Info) -> FlowRunType:
        """The flow run this task run belongs to."""
        c = ctx(info)
        async with c.sessions() as session:
            return FlowRunType.from_row(
                await run_service.get_flow_run(session, c.tenant_id, self.flow_run_id)
            )


@strawberry.type
class FlowRunType:
    """One run of a flow: parameters, labels, state, times, claim."""

    id: str
    flow_id: str
    flow_version_id: str
    parameters: JSON
    labels: list[str]
    idempotency_key: str | None
    state: str
    message: str
    version: int
    scheduled_start_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    agent_id: str | None
    resubmits: int
    execution: int = strawberry.field(description="The claim (execution) that runs it now; 0 before any.")
    context: JSON = strawberry.field(
        default_factory=dict, description="The run's own nbflow.context values (-c key=value)."
    )
    restart_of: str | None = strawberry.field(default=None, description="The failed run this one restarts.")
    # What the resolver that made this object had loaded already (saves a query each).
    known_flow: strawberry.Private[FlowType | None] = None
    known_version: strawberry.Private[FlowVersionType | None] = None

    @classmethod
    def from_row(
        cls, row: FlowRun, *, flow: Flow | None = None, version: FlowVersion | None = None
    ) -> FlowRunType:
        """The GraphQL object of a stored flow run (with its flow and version when at hand)."""
        return cls(
            id=row.id, flow_id=row.flow_id, flow_version_id=row.flow_version_id, parameters=row.parameters,
            labels=list(row.labels), idempotency_key=row.idempotency_key, state=row.state,
            message=row.state_message, version=row.version, scheduled_start_time=row.scheduled_start_time,
            start_time=row.start_time, end_time=row.end_time, agent_id=row.agent_id, resubmits=row.resubmits,
            execution=row.execution, context=row.context or {}, restart_of=row.restart_of,
            known_flow=FlowType.from_row(flow) if flow is not None else None,
            known_version=FlowVersionType.from_row(version) if version is not None else None,
        )  # fmt: skip

    @classmethod
    async def many(cls, session: AsyncSession, rows: Iterable[FlowRun]) -> list[FlowRunType]:
        """GraphQL objects of many runs, their flows and versions loaded in two queries
        (not two per run: a page of 50 runs asked for its flows' names made 100 queries)."""
        rows = list(rows)
        if not rows:
            return []
        flow_ids = {r.flow_id for r in rows}
        version_ids = {r.flow_version_id for r in rows}
        flows = {
            f.id: f for f in (await session.execute(select(Flow).where(Flow.id.in_(flow_ids)))).scalars()
        }
        versions = {
            v.id: v
            for v in (
                await session.execute(select(FlowVersion).where(FlowVersion.id.in_(version_ids)))
            ).scalars()
        }
        return [
            cls.from_row(r, flow=flows.get(r.flow_id), version=versions.get(r.flow_version_id)) for r in rows
        ]

    @strawberry.field
    async def flow(self, info: strawberry.Info) -> FlowType:
        """The run's flow."""
        if self.known_flow is not None:
            return self.known_flow
        return FlowType.from_row(await ctx(info).read(flow_service.get_flow, flow_id=self.flow_id))

    @strawberry.field
    async def flow_version(self, info: strawberry.Info) -> FlowVersionType:
        """The flow version the run runs."""
        if self.known_version is not None:
            return self.known_version
        return FlowVersionType.from_row(await ctx(info).read(flow_service.get_version, self.flow_version_id))

    @strawberry.field(permission_classes=[CanRead])
    async def task_runs(self, info: strawberry.Info, include_children: bool = True) -> list[TaskRunType]:
        """The run's task runs, in the order they started; a mapped task's carry its children's
        counts by state (``include_children: false`` leaves the children's own rows out)."""
        rows = await ctx(info).read(run_service.task_runs, self.id)
        children = run_service.child_counts(rows)
        out = []
        for row in rows:
            task_run = TaskRunType.from_row(row)
            if task_run.map_index is not None and not include_children:
                continue
            task_run.children = state_counts(children.get(row.task_slug, {}))
            out.append(task_run)
        return out

    @strawberry.field(permission_classes=[CanRead])
    async def states(self, info: strawberry.Info) -> list[StateEntry]:
        """Every state change of the flow run itself, in recorded order."""
        rows = await ctx(info).read(run_service.state_history, flow_run_id=self.id)
        return [StateEntry.from_row(r) for r in rows]

    @strawberry.field(permission_classes=[CanRead])
    async def logs(
        self, info: strawberry.Info, task_slug: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[LogEntry]:
        """Log lines in recorded order, after ``after_id`` (a line's ``id``)."""
        c = ctx(info)
        async with c.sessions() as session:
            rows = await log_service.read_logs(
                session,
                c.tenant_id,
                self.id,
                task_slug=task_slug,
                after_id=after_id,
                limit=min(limit, 10_000),
            )
            return [LogEntry.from_row(r) for r in rows]


@strawberry.type(description="What a heartbeat tells an agent about one of its runs.")
class RunStatusType:
    """A run's id, state, version and execution: all an agent needs to keep it or stop it."""

    id: str
    state: str
    version: int
    execution: int

    @classmethod
    def from_row(cls, row: FlowRun) -> RunStatusType:
        """The status of a stored run."""
        return cls(id=row.id, state=row.state, version=row.version, execution=row.execution)


@strawberry.type
class FlowRunPage:
    """A page of flow runs, the total, and where the next page starts (by offset, or by key:
    ``nextCursor`` is null on a page that was not full)."""

    items: list[FlowRunType]
    total: int
    next_offset: int | None
    next_cursor: str | None


@strawberry.type
class RegisteredFlow:
    """What registration answers: the flow, the version, and whether it is new."""

    flow: FlowType
    version: FlowVersionType
    created: bool


@strawberry.type
class CreatedFlowRun:
    """What run creation answers: the run, and whether this call made it."""

    flow_run: FlowRunType
    created: bool


@strawberry.type(name="StateResultType")
class StateResultType(StateResult):
    """The answer to one proposed state change (``nbflow.core.record.StateResult``)."""


@strawberry.type
class NewApiKey:
    """A key just made (its secret is shown here once)."""

    id: str
    name: str
    role: str
    key: str = strawberry.field(description="Shown once: store it now.")


@strawberry.type
class ApiKeyInfo:
    """A key as listed: never its secret."""

    id: str
    name: str
    role: str
    prefix: str
    created: datetime
    revoked: bool


@strawberry.type
class Me:
    """The caller's tenant and role."""

    tenant_id: str
    tenant_name: str
    role: str
