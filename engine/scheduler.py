"""APScheduler wiring: the metronome that runs the jobs of engine.services.jobs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from engine.bootstrap import Services
from engine.services import jobs

log = logging.getLogger(__name__)


def _tick(services: Services) -> None:
    results = jobs.run_all(services)
    if any(results.values()):
        log.info("tick: %s", results)


def configure(scheduler: BaseScheduler, services: Services) -> BaseScheduler:
    """Run all jobs every interval; durable state is in our tables, so overlap is harmless."""
    scheduler.add_job(
        _tick,
        "interval",
        seconds=services.settings.scheduler_interval_seconds,
        args=[services],
        id="tick",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    return scheduler


def start_background(services: Services) -> BackgroundScheduler:
    """The embedded scheduler of `fengqiao serve`."""
    scheduler = BackgroundScheduler(timezone="Asia/Shanghai", daemon=True)
    configure(scheduler, services)
    scheduler.start()
    return scheduler


def run_blocking(services: Services) -> None:
    """The standalone scheduler of `fengqiao scheduler`."""
    scheduler = BlockingScheduler(timezone="Asia/Shanghai")
    configure(scheduler, services)
    scheduler.start()
