"""Parameter and context values from the command line: ``-p name=value``, ``-c key=value``
and backfill ranges.

Values are JSON when they parse as JSON (``5``, ``true``, ``[1, 2]``) and
strings otherwise (``2024-02-01``, ``eu``).
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from nbflow.core.context import check_values
from nbflow.core.errors import ParameterError

if TYPE_CHECKING:
    from collections.abc import Iterable

_DATE_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")
_INT_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")
MAX_BACKFILL_RUNS = 10_000


def parse_value(text: str) -> Any:
    """A ``-p`` value: JSON when it parses, else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _split(item: str, *, what: str = "parameter", example: str = "-p start=2024-02-01") -> tuple[str, str]:
    name, sep, value = item.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ParameterError(f"cannot read {what} {item!r}; write it as name=value, e.g. {example}")
    return name, value.strip()


def parse_parameters(items: Iterable[str] | None) -> dict[str, Any]:
    """``["n=5", "region=eu"]`` -> ``{"n": 5, "region": "eu"}``."""
    out: dict[str, Any] = {}
    for item in items or ():
        name, value = _split(item)
        out[name] = parse_value(value)
    return out


def parse_context(items: Iterable[str] | None) -> dict[str, Any]:
    """``-c`` values of a run (``["region=eu"]`` -> ``{"region": "eu"}``), checked as
    ``nbflow.context`` takes them (JSON when they parse, strings otherwise)."""
    out: dict[str, Any] = {}
    for item in items or ():
        name, value = _split(item, what="context value", example="-c region=eu")
        out[name] = parse_value(value)
    return check_values(out)


def _expand_value(name: str, text: str) -> list[Any]:
    match = _DATE_RANGE.match(text)
    if match:
        try:
            start, end = date.fromisoformat(match.group(1)), date.fromisoformat(match.group(2))
        except ValueError as exc:
            raise ParameterError(f"parameter {name!r}: {exc} in {text!r}") from None
        if end < start:
            raise ParameterError(f"parameter {name!r}: range {text!r} ends before it starts")
        return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    match = _INT_RANGE.match(text)
    if match:
        lo, hi = int(match.group(1)), int(match.group(2))
        if hi < lo:
            raise ParameterError(f"parameter {name!r}: range {text!r} ends before it starts")
        return list(range(lo, hi + 1))
    if "," in text and not text.lstrip().startswith(("[", "{", '"')):
        return [parse_value(part.strip()) for part in text.split(",") if part.strip()]
    return [parse_value(text)]


def expand_backfill(items: Iterable[str]) -> list[dict[str, Any]]:
    """One parameter dict per combination: ``date=2024-01-01..2024-01-07``, ``region=eu,us``."""
    names: list[str] = []
    choices: list[list[Any]] = []
    for item in items:
        name, value = _split(item)
        names.append(name)
        choices.append(_expand_value(name, value))
    if not names:
        raise ParameterError(
            "a backfill needs at least one -p name=values, e.g. -p date=2024-01-01..2024-01-07"
        )
    total = 1
    for c in choices:
        total *= len(c)
    if total > MAX_BACKFILL_RUNS:
        raise ParameterError(
            f"this backfill would make {total:,} runs (more than {MAX_BACKFILL_RUNS:,}); narrow the ranges"
        )
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]
