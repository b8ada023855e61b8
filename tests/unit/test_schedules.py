from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from nbflow import CronSchedule, IntervalSchedule, Schedule
from nbflow.core.errors import ScheduleError
from nbflow.core.schedules import parse_duration

NY = ZoneInfo("America/New_York")


def test_interval_next_10_on_a_fixed_grid() -> None:
    schedule = IntervalSchedule("10m")
    after = datetime(2024, 5, 1, 12, 3, 30, tzinfo=UTC)
    times = schedule.next(10, after=after)
    assert times[0] == datetime(2024, 5, 1, 12, 10, tzinfo=UTC)
    assert times == [times[0] + i * timedelta(minutes=10) for i in range(10)]


def test_interval_times_are_strictly_after() -> None:
    schedule = IntervalSchedule(60)
    on_grid = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert schedule.next(1, after=on_grid)[0] == on_grid + timedelta(minutes=1)


def test_daily_interval_keeps_wall_clock_across_spring_forward() -> None:
    schedule = IntervalSchedule("1d", start_date=datetime(2024, 3, 1, 9, 0), timezone="America/New_York")
    times = schedule.next(10, after=datetime(2024, 3, 5, 12, 0, tzinfo=NY))
    assert [t.hour for t in times] == [9] * 10
    assert [t.day for t in times] == list(range(6, 16))
    offsets = [t.utcoffset() for t in times]
    assert offsets[:4] == [timedelta(hours=-5)] * 4  # EST until March 10
    assert offsets[4:] == [timedelta(hours=-4)] * 6  # EDT after
    # Absolute spacing is 23 hours across the change.
    assert times[4].astimezone(UTC) - times[3].astimezone(UTC) == timedelta(hours=23)


def test_hourly_interval_is_absolute_across_fall_back() -> None:
    schedule = IntervalSchedule("1h", timezone="America/New_York")
    times = schedule.next(10, after=datetime(2024, 11, 2, 23, 30, tzinfo=NY))
    utc = [t.astimezone(UTC) for t in times]
    assert all(b - a == timedelta(hours=1) for a, b in zip(utc, utc[1:], strict=False))
    local_hours = [t.hour for t in times]
    assert local_hours[:4] == [0, 1, 1, 2]  # 01:00 happens twice in New York on Nov 3


def test_cron_next_10_weekdays_at_six() -> None:
    schedule = CronSchedule("0 6 * * 1-5")
    times = schedule.next(10, after=datetime(2024, 5, 3, 7, 0, tzinfo=UTC))  # a Friday
    assert times[0] == datetime(2024, 5, 6, 6, 0, tzinfo=UTC)
    assert all(t.weekday() < 5 and t.hour == 6 for t in times)
    assert len(times) == 10


def test_cron_in_a_time_zone_across_spring_forward() -> None:
    schedule = CronSchedule("0 9 * * *", timezone="America/New_York")
    times = schedule.next(10, after=datetime(2024, 3, 5, 12, 0, tzinfo=NY))
    assert [t.hour for t in times] == [9] * 10
    assert [t.utcoffset() for t in times][4] == timedelta(hours=-4)
    utc_hours = [t.astimezone(UTC).hour for t in times]
    assert utc_hours[:4] == [14] * 4 and utc_hours[4:] == [13] * 6


def test_cron_in_the_skipped_hour_runs_right_after_the_gap() -> None:
    schedule = CronSchedule("30 2 * * *", timezone="America/New_York")
    times = schedule.next(3, after=datetime(2024, 3, 9, 12, 0, tzinfo=NY))
    assert times[0] == datetime(2024, 3, 10, 3, 0, tzinfo=NY)  # 02:30 does not exist that day
    assert times[1] == datetime(2024, 3, 11, 2, 30, tzinfo=NY)


def test_fixed_time_cron_fires_once_when_the_hour_repeats() -> None:
    schedule = CronSchedule("30 1 * * *", timezone="America/New_York")
    times = schedule.next(10, after=datetime(2024, 10, 30, 12, 0, tzinfo=NY))
    days = [t.date().isoformat() for t in times]
    assert len(set(days)) == 10  # one run per day, including Nov 3
    assert "2024-11-03" in days


def test_every_30_minutes_follows_absolute_time_when_the_hour_repeats() -> None:
    schedule = CronSchedule("*/30 * * * *", timezone="America/New_York")
    times = schedule.next(10, after=datetime(2024, 11, 3, 0, 40, tzinfo=NY))
    utc = [t.astimezone(UTC) for t in times]
    assert all(b - a == timedelta(minutes=30) for a, b in zip(utc, utc[1:], strict=False))


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("0 6 * *", "it has 4 fields"),
        ("61 * * * *", "a field is out of range or malformed"),
        ("every day", "it has 2 fields"),
        ("0 6 * * 1-5 2024", "it has 6 fields"),
    ],
)
def test_invalid_cron_is_a_clear_error(cron: str, why: str) -> None:
    with pytest.raises(ScheduleError) as info:
        CronSchedule(cron)
    message = str(info.value)
    assert repr(cron) in message and why in message
    assert "minute hour day-of-month month day-of-week" in message


def test_unknown_time_zone() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        CronSchedule("0 6 * * *", timezone="Mars/Olympus")


def test_start_and_end_dates_bound_the_times() -> None:
    schedule = IntervalSchedule(
        "1d",
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        end_date=datetime(2024, 1, 3, tzinfo=UTC),
    )
    times = schedule.next(10, after=datetime(2023, 6, 1, tzinfo=UTC))
    assert times == [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]


def test_round_trip_through_dict() -> None:
    for schedule in (
        IntervalSchedule("90s", parameter_defaults={"region": "eu"}),
        CronSchedule("0 6 * * 1-5", timezone="Europe/Paris", start_date="2024-01-01T00:00:00"),
    ):
        again = Schedule.from_dict(schedule.to_dict())
        assert again == schedule
        after = datetime(2024, 5, 1, tzinfo=UTC)
        assert again.next(10, after=after) == schedule.next(10, after=after)
    assert IntervalSchedule("90s").describe() == "every 90s"
    assert CronSchedule("0 6 * * *", timezone="Europe/Paris").describe() == "cron 0 6 * * * (Europe/Paris)"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("1w", 604800), ("45", 45), (2.5, 2.5)],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["soon", "10 parsecs", "m10", ""])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ScheduleError, match="write it like 30s, 10m, 1h30m"):
        parse_duration(text)
