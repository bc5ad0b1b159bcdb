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


def _petition_windows(services: Services, now: datetime) -> int:
    from engine.services.petitions import close_lapsed_windows

    return close_lapsed_windows(services, now)


def _warnings(services: Services, now: datetime) -> int:
    from engine.services.deadlines import raise_warnings

    return raise_warnings(services, now)


def _open_screening(services: Services, now: datetime) -> int:
    from engine.services.screening import open_screening_rounds

    return open_screening_rounds(services, now)


def _remind_screening(services: Services, now: datetime) -> int:
    from engine.services.screening import remind_screening

    return remind_screening(services, now)


def _stabilization(services: Services, now: datetime) -> int:
    from engine.services.stabilization import run_stabilization_jobs

    return run_stabilization_jobs(services, now)


def _daily_digest(services: Services, now: datetime) -> int:
    from engine.services.dispatch import send_daily_digests

    return send_daily_digests(services, now)


def _dispatch_outbox(services: Services, now: datetime) -> int:
    from engine.services.dispatch import run_dispatch_job

    return run_dispatch_job(services, now)


# SQLite collects no planner statistics by itself; without them it can pick a poor index for
# the KPI and annual-report aggregates. PostgreSQL's autovacuum analyzes on its own.
ANALYSIS_LIMIT = 1000  # rows sampled per index: approximate statistics, bounded cost


def _optimize_sqlite(services: Services, now: datetime) -> int:
    """Once a local day on SQLite, refresh the planner statistics (ANALYZE, PRAGMA optimize)."""
    from sqlalchemy import text
    from sqlalchemy.dialects.sqlite import insert

    from engine.clock import LOCAL_TZ
    from engine.persistence.models import JobRun

    if services.engine.dialect.name != "sqlite":
        return 0
    period = now.astimezone(LOCAL_TZ).date().isoformat()
    with services.uow() as uow:
        mark = insert(JobRun).values(job="optimize_sqlite", period=period, ran_at=now)
        if uow.session.execute(mark.on_conflict_do_nothing().returning(JobRun.id)).first() is None:
            return 0  # already done today
        uow.session.execute(text(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}"))
        uow.session.execute(text("ANALYZE"))
        uow.session.execute(text("PRAGMA optimize"))
        uow.commit()
    return 1


# Order matters within one tick: timers first (they may meet deadlines), then warnings;
# the outbox dispatcher sends what the jobs before it queued in the same tick.
JOBS: list[Job] = [
    Job("fire_due_timers", _fire_timers),
    Job("close_petition_windows", _petition_windows),
    Job("raise_deadline_warnings", _warnings),
    Job("open_screening_rounds", _open_screening),
    Job("remind_screening", _remind_screening),
    Job("key_person_cycles", _stabilization),
    Job("daily_digest", _daily_digest),
    Job("dispatch_outbox", _dispatch_outbox),
    Job("optimize_sqlite", _optimize_sqlite),
]


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
