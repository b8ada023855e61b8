"""GraphQL input types (what clients send)."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON


@strawberry.input
class StorageInput:
    kind: str
    location: str
    sha256: str


@strawberry.input
class RegisterFlowInput:
    name: str
    structure: JSON
    storage: StorageInput
    schedule: JSON | None = None
    labels: list[str] = strawberry.field(default_factory=list)
    max_resubmits: int = 0


@strawberry.input
class CreateFlowRunInput:
    flow_id: str | None = None
    flow_name: str | None = None
    parameters: JSON | None = None
    idempotency_key: str | None = None
    scheduled_start_time: datetime | None = None
    labels: list[str] | None = None


@strawberry.input
class FlowRunStateInput:
    flow_run_id: str
    version: int
    state: str
    message: str = ""
    agent_id: str | None = None


@strawberry.input
class TaskRunStateInput:
    task_run_id: str
    flow_run_id: str
    task_slug: str
    version: int
    state: str
    timestamp: float
    message: str = ""
    attempt: int = 0


@strawberry.input
class LogInput:
    flow_run_id: str
    seq: int
    level: str
    message: str
    timestamp: float
    task_run_id: str | None = None
    task_slug: str | None = None
