"""Two schedulers ticking at once on the start day open exactly one round per unit (issue 5)."""

from __future__ import annotations

import threading
from datetime import date

from sqlalchemy import func, select

from engine.bootstrap import Services, build_services
from engine.clock import SettableClock
from engine.persistence.models import Case, OutboxMessage, ScreeningRound, Task, Unit
from engine.services.audit import verify_chains
from engine.services.jobs import run_all
from tests.service.test_screening_year import at


def test_two_concurrent_ticks_on_the_start_day_open_one_round_per_unit(
    services: Services, backend: str
) -> None:
    start = at(date(2026, 4, 1), 0)
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []
    failures: list[BaseException] = []

    def scheduler() -> None:
        # Each "process" has its own services: its own engine, pool and runtime.
        svc = build_services(services.settings, SettableClock(start), deploy=False)
        try:
            barrier.wait(timeout=30)
            results.append(run_all(svc, start))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)
        finally:
            svc.engine.dispose()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures
    assert len(results) == 2
    opened = sorted(r["open_screening_rounds"] for r in results)
    with services.uow() as uow:
        units = uow.session.scalar(
            select(func.count()).select_from(Unit).where(Unit.reporting.is_(True))
        )
        per_unit = uow.session.execute(
            select(ScreeningRound.unit_id, func.count())
            .where(ScreeningRound.month == "2026-04")
            .group_by(ScreeningRound.unit_id)
        ).all()
        cases = uow.session.scalar(
            select(func.count()).select_from(Case).where(Case.case_type == "screening_round")
        )
        tasks = uow.session.scalar(
            select(func.count()).select_from(Task).where(Task.bpmn_id == "submit_report")
        )
        opened_notices = uow.session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.template == "screening_opened")
        )
        broken = verify_chains(uow)
    assert units == 28
    # Neither scheduler failed; between them they opened each round once.
    assert min(opened) >= 0
    assert sum(opened) == units
    assert len(per_unit) == units
    assert all(n == 1 for _unit, n in per_unit)
    assert cases == units
    assert tasks == units
    assert opened_notices == 2  # reporter_v01 and reporter_v02, once each
    assert broken == []  # the bulk-started cases' audit chains verify
