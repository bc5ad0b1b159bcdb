"""Retry backoff and SMS quiet hours."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifications.policy import (
    MAX_ATTEMPTS,
    backoff_delay,
    is_exhausted,
    parse_quiet_hours,
    quiet_hours_release,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def no_jitter() -> float:
    return 0.5  # the middle of [0, 1): jitter factor exactly 1


@pytest.mark.parametrize(
    ("attempt", "seconds"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (5, 480), (6, 960), (7, 1920), (8, 3600), (9, 3600)],
)
def test_backoff_doubles_from_thirty_seconds_up_to_an_hour(attempt: int, seconds: int) -> None:
    assert backoff_delay(attempt, rng=no_jitter) == timedelta(seconds=seconds)


def test_backoff_jitter_stays_within_ten_percent() -> None:
    assert backoff_delay(2, rng=lambda: 0.0) == timedelta(seconds=54)
    assert backoff_delay(2, rng=lambda: 0.999999) <= timedelta(seconds=66)
    assert backoff_delay(2, rng=lambda: 0.999999) > timedelta(seconds=65.9)


def test_backoff_never_exceeds_the_cap_even_with_jitter() -> None:
    assert backoff_delay(20, rng=lambda: 0.999999) == timedelta(seconds=3600)


def test_backoff_of_absurd_attempt_counts_is_the_cap() -> None:
    assert backoff_delay(100_000, rng=no_jitter) == timedelta(seconds=3600)


def test_backoff_uses_the_random_jitter_by_default() -> None:
    delays = {backoff_delay(3) for _ in range(20)}

    assert all(timedelta(seconds=108) <= d <= timedelta(seconds=132) for d in delays)
    assert len(delays) > 1


def test_backoff_counts_attempts_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(0)


def test_eight_attempts_then_dead_letter() -> None:
    assert MAX_ATTEMPTS == 8
    assert not is_exhausted(7)
    assert is_exhausted(8)


def test_late_evening_sms_waits_until_seven_next_morning() -> None:
    now = datetime(2026, 10, 8, 23, 30, tzinfo=SHANGHAI)

    assert quiet_hours_release(now) == datetime(2026, 10, 9, 7, 0, tzinfo=SHANGHAI)


def test_small_hours_sms_waits_until_seven_the_same_morning() -> None:
    now = datetime(2026, 10, 9, 3, 15, tzinfo=SHANGHAI)

    assert quiet_hours_release(now) == datetime(2026, 10, 9, 7, 0, tzinfo=SHANGHAI)


def test_quiet_hours_crossing_midnight_at_year_end() -> None:
    now = datetime(2026, 12, 31, 22, 0, tzinfo=SHANGHAI)

    assert quiet_hours_release(now) == datetime(2027, 1, 1, 7, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize("clock", [time(7, 0), time(12, 0), time(21, 59, 59)])
def test_daytime_sms_goes_at_once(clock: time) -> None:
    now = datetime.combine(datetime(2026, 10, 9).date(), clock, tzinfo=SHANGHAI)

    assert quiet_hours_release(now) is None


def test_quiet_hours_within_one_day() -> None:
    lunch = (time(12, 0), time(14, 0))

    assert quiet_hours_release(datetime(2026, 10, 9, 12, 30, tzinfo=SHANGHAI), lunch) == (
        datetime(2026, 10, 9, 14, 0, tzinfo=SHANGHAI)
    )
    assert quiet_hours_release(datetime(2026, 10, 9, 11, 59, tzinfo=SHANGHAI), lunch) is None
    assert quiet_hours_release(datetime(2026, 10, 9, 14, 0, tzinfo=SHANGHAI), lunch) is None


def test_empty_quiet_window_never_holds_back() -> None:
    now = datetime(2026, 10, 9, 3, 0, tzinfo=SHANGHAI)

    assert quiet_hours_release(now, (time(0, 0), time(0, 0))) is None


def test_parse_quiet_hours() -> None:
    assert parse_quiet_hours("22:00-07:00") == (time(22, 0), time(7, 0))
    assert parse_quiet_hours(" 21:30 - 7:05 ") == (time(21, 30), time(7, 5))


@pytest.mark.parametrize(
    "text", ["", "22-07", "22:00", "25:00-07:00", "22:00-07:60", "22:00~07:00"]
)
def test_malformed_quiet_hours_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="quiet hours"):
        parse_quiet_hours(text)
