"""The client's GraphQL operations: query text, variables and a parser into typed results.

``Client`` and ``AsyncClient`` share these; only the transport differs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from nbflow.core.record import StateResult

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

T = TypeVar("T")


@dataclass(frozen=True)
class Operation(Generic[T]):
    """A GraphQL document, its variables, and how to read the answer."""

    query: str
    variables: dict[str, Any]
    parse: Callable[[dict[str, Any]], T]


@dataclass
class FlowInfo:
    """A registered flow as listed."""

    id: str
    name: str
    schedule_active: bool
    version: int | None = None
    schedule: dict[str, Any] | None = None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> FlowInfo:
        """Read one from the API's answer."""
        latest = d.get("latestVersion") or {}
        return cls(d["id"], d["name"], d["scheduleActive"], latest.get("version"), latest.get("schedule"))


@dataclass
class RegisteredFlow:
    """What registration answered."""

    flow_id: str
    flow_version_id: str
    version: int
    created: bool


@dataclass
class TaskRunInfo:
    """A task run's current state."""

    id: str
    task_slug: str
    state: str
    message: str
    attempt: int
    version: int
    #: A mapped task: how many of its children are in each state (children are ``slug[i]``).
    children: dict[str, int] = field(default_factory=dict)
    #: Where its result is stored and its digest (``nbflow.core.results``), if it was stored.
    result_ref: str | None = None


@dataclass
class FlowRunInfo:
    """A flow run: state, parameters, labels, and (when asked for) its flow version and task runs."""

    id: str
    flow_id: str
    state: str
    message: str
    version: int
    parameters: dict[str, Any]
    labels: list[str]
    scheduled_start_time: datetime
    flow_version_id: str = ""
    flow_name: str | None = None
    storage: dict[str, Any] | None = None
    flow_version: int | None = None
    private: bool = False
    task_runs: list[TaskRunInfo] = field(default_factory=list)
    created: bool | None = None
    #: the run's own ``nbflow.context`` values (``-c key=value``)
    context: dict[str, Any] = field(default_factory=dict)
    #: The failed run this one restarts (its flow process reuses that run's stored results).
    restart_of: str | None = None

    @classmethod
    def parse(cls, d: dict[str, Any]) -> FlowRunInfo:
        """Read one from the API's answer."""
        version = d.get("flowVersion") or {}
        return cls(
            id=d["id"],
            flow_id=d["flowId"],
            state=d["state"],
            message=d.get("message") or "",
            version=d["version"],
            parameters=d.get("parameters") or {},
            context=d.get("context") or {},
            labels=list(d.get("labels") or []),
            scheduled_start_time=datetime.fromisoformat(d["scheduledStartTime"]),
            flow_version_id=d.get("flowVersionId", ""),
            flow_name=(d.get("flow") or {}).get("name"),
            storage=version.get("storage"),
            flow_version=version.get("version"),
            private=bool(version.get("private")),
            restart_of=d.get("restartOf"),
            task_runs=[
                TaskRunInfo(
                    t["id"],
                    t["taskSlug"],
                    t["state"],
                    t["message"],
                    t["attempt"],
                    t["version"],
                    {c["state"]: c["count"] for c in t.get("children") or []},
                    t.get("resultRef"),
                )  # fmt: skip
                for t in d.get("taskRuns") or []
            ],
        )


@dataclass
class RunStatus:
    """What a heartbeat says of a run: its state, version and the execution that owns it."""

    id: str
    state: str
    version: int
    execution: int


@dataclass
class NewKey:
    """A key just made (its secret, shown once)."""

    id: str
    name: str
    role: str
    key: str


RUN_FIELDS = """id flowId flowVersionId state message version parameters context labels scheduledStartTime restartOf
  flow { name } flowVersion { version storage private }"""
# A mapped task is one row with its children's counts (its children are rows of their own).
RUN_DETAIL = RUN_FIELDS + (
    " taskRuns(includeChildren: false) { id taskSlug state message attempt version resultRef"
    " children { state count } }"
)


