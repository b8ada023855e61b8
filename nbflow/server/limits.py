"""What the server accepts: sizes and characters of names, labels, parameters and structures.

Checked where a request enters (registration, run creation, agents saying hello),
so one bad request is refused with a clear error and never becomes a run that
poisons an agent or a row one of the databases cannot store.
"""

from __future__ import annotations

import json
from typing import Any

from nbflow.server.errors import RequestError

MAX_NAME = 200
"""Characters of a flow, agent or tenant name, a label or an idempotency key."""
MAX_LABELS = 50
MAX_PARAMETERS_BYTES = 64 * 1024
"""Parameters of one run, as JSON: runs are configuration, data goes through storage."""
MAX_STRUCTURE_BYTES = 2 * 1024 * 1024
"""A registered flow's structure, as JSON (a 10,000-task flow is well under this)."""
MAX_LOCATION = 1000


def name(value: str, what: str, *, longest: int = MAX_NAME) -> str:
    """``value`` stripped; refused when empty, too long, or holding control characters."""
    text = value.strip()
    if not text:
        raise RequestError(f"{what} must not be empty")
    if len(text) > longest:
        raise RequestError(f"{what} is longer than {longest} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise RequestError(f"{what} must not contain control characters (tabs, newlines, NUL)")
    return text


def labels(values: list[str] | None, what: str = "labels") -> list[str]:
    """Clean, unique, sorted labels; at most ``MAX_LABELS``."""
    out = sorted({name(v, f"a label in {what}") for v in values or []})
    if len(out) > MAX_LABELS:
        raise RequestError(f"at most {MAX_LABELS} {what}, got {len(out)}")
    return out


def json_value(value: Any, what: str, *, largest: int) -> None:
    """Refuse ``value`` unless it is plain JSON (no NaN, no NUL) of at most ``largest`` bytes."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise RequestError(f"{what} must be plain JSON (finite numbers only)") from None
    if len(text.encode()) > largest:
        raise RequestError(
            f"{what} is {len(text.encode())} bytes as JSON, over the limit of {largest}; "
            "pass large data through storage, not as parameters"
        )
    if "\\u0000" in text:
        raise RequestError(f"{what} must not contain NUL characters")


def context_values(values: Any) -> dict[str, Any]:
    """A run's ``nbflow.context`` values, checked by the engine's rule and sized like parameters."""
    from nbflow.core.context import check_values
    from nbflow.core.errors import ParameterError

    try:
        checked = check_values(values, what="the run's context")
    except ParameterError as exc:
        raise RequestError(str(exc)) from None
    json_value(checked, "the run's context", largest=MAX_PARAMETERS_BYTES)
    return checked
