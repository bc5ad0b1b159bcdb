"""Route SpiffWorkflow's hard-coded `datetime.now()` through the injected Clock.

SpiffWorkflow's timer module calls `datetime.now(timezone.utc)` with no hook
(SPIFFWORKFLOW.md trap 6). We replace that module's `datetime` name, once, with a
subclass whose `now()` reads the Clock of the runtime call in progress from a
context variable, so several runtimes with different clocks can run side by side in
threads without touching process-wide state during a call.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo

from SpiffWorkflow.bpmn.specs.event_definitions import timer as _spiff_timer

from engine.clock import LOCAL_TZ, Clock

_CURRENT_CLOCK: contextvars.ContextVar[Clock | None] = contextvars.ContextVar(
    "fengqiao_workflow_clock", default=None
)
# While refreshing timers we read the clock one microsecond late, so that a timer due
# exactly "now" fires (SpiffWorkflow compares with a strict `<`; a scheduler tick at the
# stored next_timer_at must not find the timer still pending).
_FIRING: contextvars.ContextVar[bool] = contextvars.ContextVar("fengqiao_firing", default=False)
_EPSILON = timedelta(microseconds=1)
_patch_lock = threading.Lock()


class _ClockDatetime(datetime):
    """`datetime` whose `now()` asks the Clock of the current runtime call."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _ClockDatetime:
        """Return the injected clock's time (the real time outside a runtime call)."""
        clock = _CURRENT_CLOCK.get()
        if clock is None:
            current = datetime.now(UTC)
        else:
            current = clock.now()
            if _FIRING.get():
                current = current + _EPSILON
        if tz is not None:
            current = current.astimezone(tz)
        elif clock is not None:
            # A naive now() is local wall time by definition; keep that meaning.
            current = current.astimezone().replace(tzinfo=None)
        return cls.combine(current.date(), current.timetz())


def install() -> None:
    """Patch SpiffWorkflow's timer module once (idempotent, thread-safe)."""
    with _patch_lock:
        if _spiff_timer.datetime is not _ClockDatetime:
            _spiff_timer.datetime = _ClockDatetime
            # Naive timer dates mean office time, not whatever zone the server runs in.
            _spiff_timer.LOCALTZ = LOCAL_TZ


@contextmanager
def using_clock(clock: Clock) -> Iterator[None]:
    """Make `clock` the time source for SpiffWorkflow and sandbox helpers within the block."""
    token = _CURRENT_CLOCK.set(clock)
    try:
        yield
    finally:
        _CURRENT_CLOCK.reset(token)


@contextmanager
def firing() -> Iterator[None]:
    """Treat timers due exactly now as due (see _FIRING)."""
    token = _FIRING.set(True)
    try:
        yield
    finally:
        _FIRING.reset(token)


def current_now() -> datetime:
    """The time of the current runtime call's clock (aware UTC), or the wall clock."""
    clock = _CURRENT_CLOCK.get()
    return clock.now().astimezone(UTC) if clock is not None else datetime.now(UTC)


install()
