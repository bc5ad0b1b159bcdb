"""Round and ledger rules: zero reports, returns, reminders, notes, escalation (issue 5)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from engine.persistence.models import Case, Deadline, Hazard, OutboxMessage, User
from engine.services import screening, tasks
from tests.service.test_screening_year import (
    actor,
    at,
    hazard_body,
    open_task,
    report,
    round_of,
    sign,
    tick,
    unit_id,
)


def _open_march(services: Services, clock: SettableClock) -> None:
    clock.set(at(date(2026, 3, 2)))
    assert screening.open_rounds_for_month(services, "2026-03", clock.now()) == 28


def test_zero_report_must_match_the_hazards_entered(
    services: Services, clock: SettableClock
) -> None:
    _open_march(services, clock)
    reporter = actor(services, "reporter_v01")
    rnd = round_of(services, "V01", "2026-03")
    # No hazard entered: a non-zero report is refused.
    with pytest.raises(ValidationError) as none_entered:
        report(services, reporter, rnd, zero=False, on=date(2026, 3, 2))
    assert "zero_report" in none_entered.value.errors
    entry = screening.add_hazard(services, reporter, rnd.id, hazard_body(services))
    assert entry["ledger_no"] == "JF-2026-000001"
    assert entry["time_limit_on"] == date(2026, 3, 17)  # medium risk: 15 days (setting)
    # A hazard entered: a zero report is refused; nothing was written either time.
    with pytest.raises(ValidationError) as zero_with_hazard:
        report(services, reporter, rnd, zero=True, on=date(2026, 3, 2))
    assert "zero_report" in zero_with_hazard.value.errors
    assert round_of(services, "V01", "2026-03").status == "open"
    # A date in the future is refused.
    with pytest.raises(ValidationError) as future:
        report(services, reporter, rnd, zero=False, on=date(2026, 3, 9))
    assert "reported_on" in future.value.errors
    report(services, reporter, rnd, zero=False, on=date(2026, 3, 2))
    submitted = round_of(services, "V01", "2026-03")
    assert (submitted.status, submitted.zero_report) == ("submitted", False)


def test_the_head_can_send_a_report_back_with_a_reason(
    services: Services, clock: SettableClock
) -> None:
    _open_march(services, clock)
    rnd = round_of(services, "V02", "2026-03")
    report(services, actor(services, "reporter_v02"), rnd, zero=True, on=date(2026, 3, 2))
    leader = actor(services, "leader_v02")
    assert rnd.case_id is not None
    with pytest.raises(ValidationError) as no_reason:
        tasks.complete_task(
            services,
            leader,
            open_task(services, rnd.case_id, "sign_report"),
            {"approve": False, "signed_on": "2026-03-02"},
        )
    assert "sign_comment" in no_reason.value.errors
    sign(services, leader, rnd, on=date(2026, 3, 2), approve=False)
    back = round_of(services, "V02", "2026-03")
    assert (back.status, back.rejection_reason) == ("open", "请补充排查情况")
    # The other village's leader does not even see the task.
    report(services, actor(services, "reporter_v02"), rnd, zero=True, on=date(2026, 3, 2))
    with pytest.raises(NotFoundError):
        sign(services, actor(services, "leader_v01"), rnd, on=date(2026, 3, 2))
    sign(services, leader, rnd, on=date(2026, 3, 2))
    assert round_of(services, "V02", "2026-03").status == "signed"


def test_reminders_and_red_warnings_go_out_once(services: Services, clock: SettableClock) -> None:
    _open_march(services, clock)
    for day in (22, 22, 23):
        tick(services, clock, at(date(2026, 3, day)))
    for day in (26, 27):
        tick(services, clock, at(date(2026, 3, day)))
    rnd = round_of(services, "V01", "2026-03")
    with services.uow() as uow:
        sent = uow.session.execute(
            select(OutboxMessage.template, User.username, OutboxMessage.params)
            .join(User, User.id == OutboxMessage.recipient_user_id)
            .where(OutboxMessage.case_id == rnd.case_id)
            .order_by(OutboxMessage.id)
        ).all()
    got = [(t, u) for t, u, _p in sent]
    assert got == [
        ("screening_opened", "reporter_v01"),
        ("screening_due_soon", "reporter_v01"),
        ("screening_overdue", "leader_v01"),
        ("screening_overdue", "supervisor"),
    ]
    assert sent[1][2]["days_left"] == 3


def test_progress_notes_and_hazard_filters(services: Services, clock: SettableClock) -> None:
    _open_march(services, clock)
    reporter = actor(services, "reporter_v01")
    rnd = round_of(services, "V01", "2026-03")
    high = screening.add_hazard(
        services,
        reporter,
        rnd.id,
        hazard_body(
            services,
            risk_level="high",
            criminal_risk=True,
            responsible_unit_id=unit_id(services, "S01-SFS"),
            method="administrative_mediation",
        ),
    )
    low = screening.add_hazard(services, reporter, rnd.id, hazard_body(services, risk_level="low"))
    assert high["time_limit_on"] == date(2026, 3, 9)  # 7 days from 2 March
    assert low["time_limit_on"] == date(2026, 4, 1)  # 30 days
    handler_sfs = actor(services, "handler_sfs")
    note = screening.add_hazard_note(services, handler_sfs, high["id"], "已约谈双方当事人")
    assert note["text"] == "已约谈双方当事人"
    with pytest.raises(NotFoundError):
        screening.add_hazard_note(services, actor(services, "reporter_v02"), high["id"], "x")
    with pytest.raises(PermissionDeniedError):
        screening.add_hazard_note(services, actor(services, "supervisor"), high["id"], "x")
    clock.set(at(date(2026, 3, 12)))
    today = date(2026, 3, 12)
    supervisor, reporter_v02 = actor(services, "supervisor"), actor(services, "reporter_v02")
    with services.uow() as uow:
        sfs_view = screening.list_hazards(uow, handler_sfs, screening.HazardFilter(), today)
        overdue = screening.list_hazards(
            uow, supervisor, screening.HazardFilter(overdue=True), today
        )
        by_risk = screening.list_hazards(
            uow, reporter, screening.HazardFilter(risk_level="low"), today
        )
        other = screening.list_hazards(uow, reporter_v02, screening.HazardFilter(), today)
        detail = screening.get_hazard(uow, handler_sfs, high["id"], today)
        deadline = uow.session.execute(
            select(Deadline.kind, Deadline.due_on).where(Deadline.case_id == high["case_id"])
        ).one()
    # The judicial office sees only the entry it is responsible for.
    assert [h["ledger_no"] for h in sfs_view["items"]] == [high["ledger_no"]]
    assert [h["ledger_no"] for h in overdue["items"]] == [high["ledger_no"]]
    assert [h["ledger_no"] for h in by_risk["items"]] == [low["ledger_no"]]
    assert other["total"] == 0
    assert detail["progress"] == "已约谈双方当事人"
    assert [n["text"] for n in detail["notes"]] == ["已约谈双方当事人"]
    assert detail["case"]["open_tasks"][0]["bpmn_id"] == "resolve"
    assert detail["case"]["open_tasks"][0]["unit_id"] == unit_id(services, "S01-SFS")
    assert tuple(deadline) == ("hazard_high", date(2026, 3, 9))
    with services.uow() as uow, pytest.raises(NotFoundError):
        screening.get_hazard(uow, reporter_v02, high["id"], today)


def test_bad_hazard_input_gets_field_messages_and_writes_nothing(
    services: Services, clock: SettableClock
) -> None:
    _open_march(services, clock)
    rnd = round_of(services, "V01", "2026-03")
    with pytest.raises(ValidationError) as bad:
        screening.add_hazard(
            services,
            actor(services, "reporter_v01"),
            rnd.id,
            hazard_body(
                services,
                dispute_type="gossip",
                involved_count=0,
                responsible_unit_id=999_999,
                time_limit_on="2026-03-01",
            ),
        )
    assert set(bad.value.errors) == {
        "dispute_type",
        "involved_count",
        "responsible_unit_id",
        "time_limit_on",
    }
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Hazard)) == 0
    # Another village's reporter does not even see the round.
    with pytest.raises(NotFoundError):
        screening.add_hazard(
            services, actor(services, "reporter_v02"), rnd.id, hazard_body(services)
        )


def test_escalation_registers_a_linked_key_person_file_and_petition(
    services: Services, clock: SettableClock
) -> None:
    _open_march(services, clock)
    rnd = round_of(services, "V01", "2026-03")
    reporter = actor(services, "reporter_v01")
    first = screening.add_hazard(services, reporter, rnd.id, hazard_body(services))
    second = screening.add_hazard(
        services, reporter, rnd.id, hazard_body(services, parties="王五", dispute_type="wages")
    )
    leader = actor(services, "leader")
    person = screening.escalate_hazard(
        services, leader, first["id"], "key_person", {"name": "张三"}
    )
    assert person["escalated_to"] == "key_person"
    with pytest.raises(ConflictError):
        screening.escalate_hazard(services, leader, first["id"], "petition", {})
    # Registering a petition is the petition office's act (intake).
    with pytest.raises(PermissionDeniedError):
        screening.escalate_hazard(services, leader, second["id"], "petition", {})
    petition = screening.escalate_hazard(
        services, actor(services, "clerk"), second["id"], "petition", {}
    )
    assert petition["escalated_to"] == "petition"
    assert petition["escalated_case_no"].startswith("XF-2026-")
    with services.uow() as uow:
        linked = {
            c.case_type: c.parent_case_id
            for c in uow.session.scalars(
                select(Case).where(
                    Case.id.in_([person["escalated_case_id"], petition["escalated_case_id"]])
                )
            )
        }
    assert linked == {"stabilization": first["case_id"], "petition": second["case_id"]}
