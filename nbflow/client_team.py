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
