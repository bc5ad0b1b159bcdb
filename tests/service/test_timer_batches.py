"""Firing due timers in batches (issue 10 §4): worker processes and lost races change nothing.

Each case fired gets its `timer.fired` event, its task rows and its notifications, whether
its workflow ran in the scheduler's process or in a forked worker; a case changed by someone
else while its batch was being fired is skipped (and fired by the next tick), not the batch.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.persistence.models import AuditEvent, Case, OutboxMessage, Task, Timer
from engine.services import cases as cases_service
from engine.services import timers
from engine.services.audit import verify_chains
from tests.conftest import START
from tests.service.petition_support import actor, unit_id


def open_reviews(services: Services, count: int) -> list[int]:
    """`count` simple_review cases (a 3-day boundary timer on their review task)."""
    clerk = actor(services, "clerk")
    street = unit_id(services, "S01")
    return [
        cases_service.open_case(
            services, clerk, case_type="simple_review", unit_id=street, data={}, title=f"件{i}"
        )["id"]
        for i in range(count)
    ]


def outcome(services: Services, case_id: int) -> dict[str, Any]:
    """What firing left on a case: status, tasks, timer, audit actions, notifications."""
    with services.uow() as uow:
        session = uow.session
        case = session.get(Case, case_id)
        assert case is not None
        tasks = sorted(
            session.execute(select(Task.bpmn_id, Task.status).where(Task.case_id == case_id))
        )
        actions = list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.case_id == case_id)
                .order_by(AuditEvent.seq)
            )
        )
        messages = session.scalar(select(func.count()).where(OutboxMessage.case_id == case_id))
        return {
            "status": case.status,
            "version": case.version,
            "audit_seq": case.audit_seq,
            "tasks": tasks,
            "timer": session.get(Timer, case_id) is not None,
            "actions": actions,
            "messages": messages,
        }


def record_worker_starts(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """What each `_Workers.start` returned (None: the tick fired in-process)."""
    started: list[object] = []
    real_start = timers._Workers.start

    def spy(*args: Any) -> Any:
        pool = real_start(*args)
        started.append(pool)
        return pool

    monkeypatch.setattr(timers._Workers, "start", spy)
    return started


def test_workers_fire_each_case_as_the_scheduler_process_does(
    services: Services, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = open_reviews(services, 5)  # timers at START + 3 days
    clock.set(START + timedelta(days=1))
    there = open_reviews(services, 5)  # timers at START + 4 days

    clock.set(START + timedelta(days=3))
    assert timers.fire_due_timers(services, batch=2, parallel_from=10**9) == 5

    started = record_worker_starts(monkeypatch)
    # As in `fengqiao tick`; pytest may keep helper threads of other tests alive.
    monkeypatch.setattr(timers, "_fork_is_safe", lambda: True)
    clock.set(START + timedelta(days=4))
    assert timers.fire_due_timers(services, batch=2, parallel_from=1) == 5
    if (os.cpu_count() or 1) > 1:
        assert started and started[0] is not None  # the workers did run these

    expected = {
        "status": "running",
        "version": 3,  # inserted, written back by start_case, then fired
        "audit_seq": 2,
        "tasks": [("escalate", "open"), ("review", "cancelled")],
        "timer": False,
        "actions": ["case.started", "timer.fired"],
    }
    views = [outcome(services, cid) for cid in here + there]
    for view in views:
        assert {k: v for k, v in view.items() if k != "messages"} == expected
    # The escalate task's notifications, as many for a case fired by a worker as here.
    assert {v["messages"] for v in views} == {views[0]["messages"]}
    assert views[0]["messages"] > 0
    with services.uow() as uow:
        assert verify_chains(uow) == []
    assert timers.fire_due_timers(services, parallel_from=1) == 0


def test_a_case_changed_meanwhile_is_skipped_and_the_rest_of_its_batch_fires(
    services: Services, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = open_reviews(services, 4)
    raced = ids[1]
    real_apply = cases_service.apply_snapshot

    def racing_apply(ctx: Any, case: Case, *args: Any, **kwargs: Any) -> Any:
        if case.id == raced:
            # Someone else (a task completion) updated the case after the tick read it.
            ctx.uow.session.execute(
                update(Case)
                .where(Case.id == raced)
                .values(version=Case.version + 1)
                .execution_options(synchronize_session=False)
            )
        return real_apply(ctx, case, *args, **kwargs)

    monkeypatch.setattr("engine.services.timers.apply_snapshot", racing_apply)
    clock.set(START + timedelta(days=3))
    assert timers.fire_due_timers(services, batch=3) == 3
    for cid in ids:
        view = outcome(services, cid)
        assert view["timer"] is (cid == raced)
        assert view["actions"] == (
            ["case.started"] if cid == raced else ["case.started", "timer.fired"]
        )

    monkeypatch.setattr("engine.services.timers.apply_snapshot", real_apply)
    assert timers.fire_due_timers(services) == 1  # the next tick fires it
    assert outcome(services, raced)["actions"] == ["case.started", "timer.fired"]
    with services.uow() as uow:
        assert verify_chains(uow) == []


def test_two_schedulers_in_threads_fire_each_instance_once_without_forking(
    services: Services, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    forked = record_worker_starts(monkeypatch)
    ids = open_reviews(services, 24)
    clock.set(START + timedelta(days=3))
    fired: list[int] = []

    def scheduler() -> None:
        fired.append(timers.fire_due_timers(services, batch=4, parallel_from=1))

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sum(fired) == len(ids)
    assert forked and all(pool is None for pool in forked)  # a threaded process never forks
    for cid in ids:
        assert outcome(services, cid)["actions"] == ["case.started", "timer.fired"]
    with services.uow() as uow:
        assert verify_chains(uow) == []


def _die(jobs: list[tuple[int, str]]) -> list[bytes | None]:
    """A worker that dies (as if killed) on its first job."""
    os._exit(3)


def test_lost_workers_leave_the_firing_to_the_scheduler_process(
    services: Services, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = open_reviews(services, 6)
    monkeypatch.setattr(timers, "_fire_chunk", _die)
    monkeypatch.setattr(timers, "_fork_is_safe", lambda: True)
    clock.set(START + timedelta(days=3))
    assert timers.fire_due_timers(services, batch=2, parallel_from=1) == len(ids)
    for cid in ids:
        assert outcome(services, cid)["actions"] == ["case.started", "timer.fired"]
