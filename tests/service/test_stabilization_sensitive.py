"""Sensitive periods: daily report tasks for high and medium persons, stopping at the end."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.errors import ValidationError
from engine.persistence.models import KeyPersonDailyReport, OutboxMessage
from engine.services.demo import ADMIN
from engine.services.settings import set_settings
from tests.service.test_stabilization_support import (
    complete,
    detached,
    open_child_tasks,
    tick,
    under_control,
    user_id,
)

START = date(2026, 3, 10)
END = date(2026, 3, 12)


def set_period(services: Services) -> None:
    with services.uow() as uow:
        set_settings(
            uow,
            ADMIN,
            {
                "sensitive_periods": [
                    {"start": "2026-03-10", "end": "2026-03-12", "name": "全国两会"}
                ]
            },
            services.clock.now(),
        )
        uow.commit()


def reports(services: Services, kp_id: int) -> list[KeyPersonDailyReport]:
    with services.uow() as uow:
        return detached(
            uow,
            uow.session.scalars(
                select(KeyPersonDailyReport)
                .where(KeyPersonDailyReport.key_person_id == kp_id)
                .order_by(KeyPersonDailyReport.report_on)
            ),
        )


def test_a_sensitive_period_opens_daily_reports_that_stop_when_it_ends(
    services: Services, clock: SettableClock
) -> None:
    high = under_control(services, "high")
    low = under_control(
        services, "low", name="李四", id_number="110105194912310038", phone="13900139000"
    )
    set_period(services)
    for offset in range(0, 8):
        day = date(2026, 3, 8) + timedelta(days=offset)
        tick(services, clock, day)
        tick(services, clock, day, hour=17)  # a second tick the same day adds nothing
        open_reports = open_child_tasks(services, high["id"], "daily_report")
        if START <= day <= END:
            assert len(open_reports) == 1, day
            assert open_reports[0].due_at is not None
            complete(
                services,
                "handler_sfs",
                open_reports[0].id,
                {"all_calm": True, "risk_signal": "none"},
            )
        else:
            assert open_reports == [], day
        assert open_child_tasks(services, low["id"], "daily_report") == []
    rows = reports(services, high["id"])
    assert [(r.report_on, r.state, r.all_calm) for r in rows] == [
        (START, "done", True),
        (date(2026, 3, 11), "done", True),
        (END, "done", True),
    ]
    assert {r.period_name for r in rows} == {"全国两会"}
    assert reports(services, low["id"]) == []


def test_a_report_must_say_all_calm_or_describe_the_situation(
    services: Services, clock: SettableClock
) -> None:
    kp = under_control(services, "medium")
    set_period(services)
    tick(services, clock, START)
    [task] = open_child_tasks(services, kp["id"], "daily_report")
    with pytest.raises(ValidationError) as info:
        complete(services, "handler_sfs", task.id, {"all_calm": False, "risk_signal": "rising"})
    assert "situation" in info.value.errors
    with pytest.raises(ValidationError):
        complete(services, "handler_sfs", task.id, {"risk_signal": "none"})  # silence refused
    complete(
        services,
        "handler_sfs",
        task.id,
        {"all_calm": False, "situation": "扬言赴京，已劝返", "risk_signal": "urgent"},
    )
    with services.uow() as uow:
        alerted = list(
            uow.session.scalars(
                select(OutboxMessage.recipient_user_id).where(
                    OutboxMessage.template == "contact_urgent", OutboxMessage.channel == "inapp"
                )
            )
        )
    assert alerted == [user_id(services, "leader")]


def test_an_unfiled_daily_report_is_missed_and_withdrawn_the_next_day(
    services: Services, clock: SettableClock
) -> None:
    kp = under_control(services, "high")
    set_period(services)
    tick(services, clock, END)
    assert len(open_child_tasks(services, kp["id"], "daily_report")) == 1
    tick(services, clock, END + timedelta(days=1))
    assert open_child_tasks(services, kp["id"], "daily_report") == []
    [row] = reports(services, kp["id"])
    assert row.state == "missed"
