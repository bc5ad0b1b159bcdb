"""Retry and timing policy for the outbox dispatcher: backoff and SMS quiet hours."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Final

MAX_ATTEMPTS: Final = 8  # with the default backoff: about 64 minutes of retries in all
DEFAULT_QUIET_HOURS: Final = (time(22, 0), time(7, 0))

_QUIET_RE: Final = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def backoff_delay(
    attempt: int,
    *,
    base: float = 30.0,
    factor: float = 2.0,
    cap: float = 3600.0,
    jitter: float = 0.1,
    rng: Callable[[], float] = random.random,
) -> timedelta:
    """Wait before retry number `attempt` (1 -> ~base, 2 -> ~base*factor, ...), capped."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    try:
        delay = min(cap, base * factor ** (attempt - 1))
    except OverflowError:
        delay = cap
    # Spread retries of messages that failed together (e.g. the SMTP server was down).
    delay *= 1.0 + jitter * (2.0 * rng() - 1.0)
    return timedelta(seconds=max(0.0, min(cap, delay)))


def is_exhausted(attempts: int, max_attempts: int = MAX_ATTEMPTS) -> bool:
    """True when a message has been tried `max_attempts` times and should be dead-lettered."""
    return attempts >= max_attempts


def quiet_hours_release(
    now_local: datetime, quiet: tuple[time, time] = DEFAULT_QUIET_HOURS
) -> datetime | None:
    """SMS only: None outside quiet hours, else the local time they end (may cross midnight)."""
    start, end = quiet
    if start == end:
        return None  # an empty window: no quiet hours
    now_time = now_local.time().replace(tzinfo=None)
    today = now_local.date()
    if start < end:  # e.g. 12:00-14:00, within one day
        in_quiet = start <= now_time < end
        release_day = today
    elif now_time >= start:  # e.g. 22:00-07:00, evening part
        in_quiet = True
        release_day = today + timedelta(days=1)
    else:  # e.g. 22:00-07:00, early-morning part
        in_quiet = now_time < end
        release_day = today
    if not in_quiet:
        return None
    return datetime.combine(release_day, end, tzinfo=now_local.tzinfo)


def parse_quiet_hours(text: str) -> tuple[time, time]:
    """Parse a setting like '22:00-07:00' into (start, end); ValueError if malformed."""
    match = _QUIET_RE.match(text)
    if not match:
        raise ValueError(f"quiet hours must look like 22:00-07:00, not {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    try:
        return time(h1, m1), time(h2, m2)
    except ValueError as exc:
        raise ValueError(f"quiet hours {text!r}: {exc}") from exc
