"""Write side of the API. Each mutation is one transaction: an error writes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Annotated

import strawberry

from nbflow.core.record import LogRecord, StateRecord, StateResult, StateWire
from nbflow.server import auth
from nbflow.server.errors import RequestError
from nbflow.server.schema.context import CanManageFlows, CanReport, CanWriteRuns, IsAdmin, check_own_run, ctx
from nbflow.server.schema.inputs import (
    CreateFlowRunInput,
    FlowRunStateInput,
    LogInput,
    RegisterFlowInput,
    TaskRunStateInput,
)
from nbflow.server.schema.team import TeamMutation
from nbflow.server.schema.types import (
    CreatedFlowRun,
    FlowRunType,
    FlowType,
    FlowVersionType,
    NewApiKey,
    RegisteredFlow,
    RunStatusType,
    StateResultType,
)
from nbflow.server.services import flows as flow_service
from nbflow.server.services import logs as log_service
from nbflow.server.services import runs as run_service
from nbflow.server.services import transitions
from nbflow.server.services.runcreate import RunRequest, create_requested_run

MAX_WAIT = 30.0
#: How long a waiting long-poll goes without re-reading its queue if nothing wakes it.
QUEUE_RECHECK = 2.0


def _results(rows: list[StateResult]) -> list[StateResultType]:
    return [StateResultType(**vars(r)) for r in rows]  # flat records: no deep copy (asdict)


def _state_record(given: StateWire) -> StateRecord:
    """The record a GraphQL input carries, validated like every other hop (``from_wire``)."""
    wire = {f.name: getattr(given, f.name) for f in dataclasses.fields(StateWire)}
    return StateRecord.from_wire(wire)


@strawberry.type
class Mutation(TeamMutation):  # secrets, hooks, limits: team.py
    """The write side: each mutation is one transaction, and an error writes nothing."""

    @strawberry.mutation(
        permission_classes=[CanManageFlows], description="Register flow metadata (never code)."
    )
    async def register_flow(self, info: strawberry.Info, input: RegisterFlowInput) -> RegisteredFlow:
        """Register a flow's metadata; the same structure and code is the same version."""
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
                **({"results": input.storage.results} if input.storage.results else {}),
            },
            max_resubmits=input.max_resubmits,
            private=input.private,
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
        """A new run (or the run an earlier call with the same idempotency key made)."""
        c = ctx(info)
        made = await create_requested_run(
            c.sessions,
            c.tenant_id,
            RunRequest(
                flow_id=input.flow_id,
                flow_name=input.flow_name,
                parameters=input.parameters,
                idempotency_key=input.idempotency_key,
                scheduled_start_time=input.scheduled_start_time,
                labels=input.labels,
                context=input.context,
            ),
        )
        c.notifier.notify()
        return CreatedFlowRun(
            flow_run=FlowRunType.from_row(made.run, flow=made.flow, version=made.version),
            created=made.created,
        )

    @strawberry.mutation(permission_classes=[CanManageFlows])
    async def cancel_flow_run(self, info: strawberry.Info, flow_run_id: str) -> FlowRunType:
        """Cancel a run: at once if not started, else its agent stops it."""
        c = ctx(info)
        run = await c.write(run_service.cancel_flow_run, flow_run_id)
        c.notifier.notify()
        return FlowRunType.from_row(run)

    @strawberry.mutation(permission_classes=[CanManageFlows])
    async def restart_flow_run(self, info: strawberry.Info, flow_run_id: str) -> FlowRunType:
        """Re-run a failed run from its failed tasks: a new run (``restartOf``) that reuses the
        stored results of the tasks that succeeded."""
        c = ctx(info)
        run = await c.write(run_service.restart_flow_run, flow_run_id)
        c.notifier.notify()
        return FlowRunType.from_row(run)

    @strawberry.mutation(permission_classes=[CanManageFlows])
    async def set_schedule_active(self, info: strawberry.Info, flow_id: str, active: bool) -> FlowType:
        """Turn a flow's schedule on or off (off deletes its future scheduled runs)."""
        return FlowType.from_row(await ctx(info).write(flow_service.set_schedule_active, flow_id, active))

    @strawberry.mutation(
        permission_classes=[CanWriteRuns], description="Compare-and-set on each run's version."
    )
    async def set_flow_run_states(
        self, info: strawberry.Info, states: list[FlowRunStateInput]
    ) -> list[StateResultType]:
        """Flow-run state changes, each a compare-and-set on the run's version."""
        c = ctx(info)
        if len(states) > transitions.MAX_BATCH:
            raise RequestError(f"at most {transitions.MAX_BATCH} state changes per call, got {len(states)}")
        changes = [(_state_record(s), s.version, s.agent_id) for s in states]
        check_own_run(c, {change.flow_run_id for change, _, _ in changes})
        async with c.sessions.begin() as session:
            results = [
                await transitions.set_flow_run_state(
                    session, c.tenant_id, change, version=version, agent_id=agent
                )
                for change, version, agent in changes
            ]
        c.notifier.notify()
        return _results(results)

    @strawberry.mutation(permission_classes=[CanWriteRuns])
    async def set_task_run_states(
        self,
        info: strawberry.Info,
        states: list[TaskRunStateInput],
        refused_only: Annotated[
            bool,
            strawberry.argument(
                description="Answer only with the changes refused (what an agent acts on): a "
                "batch's answer is then empty when all were taken, and costs nothing to make."
            ),
        ] = False,
    ) -> list[StateResultType]:
        """Task-run state changes of the executions that own their runs."""
        c = ctx(info)
        changes: list[StateRecord] = list(states)
        check_own_run(c, {change.flow_run_id for change in changes})
        results = await transitions.record_task_run_states(c.sessions, c.tenant_id, changes)
        c.notifier.notify()
        return _results([r for r in results if not r.ok] if refused_only else results)

    @strawberry.mutation(permission_classes=[CanWriteRuns], description="Returns how many lines were new.")
    async def write_run_logs(self, info: strawberry.Info, logs: list[LogInput]) -> int:
        """Log lines; returns how many were new (re-delivered ones are skipped)."""
        c = ctx(info)
        lines: list[LogRecord] = list(logs)
        check_own_run(c, {line.flow_run_id for line in lines})
        written = await log_service.record_logs(c.sessions, c.tenant_id, lines)
        c.notifier.notify()
        return written

    @strawberry.mutation(
        permission_classes=[CanReport], description="Due runs for these labels; waits up to `wait` seconds."
    )
    async def get_runs_in_queue(
        self, info: strawberry.Info, labels: list[str] | None = None, limit: int = 10, wait: float = 0.0
    ) -> list[FlowRunType]:
        """Due runs an agent with these labels may take, waiting up to ``wait`` seconds."""
        c = ctx(info)
        if not 1 <= limit <= 100:
            raise RequestError(f"limit must be between 1 and 100, got {limit}")
        deadline = time.monotonic() + max(0.0, min(wait, MAX_WAIT))
        while True:
            async with c.sessions() as session:
                runs = await run_service.runs_in_queue(session, c.tenant_id, list(labels or []), limit=limit)
                found = await FlowRunType.many(session, runs)
            remaining = deadline - time.monotonic()
            if found or remaining <= 0:
                return found
            # Woken at once by a run made in this process; by the queue watch when another
            # replica wrote or a waiting run fell due (services/queuewatch.py). The ceiling
            # only matters if that watch is not running.
            await c.notifier.wait(min(QUEUE_RECHECK, remaining))
            await asyncio.sleep(0)

    @strawberry.mutation(
        permission_classes=[CanReport], description="Keep runs alive; returns their current state."
    )
    async def heartbeat(
        self, info: strawberry.Info, flow_run_ids: list[str], agent_id: str | None = None
    ) -> list[RunStatusType]:
        """Keep runs alive; returns their state and execution, so the agent sees cancellations
        and runs that another execution owns now (and nothing else of them)."""
        rows = await ctx(info).write(run_service.heartbeat, flow_run_ids, agent_id)
        return [RunStatusType.from_row(r) for r in rows]

    @strawberry.mutation(permission_classes=[CanReport], description="An agent says hello; returns its id.")
    async def register_agent(self, info: strawberry.Info, name: str, labels: list[str] | None = None) -> str:
        """An agent says hello; returns its id."""
        return (await ctx(info).write(run_service.register_agent, name, list(labels or []))).id

    @strawberry.mutation(permission_classes=[IsAdmin], description="The key is shown once.")
    async def create_api_key(self, info: strawberry.Info, role: str, name: str = "") -> NewApiKey:
        """A new key (its secret is in the answer, once)."""
        c = ctx(info)
        async with c.sessions.begin() as session:
            row, key = await auth.create_key(session, c.tenant_id, role, name)
            return NewApiKey(id=row.id, name=row.name, role=row.role, key=key)

    @strawberry.mutation(permission_classes=[IsAdmin])
    async def revoke_api_key(self, info: strawberry.Info, id: str) -> bool:
        """Revoke a key by id or prefix."""
        c = ctx(info)
        async with c.sessions.begin() as session:
            await auth.revoke_key(session, c.tenant_id, id)
        return True
