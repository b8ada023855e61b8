"""Schedules: when a flow should run. ``schedule.next(n, after=...)`` gives the next n times.

Times are time-zone aware. An interval that is a whole number of days keeps
its wall-clock time across daylight-saving changes (a daily 09:00 run stays
at 09:00); shorter intervals are absolute durations. Cron strings are read
by croniter in the schedule's time zone, so ``0 9 * * *`` means 09:00 local.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from nbflow.core.errors import ScheduleError

if TYPE_CHECKING:
    from collections.abc import Mapping

# Default anchor of interval schedules: fixed, so every server replica and
# every notebook computes the same times for the same interval.
DEFAULT_ANCHOR = datetime(2020, 1, 1, tzinfo=UTC)
_DAY = timedelta(days=1)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)


def parse_duration(text: str | float | timedelta) -> timedelta:
    """``"90s"``, ``"10m"``, ``"1h30m"``, ``"2d"``, ``"1w"`` or seconds as a number."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float) and not isinstance(text, bool):
        return timedelta(seconds=text)
    raw = str(text).strip()
    try:
        return timedelta(seconds=float(raw))
    except ValueError:
        pass
    pos, seconds = 0, 0.0
    for match in _DURATION.finditer(raw.replace(" ", "")):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2).lower()]
        pos = match.end()
    if pos == 0 or pos != len(raw.replace(" ", "")):
        raise ScheduleError(f"cannot read duration {text!r}; write it like 30s, 10m, 1h30m, 2d or 1w")
    return timedelta(seconds=seconds)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {name!r}; use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None


def _aware(when: datetime | str | None, zone: ZoneInfo, field: str) -> datetime | None:
    if when is None:
        return None
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            raise ScheduleError(f"{field} {when!r} is not an ISO date-time") from None
    return when.replace(tzinfo=zone) if when.tzinfo is None else when.astimezone(zone)


MIN_INTERVAL = timedelta(seconds=1)
"""The shortest interval of an ``IntervalSchedule``."""


