"""Contact cycles at the cadence of the risk level, missed contacts, urgent signals, reassessment."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.persistence.models import KeyPersonContact, KeyPersonRiskEntry, OutboxMessage
from tests.service.test_stabilization_support import (
    complete,
    detached,
    open_child_tasks,
    person,
    tick,
    under_control,
    user_id,
)

MONDAY = date(2026, 3, 2)


def record(services: Services, task_id: int, on: date, signal: str = "none") -> None:
    complete(
        services,
        "handler_sfs",
        task_id,
        {
            "contacted_on": on.isoformat(),
            "method": "visit",
            "situation": "情绪平稳，在家务农",
            "risk_signal": signal,
        },
    )


def opened_contacts(services: Services, kp_id: int) -> list[KeyPersonContact]:
    with services.uow() as uow:
        return detached(
            uow,
            uow.session.scalars(
                select(KeyPersonContact)
                .where(KeyPersonContact.key_person_id == kp_id)
                .order_by(KeyPersonContact.cycle_no)
            ),
        )


def simulate_weeks(
    services: Services, clock: SettableClock, kp_id: int, days: int
) -> list[KeyPersonContact]:
    """Tick every day for `days` days, recording every open contact on the day it opens."""
    for offset in range(days):
        day = MONDAY + timedelta(days=offset)
        tick(services, clock, day)
        for task in open_child_tasks(services, kp_id, "record_contact"):
            record(services, task.id, day)
    return opened_contacts(services, kp_id)


@pytest.mark.parametrize(("risk", "cadence"), [("high", 7), ("low", 30)])
def test_contact_tasks_open_at_the_cadence_of_the_risk_level(
    services: Services, clock: SettableClock, risk: str, cadence: int
) -> None:
    kp = under_control(services, risk)
    contacts = simulate_weeks(services, clock, kp["id"], 61)
    starts = [c.opened_on for c in contacts]
    expected = [MONDAY + timedelta(days=cadence * i) for i in range(len(starts))]
    assert starts == expected
    assert len(starts) == (61 + cadence - 1) // cadence
    assert all(c.due_on == c.opened_on + timedelta(days=cadence - 1) for c in contacts)
    assert all(c.state == "done" for c in contacts)
    assert person(services, kp["id"]).cadence_days == cadence


def test_high_risk_person_gets_weekly_tasks_and_low_risk_monthly(
    services: Services, clock: SettableClock
) -> None:
    high = under_control(services, "high")
    low = under_control(
        services, "low", name="李四", id_number="110105194912310038", phone="13900139000"
    )
    for offset in range(35):
        tick(services, clock, MONDAY + timedelta(days=offset))
        for kp in (high, low):
            for task in open_child_tasks(services, kp["id"], "record_contact"):
                record(services, task.id, MONDAY + timedelta(days=offset))
    assert len(opened_contacts(services, high["id"])) == 5
    assert len(opened_contacts(services, low["id"])) == 2


def test_the_contact_task_is_due_at_the_end_of_its_cycle(
    services: Services, clock: SettableClock
) -> None:
    kp = under_control(services, "high")
    tick(services, clock, MONDAY)
    [task] = open_child_tasks(services, kp["id"], "record_contact")
    assert task.role == "handler"
    assert task.due_at is not None
    assert task.due_at.date() == date(2026, 3, 8)  # Sunday 23:59:59 Shanghai = 15:59 UTC


def test_a_missed_contact_warns_the_team_and_marks_the_file_overdue(
    services: Services, clock: SettableClock
) -> None:
    kp = under_control(services, "high")
    tick(services, clock, MONDAY)
    assert len(open_child_tasks(services, kp["id"], "record_contact")) == 1
    tick(services, clock, MONDAY + timedelta(days=6))
    assert person(services, kp["id"]).contact_overdue_since is None
    tick(services, clock, MONDAY + timedelta(days=7))
    first, second = opened_contacts(services, kp["id"])
    assert first.state == "missed"
    assert second.state == "open"
    # The missed cycle's task is withdrawn; the new cycle's task is open.
    [task] = open_child_tasks(services, kp["id"], "record_contact")
    assert task.case_id == second.case_id
    assert person(services, kp["id"]).contact_overdue_since == date(2026, 3, 9)
    with services.uow() as uow:
        warned = set(
            uow.session.scalars(
                select(OutboxMessage.recipient_user_id).where(
                    OutboxMessage.template == "contact_missed", OutboxMessage.channel == "inapp"
                )
            )
        )
    assert user_id(services, "leader") in warned
    assert user_id(services, "handler_sfs") in warned
    # Running the tick again warns nobody twice.
    tick(services, clock, MONDAY + timedelta(days=7), hour=15)
    with services.uow() as uow:
        again = uow.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.template == "contact_missed", OutboxMessage.channel == "inapp"
            )
        ).all()
    assert len(again) == len(warned)
    # Recording the next contact clears the overdue mark.
    record(services, task.id, MONDAY + timedelta(days=7))
    assert person(services, kp["id"]).contact_overdue_since is None


def test_an_urgent_signal_alerts_the_lead_leader_at_once(
    services: Services, clock: SettableClock
) -> None:
    kp = under_control(services, "medium")
    tick(services, clock, MONDAY)
    [task] = open_child_tasks(services, kp["id"], "record_contact")
    record(services, task.id, MONDAY, signal="urgent")
    with services.uow() as uow:
        alerts = detached(
            uow,
            uow.session.scalars(
                select(OutboxMessage).where(OutboxMessage.template == "contact_urgent")
            ),
        )
    assert [a.recipient_user_id for a in alerts if a.channel == "inapp"] == [
        user_id(services, "leader")
    ]
    assert alerts[0].params["person_name"] == "张三"
    assert person(services, kp["id"]).last_risk_signal == "urgent"


def test_monthly_reassessment_adds_a_ledger_entry_and_changes_cadence_from_next_cycle(
    services: Services, clock: SettableClock
) -> None:
    kp = under_control(services, "low")
    tick(services, clock, MONDAY)  # first (30-day) cycle: 03-02 .. 03-31
    [contact] = open_child_tasks(services, kp["id"], "record_contact")
    record(services, contact.id, MONDAY)
    assert open_child_tasks(services, kp["id"], "reassess") == []
    tick(services, clock, date(2026, 4, 1))
    [reassess] = open_child_tasks(services, kp["id"], "reassess")
    assert reassess.assignee_id == user_id(services, "leader")
    complete(
        services,
        "leader",
        reassess.id,
        {
            "assessed_on": "2026-04-01",
            "risk_level": "high",
            "assessment": "近期串联他人，风险上升",
            "measures": "每周走访",
        },
    )
    with services.uow() as uow:
        entries = detached(
            uow,
            uow.session.scalars(
                select(KeyPersonRiskEntry)
                .where(KeyPersonRiskEntry.key_person_id == kp["id"])
                .order_by(KeyPersonRiskEntry.id)
            ),
        )
    assert [(e.kind, e.risk_level, e.previous_level) for e in entries] == [
        ("assess", "low", None),
        ("reassess", "high", "low"),
    ]
    assert entries[1].assessed_on == date(2026, 4, 1)
    # The cycle already open (opened 04-01 at the monthly cadence) keeps its length; the next
    # cycles open at the weekly cadence of the new level.
    for offset in range(0, 50):
        day = date(2026, 4, 1) + timedelta(days=offset)
        tick(services, clock, day)
        for task in open_child_tasks(services, kp["id"], "record_contact"):
            record(services, task.id, day)
    cycles = [(c.opened_on, c.due_on) for c in opened_contacts(services, kp["id"])]
    assert cycles == [
        (MONDAY, date(2026, 3, 31)),
        (date(2026, 4, 1), date(2026, 4, 30)),
        (date(2026, 5, 1), date(2026, 5, 7)),
        (date(2026, 5, 8), date(2026, 5, 14)),
        (date(2026, 5, 15), date(2026, 5, 21)),
    ]
    # One reassessment per month, however often the scheduler runs (May's is open).
    assert len(open_child_tasks(services, kp["id"], "reassess")) == 1
    tick(services, clock, date(2026, 5, 20), hour=18)
    assert len(open_child_tasks(services, kp["id"], "reassess")) == 1
