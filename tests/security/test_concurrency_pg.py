"""Two web workers and two schedulers on one PostgreSQL: a simulated month happens exactly once.

gunicorn -w 2 serves the API; every simulated step runs two `fengqiao tick --now T` processes
at the same moment (two schedulers catching up on the same due work). Over a month: every
review timer fires once (one escalation per case), every deadline gets one yellow and one red
warning, every screening round opens once per unit and month, and every webhook message is
delivered once. Concurrent completions of one task give one winner and 409 for the rest.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.bootstrap import build_services
from engine.clock import local_today
from engine.config import Settings
from engine.domain.calendar import DueDate
from engine.persistence.models import (
    Case,
    Deadline,
    DeadlineWarning,
    OutboxMessage,
    ScreeningRound,
    Task,
    Unit,
)
from engine.services.audit import verify_chains
from engine.services.deadlines import set_deadline
from tests.conftest import PG_URL
from tests.security.servers import (
    FENGQIAO,
    Fleet,
    call,
    cli,
    drop_pg_database,
    free_port,
    fresh_pg_database,
    instance_env,
    token,
    webhook_receiver,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="no PostgreSQL configured"),
]
CASES = 12
RACED = 6
RACERS = 4
STEP_DAYS = 4  # the yellow window (3 days + the due day) always holds a step
MONTH_DAYS = 32


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Processes of this test; all SIGKILLed at the end."""
    f = Fleet(tmp_path)
    yield f
    f.stop_all()


def _race(port: int, tok: str, task_id: int, today: str) -> list[int]:
    barrier = threading.Barrier(RACERS)
    statuses: list[int] = []

    def go() -> None:
        barrier.wait()
        status, _ = call(
            port,
            "POST",
            f"/api/v1/tasks/{task_id}/complete",
            {"data": {"decision": "reject", "decided_on": today}},
            tok,
        )
        statuses.append(status)

    threads = [threading.Thread(target=go) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return sorted(statuses)


def _tick_pair(env: dict[str, str], at: datetime) -> list[dict[str, int]]:
    procs = [
        subprocess.Popen(
            [*FENGQIAO, "tick", "--now", at.isoformat()],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_two_workers_and_two_schedulers_do_everything_exactly_once(
    tmp_path: Path, fleet: Fleet
) -> None:
    url = fresh_pg_database(PG_URL, "conc")
    try:
        with webhook_receiver() as hook:
            _simulate_month(tmp_path, fleet, url, hook)
    finally:
        fleet.stop_all()
        drop_pg_database(url)


def _simulate_month(tmp_path: Path, fleet: Fleet, url: str, hook: Any) -> None:
    env = instance_env(
        tmp_path, url, FENGQIAO_WEBHOOK_URL=hook.url, FENGQIAO_WEBHOOK_SECRET="conc-secret"
    )
    cli(env, "db", "upgrade")
    cli(env, "demo", "--no-cases")
    port = free_port()
    fleet.web(env, port, gunicorn=True, workers=2)
    services = build_services(Settings.from_env(env), deploy=False)
    try:
        with services.uow() as uow:
            s01 = int(uow.session.scalar(select(Unit.id).where(Unit.code == "S01")))
            d01 = int(uow.session.scalar(select(Unit.id).where(Unit.code == "D01")))
        clerk, handler = token(port, "clerk"), token(port, "handler")
        status, body = call(
            port, "PUT", "/api/v1/me/notification-preferences", {"webhook": True}, handler
        )
        assert status == 200, body
        cases = []
        for i in range(CASES):
            status, body = call(
                port,
                "POST",
                "/api/v1/cases",
                {
                    "case_type": "simple_review",
                    "unit_id": s01,
                    "title": f"并发 {i}",
                    "data": {"parent_unit_id": d01},
                },
                clerk,
            )
            assert status == 201, body
            cases.append(body)
        today = local_today(services.clock)

        # One winner, the rest 409, for every raced task (requests spread over both workers).
        for case in cases[:RACED]:
            statuses = _race(port, handler, case["open_tasks"][0]["id"], today.isoformat())
            assert statuses == [200] + [409] * (RACERS - 1), statuses

        # Each case gets a deadline inside the month: one yellow and one red warning each.
        with services.uow() as uow:
            for i, case in enumerate(cases):
                row = uow.session.get(Case, case["id"])
                assert row is not None
                due = today + timedelta(days=6 + 2 * i)
                set_deadline(uow, row, "handling", DueDate(due), source="concurrency test")
            uow.commit()

        start = datetime.now(UTC)
        totals: Counter[str] = Counter()
        for day in range(0, MONTH_DAYS + 1, STEP_DAYS):
            for result in _tick_pair(env, start + timedelta(days=day)):
                assert all(v >= 0 for v in result.values()), result
                totals.update(result)

        with services.uow() as uow:
            s = uow.session
            escalations = Counter(
                s.scalars(select(Task.case_id).where(Task.bpmn_id == "escalate")).all()
            )
            assert sorted(escalations) == sorted(c["id"] for c in cases[RACED:])
            assert set(escalations.values()) == {1}
            assert totals["fire_due_timers"] == CASES - RACED

            levels = Counter(s.execute(select(DeadlineWarning.level)).scalars().all())
            assert levels == {"yellow": CASES, "red": CASES}
            assert totals["raise_deadline_warnings"] == 2 * CASES
            missed = s.scalar(select(func.count(Deadline.id)).where(Deadline.state == "missed"))
            assert missed == CASES

            rounds = Counter(
                (r.unit_id, r.month) for r in s.execute(select(ScreeningRound)).scalars()
            )
            assert not rounds or set(rounds.values()) == {1}
            if "open_screening_rounds" in totals:
                assert totals["open_screening_rounds"] == len(rounds)

            webhook_rows = s.execute(
                select(OutboxMessage.idempotency_key, OutboxMessage.status).where(
                    OutboxMessage.channel == "webhook"
                )
            ).all()
            assert verify_chains(uow) == []
        assert webhook_rows and {r.status for r in webhook_rows} == {"sent"}
        with hook.lock:
            received = dict(hook.keys)
        assert set(received) == {r.idempotency_key for r in webhook_rows}
        duplicates = {k: n for k, n in received.items() if n > 1}
        assert not duplicates, duplicates
        print(
            f"\nconcurrency: {len(totals)} jobs x {MONTH_DAYS // STEP_DAYS + 1} steps x 2 "
            f"schedulers; timers fired {totals['fire_due_timers']}, warnings "
            f"{sum(levels.values())}, rounds {len(rounds)}, webhook messages "
            f"{len(received)}, duplicates 0; {RACED} tasks raced by {RACERS}: one winner each"
        )
    finally:
        services.engine.dispose()