class Schedule(ABC):
    """When a flow runs: ``next(n)`` gives the next start times; subclasses define the rule."""

    kind: ClassVar[str]

    def __init__(
        self,
        *,
        timezone: str = "UTC",
        start_date: datetime | str | None = None,
        end_date: datetime | str | None = None,
        parameter_defaults: Mapping[str, Any] | None = None,
    ) -> None:
        self.timezone = timezone
        self.zone = _zone(timezone)
        self.start_date = _aware(start_date, self.zone, "start_date")
        self.end_date = _aware(end_date, self.zone, "end_date")
        self.parameter_defaults = dict(parameter_defaults or {})

    def next(self, n: int, after: datetime | None = None) -> list[datetime]:
        """The next ``n`` times strictly after ``after`` (default: now), in the schedule's zone."""
        if after is None:
            after = datetime.now(UTC)
        elif after.tzinfo is None:
            after = after.replace(tzinfo=self.zone)
        if self.start_date is not None and after < self.start_date:
            # Let the start date itself be the first time when it is on the schedule.
            after = self.start_date - timedelta(microseconds=1)
        out: list[datetime] = []
        try:
            for when in self._times_after(after.astimezone(self.zone)):
                if len(out) >= n or (self.end_date is not None and when > self.end_date):
                    break
                out.append(when)
        except (OverflowError, ValueError, KeyError) as exc:
            # Dates past the year 9999, or a cron string no date matches (30 February).
            raise ScheduleError(
                f"{self.describe()} has no run time after {out[-1] if out else after:%Y-%m-%d %H:%M} "
                f"({type(exc).__name__}: {exc})"
            ) from None
        return out

    @abstractmethod
    def _times_after(self, after: datetime) -> Any: ...

    def _common_dict(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "end_date": self.end_date.isoformat() if self.end_date else None,
            "parameter_defaults": self.parameter_defaults,
        }

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON form registration sends (``from_dict`` reads it back)."""

    @abstractmethod
    def describe(self) -> str:
        """A one-line description for messages and the UI."""

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> Schedule:
        """The schedule a ``to_dict`` made; ``ScheduleError`` for anything else."""
        common = {
            "timezone": data.get("timezone") or "UTC",
            "start_date": data.get("start_date"),
            "end_date": data.get("end_date"),
            "parameter_defaults": data.get("parameter_defaults") or {},
        }
        kind = data.get("type")
        if kind == "interval":
            return IntervalSchedule(timedelta(seconds=float(data["interval"])), **common)
        if kind == "cron":
            return CronSchedule(str(data["cron"]), **common)
        raise ScheduleError(f"unknown schedule type {kind!r}; expected 'interval' or 'cron'")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.describe())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class IntervalSchedule(Schedule):
    """Every fixed duration from a start time; whole days keep their wall-clock time across DST."""

    kind = "interval"

    def __init__(self, interval: timedelta | float | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.interval = parse_duration(interval)
        if self.interval < MIN_INTERVAL:
            raise ScheduleError(
                f"interval must be at least {MIN_INTERVAL.total_seconds():g} second, got {interval!r}"
            )
        self._wall_clock = self.interval % _DAY == timedelta(0)

    def _times_after(self, after: datetime) -> Any:
        anchor = (self.start_date or DEFAULT_ANCHOR).astimezone(self.zone)
        step = self.interval
        # Estimate the index in absolute time; wall-clock steps differ by at most an hour.
        k = max(0, math.floor((after - anchor) / step))
        while True:
            when = self._at(anchor, k)
            if when > after:
                break
            k += 1
        while True:
            yield self._at(anchor, k)
            k += 1

    def _at(self, anchor: datetime, k: int) -> datetime:
        if self._wall_clock:
            # Same-zone arithmetic on aware datetimes is wall-clock arithmetic;
            # the round trip through UTC settles times that DST skipped.
            return (anchor + k * self.interval).astimezone(UTC).astimezone(self.zone)
        return (anchor.astimezone(UTC) + k * self.interval).astimezone(self.zone)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form registration sends."""
        return {"type": "interval", "interval": self.interval.total_seconds(), **self._common_dict()}

    def describe(self) -> str:
        """``every 1h (UTC)`` and the like."""
        return f"every {_format_duration(self.interval)}"


class CronSchedule(Schedule):
    """A cron expression (croniter) in a time zone; a fixed hour fires once when clocks fall back."""

    kind = "cron"

    def __init__(self, cron: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        cron = " ".join(str(cron).split())
        fields = cron.split(" ")
        if len(fields) != 5 or not croniter.is_valid(cron):
            why = (
                f"it has {len(fields)} fields" if len(fields) != 5 else "a field is out of range or malformed"
            )
            raise ScheduleError(
                f"invalid cron string {cron!r}: {why}. A cron string has 5 fields, "
                "minute hour day-of-month month day-of-week, e.g. '0 6 * * 1-5'"
            )
        self.cron = cron

    def _times_after(self, after: datetime) -> Any:
        it = croniter(self.cron, after)
        # When clocks fall back, a fixed-hour entry (``30 1 * * *``) would fire at
        # both 01:30s; like Vixie cron we fire once. ``*``-hour entries keep
        # following absolute time, so ``*/30 * * * *`` still runs every 30 minutes.
        fixed_hour = self.cron.split(" ")[1] != "*"
        previous_wall: datetime | None = None
        while True:
            when = it.get_next(datetime).astimezone(self.zone)
            wall = when.replace(tzinfo=None)
            if fixed_hour and wall == previous_wall:
                continue
            previous_wall = wall
            yield when

    def to_dict(self) -> dict[str, Any]:
        """The JSON form registration sends."""
        return {"type": "cron", "cron": self.cron, **self._common_dict()}

    def describe(self) -> str:
        """``cron '0 6 * * *' (Europe/Paris)`` and the like."""
        zone = "" if self.timezone == "UTC" else f" ({self.timezone})"
        return f"cron {self.cron}{zone}"


def _format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{delta.total_seconds():g}s"
