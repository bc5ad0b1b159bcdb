"""Scheduler jobs: each is idempotent and calls services only (DESIGN.md §4)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from engine.bootstrap import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A named job; `run` returns a count of what it did, for logs and `tick`."""

    name: str
    run: Callable[[Services, datetime], int]


def _fire_timers(services: Services, now: datetime) -> int:
    from engine.services.timers import fire_due_timers

    return fire_due_timers(services, now)


def _warnings(services: Services, now: datetime) -> int:
    from engine.services.deadlines import raise_warnings

    return raise_warnings(services, now)


# Order matters within one tick: timers first (they may meet deadlines), then warnings.
JOBS: list[Job] = [Job("fire_due_timers", _fire_timers), Job("raise_deadline_warnings", _warnings)]


def register_job(job: Job) -> None:
    """Add a job (capabilities register theirs at import)."""
    if all(j.name != job.name for j in JOBS):
        JOBS.append(job)


def run_all(services: Services, now: datetime | None = None) -> dict[str, int]:
    """Run every job once as of `now` (`fengqiao tick`); a failing job does not stop the others."""
    now = now or services.clock.now()
    results: dict[str, int] = {}
    for job in list(JOBS):
        try:
            results[job.name] = job.run(services, now)
        except Exception:
            log.exception("job %s failed", job.name)
            results[job.name] = -1
    return results
