"""The client's operations for running flows as a team: secrets, hooks, concurrency limits.

Used as ``client.execute(client_team.set_secret(...))`` (sync or async client alike).
"""

from __future__ import annotations

from typing import Any

from nbflow.client_ops import Operation

# -- secrets ---------------------------------------------------------------------------


def secrets() -> Operation[list[dict[str, Any]]]:
    """The tenant's secrets: names and times, never values."""
    return Operation("{ secrets { name created updated } }", {}, lambda d: d["secrets"])


def set_secret(name: str, value: str) -> Operation[dict[str, Any]]:
    """Create or replace a secret; the answer holds its name, not its value."""
    query = (
        "mutation($name: String!, $value: String!) { setSecret(name: $name, value: $value) { name updated } }"
    )
    return Operation(query, {"name": name, "value": value}, lambda d: d["setSecret"])


def delete_secret(name: str) -> Operation[bool]:
    """Delete a secret."""
    query = "mutation($name: String!) { deleteSecret(name: $name) }"
    return Operation(query, {"name": name}, lambda d: bool(d["deleteSecret"]))


def run_secret(flow_run_id: str, name: str) -> Operation[str | None]:
    """A secret's value for a running run (agents and the run's own token only)."""
    query = "query($run: String!, $name: String!) { runSecret(flowRunId: $run, name: $name) }"
    return Operation(query, {"run": flow_run_id, "name": name}, lambda d: d["runSecret"])


# -- hooks -------------------------------------------------------------------------------

HOOK_FIELDS = "id name kind target scope states flowName lateMinutes created"
DELIVERY_FIELDS = (
    "id hookId hookName eventKey flowRunId taskSlug state status attempts lastError payload created delivered"
)


def hooks() -> Operation[list[dict[str, Any]]]:
    """The tenant's hooks."""
    return Operation(f"{{ hooks {{ {HOOK_FIELDS} }} }}", {}, lambda d: d["hooks"])


def hook_deliveries(hook: str | None = None, *, limit: int = 50) -> Operation[list[dict[str, Any]]]:
    """Recent deliveries (of one hook, by id or name), newest first."""
    query = f"query($hook: String, $limit: Int!) {{ hookDeliveries(hook: $hook, limit: $limit) {{ {DELIVERY_FIELDS} }} }}"
    return Operation(query, {"hook": hook, "limit": limit}, lambda d: d["hookDeliveries"])


def add_hook(
    name: str,
    kind: str,
    target: str,
    *,
    states: list[str] | None = None,
    scope: str = "flow_run",
    flow_name: str | None = None,
    late_minutes: int | None = None,
) -> Operation[dict[str, Any]]:
    """A new hook: ``kind`` webhook (``target`` a URL) or email (addresses)."""
    query = f"mutation($input: AddHookInput!) {{ addHook(input: $input) {{ {HOOK_FIELDS} }} }}"
    variables = {
        "input": {
            "name": name, "kind": kind, "target": target, "states": states or ["Failed"], "scope": scope,
            "flowName": flow_name, "lateMinutes": late_minutes,
        }
    }  # fmt: skip
    return Operation(query, variables, lambda d: d["addHook"])


def remove_hook(hook: str) -> Operation[bool]:
    """Remove a hook by id or name."""
    return Operation(
        "mutation($hook: String!) { removeHook(hook: $hook) }", {"hook": hook}, lambda d: d["removeHook"]
    )


def test_hook(hook: str) -> Operation[dict[str, Any]]:
    """Send a test message through a hook now; its delivery."""
    query = f"mutation($hook: String!) {{ testHook(hook: $hook) {{ {DELIVERY_FIELDS} }} }}"
    return Operation(query, {"hook": hook}, lambda d: d["testHook"])


# -- concurrency limits ----------------------------------------------------------------


def concurrency_limits() -> Operation[list[dict[str, Any]]]:
    """The tenant's tag limits and who holds their slots now."""
    query = "{ concurrencyLimits { kind tag limit inUse holders { flowRunId taskSlug taskRunId acquired } } }"
    return Operation(query, {}, lambda d: d["concurrencyLimits"])


def set_concurrency_limit(tag: str, limit: int, *, kind: str = "tag") -> Operation[dict[str, Any]]:
    """Create or change a limit: of running task runs with a tag, or (``kind="label"``) of
    active flow runs with a label."""
    query = """mutation($tag: String!, $limit: Int!, $kind: String!) {
        setConcurrencyLimit(tag: $tag, limit: $limit, kind: $kind) { kind tag limit } }"""
    return Operation(query, {"tag": tag, "limit": limit, "kind": kind}, lambda d: d["setConcurrencyLimit"])


def delete_concurrency_limit(tag: str, *, kind: str = "tag") -> Operation[bool]:
    """Remove a tag's (or a label's) limit."""
    query = "mutation($tag: String!, $kind: String!) { deleteConcurrencyLimit(tag: $tag, kind: $kind) }"
    return Operation(query, {"tag": tag, "kind": kind}, lambda d: d["deleteConcurrencyLimit"])


def acquire_slots(
    flow_run_id: str, task_run_id: str, task_slug: str, tags: list[str]
) -> Operation[tuple[bool, str]]:
    """A slot of every limited tag for a task run about to run: (granted, why not)."""
    query = """mutation($run: String!, $task: String!, $slug: String!, $tags: [String!]!) {
        acquireConcurrencySlots(flowRunId: $run, taskRunId: $task, taskSlug: $slug, tags: $tags) { granted reason } }"""
    variables = {"run": flow_run_id, "task": task_run_id, "slug": task_slug, "tags": tags}

    def parse(d: dict[str, Any]) -> tuple[bool, str]:
        answer = d["acquireConcurrencySlots"]
        return bool(answer["granted"]), answer["reason"]

    return Operation(query, variables, parse)


def release_slots(flow_run_id: str, task_run_id: str) -> Operation[int]:
    """Give back a task run's slots."""
    query = "mutation($run: String!, $task: String!) { releaseConcurrencySlots(flowRunId: $run, taskRunId: $task) }"
    return Operation(query, {"run": flow_run_id, "task": task_run_id}, lambda d: d["releaseConcurrencySlots"])