def _results(rows: list[dict[str, Any]]) -> list[StateResult]:
    return [
        StateResult(r["id"], r["ok"], r["version"], r["state"], r["error"], r.get("runToken")) for r in rows
    ]


def me() -> Operation[dict[str, Any]]:
    """The caller's tenant and role."""
    return Operation("{ me { tenantId tenantName role } }", {}, lambda d: d["me"])


def register_flow(
    name: str,
    structure: dict[str, Any],
    storage: dict[str, Any],
    *,
    schedule: dict[str, Any] | None = None,
    labels: Sequence[str] = (),
    max_resubmits: int = 0,
    private: bool = False,
) -> Operation[RegisteredFlow]:
    """Register a flow's metadata (``private``: agents keep its logs and failure details)."""
    query = """mutation($input: RegisterFlowInput!) { registerFlow(input: $input) {
        created flow { id } version { id version } } }"""
    variables = {
        "input": {
            "name": name,
            "structure": structure,
            "storage": storage,
            "schedule": schedule,
            "labels": list(labels),
            "maxResubmits": max_resubmits,
            "private": private,
        }
    }

    def parse(d: dict[str, Any]) -> RegisteredFlow:
        r = d["registerFlow"]
        return RegisteredFlow(r["flow"]["id"], r["version"]["id"], r["version"]["version"], r["created"])

    return Operation(query, variables, parse)


def create_flow_run(
    *,
    flow_id: str | None = None,
    flow_name: str | None = None,
    parameters: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    scheduled_start_time: datetime | None = None,
    labels: Sequence[str] | None = None,
    context: dict[str, Any] | None = None,
) -> Operation[FlowRunInfo]:
    """A run of a flow by id or name (an idempotency key makes retries safe); ``context``:
    the values its tasks read as ``nbflow.context.KEY``."""
    query = f"""mutation($input: CreateFlowRunInput!) {{ createFlowRun(input: $input) {{
        created flowRun {{ {RUN_FIELDS} }} }} }}"""
    variables = {
        "input": {
            "flowId": flow_id,
            "flowName": flow_name,
            "parameters": parameters,
            "idempotencyKey": idempotency_key,
            "scheduledStartTime": scheduled_start_time.isoformat() if scheduled_start_time else None,
            "labels": list(labels) if labels is not None else None,
            "context": context,
        }
    }

    def parse(d: dict[str, Any]) -> FlowRunInfo:
        run = FlowRunInfo.parse(d["createFlowRun"]["flowRun"])
        run.created = d["createFlowRun"]["created"]
        return run

    return Operation(query, variables, parse)


def flows(limit: int = 100, offset: int = 0) -> Operation[list[FlowInfo]]:
    """Registered flows."""
    query = """query($limit: Int!, $offset: Int!) { flows(limit: $limit, offset: $offset) {
        id name scheduleActive latestVersion { version schedule } } }"""
    return Operation(
        query, {"limit": limit, "offset": offset}, lambda d: [FlowInfo.parse(f) for f in d["flows"]]
    )


def flow(*, flow_id: str | None = None, name: str | None = None) -> Operation[FlowInfo]:
    """One flow by id or name."""
    query = """query($id: String, $name: String) { flow(id: $id, name: $name) {
        id name scheduleActive latestVersion { version schedule } } }"""
    return Operation(query, {"id": flow_id, "name": name}, lambda d: FlowInfo.parse(d["flow"]))


