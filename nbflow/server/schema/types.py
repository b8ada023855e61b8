"""GraphQL object types, built from ORM rows; nested fields load lazily."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from nbflow.server.models import Flow, FlowRun, FlowRunState, FlowVersion, Log, TaskRun, TaskRunState
from nbflow.server.schema.context import ctx
from nbflow.server.services import flows as flow_service
from nbflow.server.services import logs as log_service
from nbflow.server.services import runs as run_service


@strawberry.type
class StateEntry:
    state: str
    message: str
    attempt: int
    timestamp: float

    @classmethod
    def from_row(cls, row: FlowRunState | TaskRunState) -> StateEntry:
        return cls(
            state=row.state, message=row.message, attempt=getattr(row, "attempt", 0), timestamp=row.timestamp
        )


@strawberry.type
class LogEntry:
    id: int
    seq: int
    task_slug: str | None
    task_run_id: str | None
    level: str
    message: str
    timestamp: float

    @classmethod
    def from_row(cls, row: Log) -> LogEntry:
        return cls(
            id=row.id, seq=row.seq, task_slug=row.task_slug, task_run_id=row.task_run_id,
            level=row.level, message=row.message, timestamp=row.timestamp,
        )  # fmt: skip


@strawberry.type
class FlowVersionType:
    id: str
    flow_id: str
    version: int
    structure: JSON
    parameters: JSON
    schedule: JSON | None
    labels: list[str]
    storage: JSON
    max_resubmits: int
    created: datetime

    @classmethod
    def from_row(cls, row: FlowVersion) -> FlowVersionType:
        return cls(
            id=row.id, flow_id=row.flow_id, version=row.version, structure=row.structure, parameters=row.parameters,
            schedule=row.schedule, labels=list(row.labels), storage=row.storage, max_resubmits=row.max_resubmits,
            created=row.created,
        )  # fmt: skip

    @strawberry.field
    async def flow(self, info: strawberry.Info) -> FlowType:
        c = ctx(info)
        async with c.sessions() as session:
            return FlowType.from_row(await flow_service.get_flow(session, c.tenant_id, flow_id=self.flow_id))


@strawberry.type
class FlowType:
    id: str
    name: str
    schedule_active: bool
    created: datetime

    @classmethod
    def from_row(cls, row: Flow) -> FlowType:
        return cls(id=row.id, name=row.name, schedule_active=row.schedule_active, created=row.created)

    @strawberry.field
    async def versions(self, info: strawberry.Info) -> list[FlowVersionType]:
        async with ctx(info).sessions() as session:
            return [FlowVersionType.from_row(v) for v in await flow_service.versions(session, self.id)]

    @strawberry.field
    async def latest_version(self, info: strawberry.Info) -> FlowVersionType | None:
        async with ctx(info).sessions() as session:
            row = await flow_service.latest_version(session, self.id)
            return FlowVersionType.from_row(row) if row else None


@strawberry.type
class TaskRunType:
    id: str
    flow_run_id: str
    task_slug: str
    state: str
    message: str
    attempt: int
    version: int
    start_time: datetime | None
    end_time: datetime | None

    @classmethod
    def from_row(cls, row: TaskRun) -> TaskRunType:
        return cls(
            id=row.id, flow_run_id=row.flow_run_id, task_slug=row.task_slug, state=row.state,
            message=row.state_message, attempt=row.attempt, version=row.version,
            start_time=row.start_time, end_time=row.end_time,
        )  # fmt: skip

    @strawberry.field
    async def states(self, info: strawberry.Info) -> list[StateEntry]:
        c = ctx(info)
        async with c.sessions() as session:
            return [
                StateEntry.from_row(r)
                for r in await run_service.task_run_states(session, c.tenant_id, self.id)
            ]

    @strawberry.field
    async def flow_run(self, info: strawberry.Info) -> FlowRunType:
        c = ctx(info)
        async with c.sessions() as session:
            return FlowRunType.from_row(
                await run_service.get_flow_run(session, c.tenant_id, self.flow_run_id)
            )


@strawberry.type
class FlowRunType:
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

    @classmethod
    def from_row(cls, row: FlowRun) -> FlowRunType:
        return cls(
            id=row.id, flow_id=row.flow_id, flow_version_id=row.flow_version_id, parameters=row.parameters,
            labels=list(row.labels), idempotency_key=row.idempotency_key, state=row.state,
            message=row.state_message, version=row.version, scheduled_start_time=row.scheduled_start_time,
            start_time=row.start_time, end_time=row.end_time, agent_id=row.agent_id, resubmits=row.resubmits,
        )  # fmt: skip

    @strawberry.field
    async def flow(self, info: strawberry.Info) -> FlowType:
        c = ctx(info)
        async with c.sessions() as session:
            return FlowType.from_row(await flow_service.get_flow(session, c.tenant_id, flow_id=self.flow_id))

    @strawberry.field
    async def flow_version(self, info: strawberry.Info) -> FlowVersionType:
        c = ctx(info)
        async with c.sessions() as session:
            return FlowVersionType.from_row(
                await flow_service.get_version(session, c.tenant_id, self.flow_version_id)
            )

    @strawberry.field
    async def task_runs(self, info: strawberry.Info) -> list[TaskRunType]:
        c = ctx(info)
        async with c.sessions() as session:
            return [
                TaskRunType.from_row(r) for r in await run_service.task_runs(session, c.tenant_id, self.id)
            ]

    @strawberry.field
    async def states(self, info: strawberry.Info) -> list[StateEntry]:
        c = ctx(info)
        async with c.sessions() as session:
            return [
                StateEntry.from_row(r)
                for r in await run_service.flow_run_states(session, c.tenant_id, self.id)
            ]

    @strawberry.field
    async def logs(
        self, info: strawberry.Info, task_slug: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[LogEntry]:
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


@strawberry.type
class FlowRunPage:
    items: list[FlowRunType]
    total: int
    next_offset: int | None


@strawberry.type
class RegisteredFlow:
    flow: FlowType
    version: FlowVersionType
    created: bool


@strawberry.type
class CreatedFlowRun:
    flow_run: FlowRunType
    created: bool


@strawberry.type
class StateResultType:
    id: str
    ok: bool
    version: int
    state: str
    error: str | None


@strawberry.type
class NewApiKey:
    id: str
    name: str
    role: str
    key: str = strawberry.field(description="Shown once: store it now.")


@strawberry.type
class ApiKeyInfo:
    id: str
    name: str
    role: str
    prefix: str
    created: datetime
    revoked: bool


@strawberry.type
class Me:
    tenant_id: str
    tenant_name: str
    role: str
