"""`tick --now`: exactly the yellow, red and supervision (督办) items expected, once (issue 3)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.errors import ValidationError
from engine.persistence.models import Deadline, DeadlineWarning, PetitionSupervision, Task, Unit
from engine.services import petitions
from engine.services.jobs import run_all
from tests.service.petition_support import accept, actor, at, complete, register


def warnings(services: Services) -> set[tuple[int, str, str]]:
    """(case id, deadline kind, level) of every warning raised so far."""
    with services.uow() as uow:
        rows = uow.session.execute(
            select(Deadline.case_id, Deadline.kind, DeadlineWarning.level).join(
                Deadline, Deadline.id == DeadlineWarning.deadline_id
            )
        ).all()
    return {(c, k, lv) for c, k, lv in rows}


def supervise_tasks(services: Services) -> list[tuple[str | None, int | None]]:
    """(role, unit) of every open supervise task."""
    with services.uow() as uow:
        return [
            (t.role, t.unit_id)
            for t in uow.session.scalars(
                select(Task).where(Task.bpmn_id == "supervise", Task.status == "open")
            )
        ]


def test_tick_raises_exactly_the_expected_warnings_and_supervision_once(
    services: Services, clock: SettableClock
) -> None:
    at(clock, date(2026, 3, 2))
    t1 = register(services)["id"]  # acceptance due 03-17, remit objection 03-09
    t2 = register(services, subject="红旗村道路破损", request="请求维修村道")["id"]
    accept(services, t2, "2026-03-02")  # reply due 05-06; acceptance met
    t3 = register(services, received_on="2026-02-27", subject="噪声扰民", request="夜间施工")["id"]
    # t3: 02-27 + 15 = Saturday 03-14 -> Monday 03-16; remit objection 03-06.

    at(clock, date(2026, 3, 14))
    first = run_all(services, clock.now())
    assert first["raise_deadline_warnings"] == 2
    assert first["close_petition_windows"] == 2  # both remit-objection windows lapsed quietly
    assert warnings(services) == {
        (t1, "acceptance_notice", "yellow"),
        (t3, "acceptance_notice", "yellow"),
    }
    again = run_all(services, clock.now())
    assert again["raise_deadline_warnings"] == 0
    assert again["close_petition_windows"] == 0
    assert supervise_tasks(services) == []

    at(clock, date(2026, 3, 18))
    later = run_all(services, clock.now())
    assert later["raise_deadline_warnings"] == 2
    assert warnings(services) == {
        (t1, "acceptance_notice", "yellow"),
        (t3, "acceptance_notice", "yellow"),
        (t1, "acceptance_notice", "red"),
        (t3, "acceptance_notice", "red"),
    }
    opened = supervise_tasks(services)
    with services.uow() as uow:
        street = uow.session.scalar(select(Unit.id).where(Unit.code == "S01"))
        rows = [
            (r.petition_id, r.opened_on) for r in uow.session.scalars(select(PetitionSupervision))
        ]
    assert sorted(rows) == sorted([(t1, date(2026, 3, 18)), (t3, date(2026, 3, 18))])
    assert opened == [("supervisor", street)] * 2
    assert run_all(services, clock.now())["raise_deadline_warnings"] == 0
    assert len(supervise_tasks(services)) == 2

    clerk = actor(services, "clerk")
    shown = petitions.get_petition(services, clerk, t1)
    assert shown["supervisions"][0]["deadline_kind"] == "acceptance_notice"
    assert shown["supervisions"][0]["case_no"].startswith("DB-2026-")
    assert "petition.supervision_opened" in [e["action"] for e in shown["timeline"]]
    assert (
        petitions.list_petitions(services, clerk, petitions.PetitionFilter(overdue=True))["total"]
        == 2
    )

    # The supervisor records the intervention; it shows on the petition's timeline.
    supervision_case = shown["supervisions"][0]["case_id"]
    with pytest.raises(ValidationError) as err:
        complete(
            services,
            "supervisor",
            supervision_case,
            "supervise",
            {"method": "phone", "instructed_on": "2026-03-17"},
        )
    assert list(err.value.errors) == ["instructed_on"]
    complete(
        services,
        "supervisor",
        supervision_case,
        "supervise",
        {"method": "interview", "notes": "约谈信访办负责人", "instructed_on": "2026-03-18"},
    )
    shown = petitions.get_petition(services, clerk, t1)
    assert shown["supervisions"][0]["method"] == "interview"
    supervised = [e for e in shown["timeline"] if e["action"] == "petition.supervised"]
    assert supervised[0]["detail"]["method"] == "interview"
    assert supervised[0]["actor"] == "赵督查（综治中心）"

    # A late decision afterwards is recorded as missed; no new warning or supervision.
    complete(
        services,
        "clerk",
        t1,
        "decide_acceptance",
        {"decision": "accept", "responsible_unit_id": street},
    )
    assert run_all(services, clock.now())["raise_deadline_warnings"] == 0
    acceptance = {d["kind"]: d for d in petitions.get_petition(services, clerk, t1)["deadlines"]}
    assert acceptance["acceptance_notice"]["state"] == "missed"
    assert acceptance["acceptance_notice"]["met_on"] == date(2026, 3, 18)
