"""GraphQL input types (what clients send)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from nbflow.core.record import LogRecord, StateWire


@strawberry.input
class StorageInput:
    """Where the flow's code is: kind, location and SHA-256 (never the code)."""

    kind: str
    location: str
    sha256: str
    #: Where the flow's runs store their task results (a URL), when registered with one.
    results: str | None = None


@strawberry.input
class RegisterFlowInput:
    """A flow's metadata: name, structure, storage reference, schedule, labels."""

    name: str
    structure: JSON
    storage: StorageInput
    schedule: JSON | None = None
    labels: list[str] = strawberry.field(default_factory=list)
    max_resubmits: int = 0
    private: bool = strawberry.field(
        default=False,
        description="Agents keep this flow's log lines and failure details; only states are sent.",
    )


@strawberry.input
class CreateFlowRunInput:
    """A run of a flow (by id or name) with parameters, labels and an idempotency key."""

    flow_id: str | None = None
    flow_name: str | None = None
    parameters: JSON | None = None
    idempotency_key: str | None = None
    scheduled_start_time: datetime | None = None
    labels: list[str] | None = None
    context: JSON | None = strawberry.field(
        default=None, description="Values the run's tasks read as nbflow.context.KEY (-c key=value)."
    )


@strawberry.input(description="A flow-run state change: the run record's fields plus the compare-and-set.")
class FlowRunStateInput(StateWire):
    """A flow-run state change: the run record's fields plus the compare-and-set."""

    version: int = strawberry.field(description="The run's version the writer saw (compare-and-set).")
    agent_id: str | None = strawberry.field(default=None, description="The claiming agent (Submitted).")


@strawberry.input(description="A task-run state change: the run record's fields (nbflow.core.record).")
class TaskRunStateInput(StateWire):
    """A task-run state change: the run record's fields (nbflow.core.record)."""

    pass


@strawberry.input(description="A log line: the run record's fields (nbflow.core.record).")
class LogInput(LogRecord):
    """A log line: the run record's fields (nbflow.core.record)."""

    pass