def flow_runs(
    *,
    flow_id: str | None = None,
    flow_name: str | None = None,
    states: Sequence[str] | None = None,
    scheduled_after: datetime | None = None,
    scheduled_before: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Operation[tuple[list[FlowRunInfo], int]]:
    """(runs, total): newest first, filtered, paginated."""
    query = f"""query($flowId: String, $flowName: String, $states: [String!], $after: DateTime,
        $before: DateTime, $limit: Int!, $offset: Int!) {{
        flowRuns(flowId: $flowId, flowName: $flowName, states: $states, scheduledAfter: $after,
                 scheduledBefore: $before, limit: $limit, offset: $offset) {{
            total items {{ {RUN_FIELDS} }} }} }}"""
    variables = {
        "flowId": flow_id,
        "flowName": flow_name,
        "states": list(states) if states else None,
        "after": scheduled_after.isoformat() if scheduled_after else None,
        "before": scheduled_before.isoformat() if scheduled_before else None,
        "limit": limit,
        "offset": offset,
    }

    def parse(d: dict[str, Any]) -> tuple[list[FlowRunInfo], int]:
        page = d["flowRuns"]
        return [FlowRunInfo.parse(r) for r in page["items"]], page["total"]

    return Operation(query, variables, parse)


def flow_run(run_id: str) -> Operation[FlowRunInfo]:
    """One run with its task runs."""
    query = f"query($id: String!) {{ flowRun(id: $id) {{ {RUN_DETAIL} }} }}"
    return Operation(query, {"id": run_id}, lambda d: FlowRunInfo.parse(d["flowRun"]))


def flow_run_structure(run_id: str) -> Operation[dict[str, Any]]:
    """The registered structure (graph) of a run's flow version, for drawing it."""
    query = "query($id: String!) { flowRun(id: $id) { state flowVersion { structure } } }"
    return Operation(query, {"id": run_id}, lambda d: d["flowRun"]["flowVersion"]["structure"])


def run_logs(run_id: str, *, after_id: int = 0, limit: int = 1000) -> Operation[list[dict[str, Any]]]:
    """A run's log lines in recorded order, after ``after_id`` (a line's ``id``)."""
    query = """query($id: String!, $after: Int!, $limit: Int!) { flowRun(id: $id) {
        logs(afterId: $after, limit: $limit) { id seq execution taskSlug taskRunId level message timestamp } } }"""
    return Operation(query, {"id": run_id, "after": after_id, "limit": limit}, lambda d: d["flowRun"]["logs"])


def cancel_flow_run(run_id: str) -> Operation[FlowRunInfo]:
    """Cancel a run."""
    query = f"mutation($id: String!) {{ cancelFlowRun(flowRunId: $id) {{ {RUN_FIELDS} }} }}"
    return Operation(query, {"id": run_id}, lambda d: FlowRunInfo.parse(d["cancelFlowRun"]))


def restart_sources(run_id: str) -> Operation[list[TaskRunInfo]]:
    """The task runs a restarted run reuses (its own run only, for a run token)."""
    query = (
        "query($id: String!) { restartSources(flowRunId: $id) "
        "{ id taskSlug state message attempt version resultRef } }"
    )
    return Operation(
        query,
        {"id": run_id},
        lambda d: [
            TaskRunInfo(t["id"], t["taskSlug"], t["state"], t["message"], t["attempt"], t["version"],
                        result_ref=t["resultRef"])
            for t in d["restartSources"]
        ],
    )  # fmt: skip


def restart_flow_run(run_id: str) -> Operation[FlowRunInfo]:
    """Re-run a failed run from its failed tasks (a new run that reuses the stored results)."""
    query = f"mutation($id: String!) {{ restartFlowRun(flowRunId: $id) {{ {RUN_FIELDS} }} }}"
    return Operation(query, {"id": run_id}, lambda d: FlowRunInfo.parse(d["restartFlowRun"]))


def set_schedule_active(flow_id: str, active: bool) -> Operation[bool]:
    """Turn a flow's schedule on or off."""
    query = "mutation($id: String!, $active: Boolean!) { setScheduleActive(flowId: $id, active: $active) { scheduleActive } }"
    return Operation(
        query, {"id": flow_id, "active": active}, lambda d: d["setScheduleActive"]["scheduleActive"]
    )


def graphql_input(wire: dict[str, Any]) -> dict[str, Any]:
    """A record's wire dict as a GraphQL input object (the schema names fields in camelCase)."""
    return {_camel(key): value for key, value in wire.items() if key not in ("kind", "position")}


@functools.cache
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def set_flow_run_states(states: Sequence[dict[str, Any]]) -> Operation[list[StateResult]]:
    """Flow-run state changes: ``StateRecord.to_wire()`` dicts plus ``version`` (and
    ``agent_id`` for a claim), each applied as a compare-and-set."""
    query = """mutation($states: [FlowRunStateInput!]!) { setFlowRunStates(states: $states) {
        id ok version state error runToken } }"""
    variables = {"states": [graphql_input(s) for s in states]}
    return Operation(query, variables, lambda d: _results(d["setFlowRunStates"]))


def set_task_run_states(
    states: Sequence[dict[str, Any]], *, refused_only: bool = False
) -> Operation[list[StateResult]]:
    """Task-run state changes as ``StateRecord.to_wire()`` dicts; the results of all, or with
    ``refused_only`` those of the changes the server refused (an empty list: all taken)."""
    query = """mutation($states: [TaskRunStateInput!]!, $refusedOnly: Boolean!) {
        setTaskRunStates(states: $states, refusedOnly: $refusedOnly) { id ok version state error } }"""
    variables = {"states": [graphql_input(s) for s in states], "refusedOnly": refused_only}
    return Operation(query, variables, lambda d: _results(d["setTaskRunStates"]))


def write_run_logs(logs: Sequence[dict[str, Any]]) -> Operation[int]:
    """Log lines as ``LogRecord.to_wire()`` dicts; returns how many were new."""
    query = "mutation($logs: [LogInput!]!) { writeRunLogs(logs: $logs) }"
    return Operation(query, {"logs": [graphql_input(line) for line in logs]}, lambda d: d["writeRunLogs"])


def get_runs_in_queue(
    labels: Sequence[str] = (), *, limit: int = 10, wait: float = 0.0
) -> Operation[list[FlowRunInfo]]:
    """Due runs for these labels (long-poll up to ``wait`` seconds)."""
    query = f"""mutation($labels: [String!], $limit: Int!, $wait: Float!) {{
        getRunsInQueue(labels: $labels, limit: $limit, wait: $wait) {{ {RUN_FIELDS} }} }}"""
    return Operation(
        query,
        {"labels": list(labels), "limit": limit, "wait": wait},
        lambda d: [FlowRunInfo.parse(r) for r in d["getRunsInQueue"]],
    )


def heartbeat(run_ids: Sequence[str], agent_id: str | None = None) -> Operation[list[RunStatus]]:
    """Keep runs alive; their state, version and execution."""
    query = """mutation($ids: [String!]!, $agent: String) { heartbeat(flowRunIds: $ids, agentId: $agent) {
        id state version execution } }"""
    return Operation(
        query,
        {"ids": list(run_ids), "agent": agent_id},
        lambda d: [RunStatus(r["id"], r["state"], r["version"], r["execution"]) for r in d["heartbeat"]],
    )


def register_agent(name: str, labels: Sequence[str] = ()) -> Operation[str]:
    """Say hello as an agent; its id."""
    query = "mutation($name: String!, $labels: [String!]) { registerAgent(name: $name, labels: $labels) }"
    return Operation(query, {"name": name, "labels": list(labels)}, lambda d: d["registerAgent"])


def create_api_key(role: str, name: str = "") -> Operation[NewKey]:
    """A new key (its secret, once)."""
    query = "mutation($role: String!, $name: String!) { createApiKey(role: $role, name: $name) { id name role key } }"
    return Operation(query, {"role": role, "name": name}, lambda d: NewKey(**d["createApiKey"]))


def revoke_api_key(key_id: str) -> Operation[bool]:
    """Revoke a key by id or prefix."""
    return Operation(
        "mutation($id: String!) { revokeApiKey(id: $id) }", {"id": key_id}, lambda d: d["revokeApiKey"]
    )


def api_keys() -> Operation[list[dict[str, Any]]]:
    """The tenant's keys (never their secrets)."""
    return Operation("{ apiKeys { id name role prefix created revoked } }", {}, lambda d: d["apiKeys"])
