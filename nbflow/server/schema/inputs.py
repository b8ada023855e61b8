"""GraphQL input types (what clients send).

The records agents send in bulk (task-run states, log lines) are scalars: a JSON
object of the record's fields in camelCase, read by the record's own
``from_wire`` once. As input object types strawberry converted every field of
every item on its own, which was most of the time of a batch of 500 states.
Their names are those of the input types they replace, so a document written
for those (``[TaskRunStateInput!]!``) still validates.
"""

from __future__ import annotations

from dataclasses import MISSING
from datetime import datetime
from typing import TYPE_CHECKING, Any, NewType

import strawberry
from strawberry.scalars import JSON
from strawberry.utils.str_converters import to_camel_case

from nbflow.core.errors import RecordError
from nbflow.core.record import LOG_FIELDS, STATE_FIELDS, LogRecord, StateRecord, StateWire

if TYPE_CHECKING:
    from collections.abc import Callable
    from dataclasses import Field


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


def _record_reader(what: str, spec: tuple[Field[Any], ...], read: Callable[[dict[str, Any]], Any]) -> Any:
    """The scalar's reader: camelCase keys to the record's names (an unknown key is refused,
    as an input type refused it), then the record's own validation."""
    names = {to_camel_case(f.name): f.name for f in spec}
    known = frozenset(names)

    def parse(value: object) -> Any:
        if not isinstance(value, dict):
            raise RecordError(f"a {what} must be a JSON object, got {type(value).__name__}")
        if not known.issuperset(value):
            unknown = sorted(set(value) - known)
            raise RecordError(f"{what}: unknown field {unknown[0]!r}; its fields are {', '.join(names)}")
        return read({names[key]: item for key, item in value.items()})

    return parse


def _fields_text(spec: tuple[Field[Any], ...]) -> str:
    required = [to_camel_case(f.name) for f in spec if f.default is MISSING and f.default_factory is MISSING]
    optional = [to_camel_case(f.name) for f in spec if to_camel_case(f.name) not in required]
    return f"required {', '.join(required)}; optional {', '.join(optional)}"


TaskRunStateInput = NewType("TaskRunStateInput", StateRecord)
LogInput = NewType("LogInput", LogRecord)


def _record_scalar(name: str, what: str, spec: tuple[Field[Any], ...], record: Any) -> Any:
    return strawberry.scalar(
        name=name,
        description=f"A {what}: a JSON object of the run record's fields in camelCase "
        f"(nbflow.core.record.{record.__name__}: {_fields_text(spec)}).",
        parse_value=_record_reader(what, spec, record.from_wire),
        serialize=lambda value: value.to_wire(),
    )


#: The record scalars, for the schema's ``scalar_map``.
RECORD_SCALARS = {
    TaskRunStateInput: _record_scalar(
        "TaskRunStateInput", "task-run state change", STATE_FIELDS, StateRecord
    ),
    LogInput: _record_scalar("LogInput", "log line", LOG_FIELDS, LogRecord),
}
