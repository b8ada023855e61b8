"""Write side of the API. Each mutation is one transaction: an error writes nothing."""

from __future__ import annotations

import asyncio
import time

import strawberry

from nbflow.server import auth
from nbflow.server.errors import RequestError
from nbflow.server.schema.context import CanManageFlows, CanReport, IsAdmin, ctx
from nbflow.server.schema.inputs import (
    CreateFlowRunInput,
    FlowRunStateInput,
    LogInput,
    RegisterFlowInput,
    TaskRunStateInput,
)
from nbflow.server.schema.types import (
    CreatedFlowRun,
    FlowRunType,
    FlowType,
    FlowVersionType,
    NewApiKey,
    RegisteredFlow,
    StateResultType,
)
from nbflow.server.services import flows as flow_service
from nbflow.server.services import logs as log_service
from nbflow.server.services import runs as run_service

MAX_WAIT = 30.0


def _results(rows: list[run_service.StateResult]) -> list[StateResultType]:
    return [StateResultType(id=r.id, ok=r.ok, version=r.version, state=r.state, error=r.error) for r in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[CanManageFlows], description="Register flow metadata (never code)."
    )
    async def register_flow(self, info: strawberry.Info, input: RegisterFlowInput) -> RegisteredFlow:
        c = ctx(info)
        spec = flow_service.FlowSpec(
            name=input.name,
            structure=input.structure,  # type: ignore[arg-type]
            schedule=input.schedule,  # type: ignore[arg-type]
            labels=list(input.labels),
            storage={
                "kind": input.storage.kind,
                "location": input.storage.location,
                "sha256": input.storage.sha256,
            },
            max_resubmits=input.max_resubmits,
        )
        async with c.sessions.begin() as session:
            flow, version, created = await flow_service.register_flow(session, c.tenant_id, spec)
            result = RegisteredFlow(
                flow=FlowType.from_row(flow), version=FlowVersionType.from_row(version), created=created
            )
        c.notifier.notify()
        return result

    @strawberry.mutation(permission_classes=[CanManageFlows])
    async def create_flow_run(self, info: strawberry.Info, input: CreateFlowRunInput) -> CreatedFlowRun:
        c = ctx(info)
        async with c.sessions.begin() as session:
            flow = await flow_service.get_flow(
                session, c.tenant_id, flow_id=input.flow_id, name=input.flow_name
            )
            parameters = input.parameters
            if parameters is not None and not isinstance(parameters, dict):
                raise RequestError("parameters must be a JSON object of name: value")
            run, created = await run_service.create_flow_run(
                session,
                c.tenant_id,
                flow,
                parameters=parameters,  # type: ignore[arg-type]
                idempotency_key=input.idempotency_key,
                scheduled_start_time=input.scheduled_start_time,
                labels=input.labels,
            )
            result = CreatedFlowRun(flow_run=FlowRunType.from_row(run), created=created)
        c.notifier.notify()
        return result

    @strawberry.mutation(permission_classes=[CanManageFlows])
    async def cancel_flow_run(self, info: strawberry.Info, flow_run_id: str) -> FlowRunType:
        c = ctx(info)
        async with c.sessions.begin() as session:
            run = FlowRunType.from_row(await run_service.cancel_flow_run(session, c.tenant_id, flow_run_id))
        c.notifier.notify()
        return run

    @strawberry.mutation(permission_classes=[CanManageFlows])
    async def set_schedule_active(self, info: strawberry.Info, flow_id: str, active: bool) -> FlowType:
        c = ctx(info)
        async with c.sessions.begin() as session:
            return FlowType.from_row(
                await flow_service.set_schedule_active(session, c.tenant_id, flow_id, active)
            )

    @strawberry.mutation(permission_classes=[CanReport], description="Compare-and-set on each run's version.")
    async def set_flow_run_states(
        self, info: strawberry.Info, states: list[FlowRunStateInput]
    ) -> list[StateResultType]:
        c = ctx(info)
        updates = [
            run_service.FlowRunStateUpdate(s.flow_run_id, s.version, s.state, s.message, s.agent_id)
            for s in states
        ]
        async with c.sessions.begin() as session:
            results = await run_service.set_flow_run_states(session, c.tenant_id, updates)
        c.notifier.notify()
        return _results(results)

    @strawberry.mutation(permission_classes=[CanReport])
    async def set_task_run_states(
        self, info: strawberry.Info, states: list[TaskRunStateInput]
    ) -> list[StateResultType]:
        c = ctx(info)
        updates = [
            run_service.TaskRunStateUpdate(
                s.task_run_id,
                s.flow_run_id,
                s.task_slug,
                s.version,
                s.state,
                s.message,
                s.attempt,
                s.timestamp,
            )
            for s in states
        ]
        async with c.sessions.begin() as session:
            results = await run_service.set_task_run_states(session, c.tenant_id, updates)
        c.notifier.notify()
        return _results(results)

    @strawberry.mutation(permission_classes=[CanReport], description="Returns how many lines were new.")
    async def write_run_logs(self, info: strawberry.Info, logs: list[LogInput]) -> int:
        c = ctx(info)
        lines = [
            log_service.LogLine(
                l.flow_run_id, l.seq, l.level, l.message, l.timestamp, l.task_run_id, l.task_slug
            )
            for l in logs  # noqa: E741
        ]
        async with c.sessions.begin() as session:
            written = await log_service.write_logs(session, c.tenant_id, lines)
        c.notifier.notify()
        return written

    @strawberry.mutation(
        permission_classes=[CanReport], description="Due runs for these labels; waits up to `wait` seconds."
    )
    async def get_runs_in_queue(
        self, info: strawberry.Info, labels: list[str] | None = None, limit: int = 10, wait: float = 0.0
    ) -> list[FlowRunType]:
        c = ctx(info)
        if not 1 <= limit <= 100:
            raise RequestError(f"limit must be between 1 and 100, got {limit}")
        deadline = time.monotonic() + max(0.0, min(wait, MAX_WAIT))
        while True:
            async with c.sessions() as session:
                runs = await run_service.runs_in_queue(session, c.tenant_id, list(labels or []), limit=limit)
            remaining = deadline - time.monotonic()
            if runs or remaining <= 0:
                return [FlowRunType.from_row(r) for r in runs]
            # Woken at once by a run made in this process; other replicas' runs within 0.25 s.
            await c.notifier.wait(min(0.25, remaining))
            await asyncio.sleep(0)

    @strawberry.mutation(
        permission_classes=[CanReport], description="Keep runs alive; returns their current state."
    )
    async def heartbeat(
        self, info: strawberry.Info, flow_run_ids: list[str], agent_id: str | None = None
    ) -> list[FlowRunType]:
        c = ctx(info)
        async with c.sessions.begin() as session:
            rows = await run_service.heartbeat(session, c.tenant_id, flow_run_ids, agent_id)
            return [FlowRunType.from_row(r) for r in rows]

    @strawberry.mutation(permission_classes=[CanReport], description="An agent says hello; returns its id.")
    async def register_agent(self, info: strawberry.Info, name: str, labels: list[str] | None = None) -> str:
        c = ctx(info)
        async with c.sessions.begin() as session:
            return (await run_service.register_agent(session, c.tenant_id, name, list(labels or []))).id

    @strawberry.mutation(permission_classes=[IsAdmin], description="The key is shown once.")
    async def create_api_key(self, info: strawberry.Info, role: str, name: str = "") -> NewApiKey:
        c = ctx(info)
        async with c.sessions.begin() as session:
            row, key = await auth.create_key(session, c.tenant_id, role, name)
            return NewApiKey(id=row.id, name=row.name, role=row.role, key=key)

    @strawberry.mutation(permission_classes=[IsAdmin])
    async def revoke_api_key(self, info: strawberry.Info, id: str) -> bool:
        c = ctx(info)
        async with c.sessions.begin() as session:
            await auth.revoke_key(session, c.tenant_id, id)
        return True
