"""One clock for the whole application, so tests and `tick --now` move time without sleeping."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    """Anything that can tell the current aware UTC time."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware, in UTC."""
        return datetime.now(UTC)


class SettableClock:
    """A clock that stands still until told to move; used by tests, demos and `tick --now`."""

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = start or datetime.now(UTC)
        if self._now.tzinfo is None:
            raise ValueError("SettableClock needs an aware datetime")

    def now(self) -> datetime:
        """Return the time the clock was last set to."""
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to an absolute, timezone-aware time."""
        if when.tzinfo is None:
            raise ValueError("SettableClock needs an aware datetime")
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        """Move forward by a duration."""
        with self._lock:
            self._now = self._now + delta


def local_today(clock: Clock) -> date:
    """Today's date at the street office (Asia/Shanghai), which business dates are compared to."""
    return clock.now().astimezone(LOCAL_TZ).date()


def local_midnight_utc(day: date) -> datetime:
    """The UTC instant at which a local (Asia/Shanghai) calendar day begins."""
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ).astimezone(UTC)
