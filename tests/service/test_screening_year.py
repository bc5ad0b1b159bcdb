"""A simulated year of monthly dispute screening for the 24 villages (issue 5, 'Done means')."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine.bootstrap import Services, build_services
from engine.clock import LOCAL_TZ, SettableClock
from engine.errors import ConflictError, PermissionDeniedError, ValidationError
from engine.persistence.models import (
    Case,
    Deadline,
    DeadlineWarning,
    Hazard,
    MediationAgreement,
    OutboxMessage,
    ScreeningRound,
    Task,
    Unit,
    User,
)
from engine.services import screening, tasks, users
from engine.services.access import Actor, load_actor
from engine.services.demo import ADMIN
from engine.services.jobs import run_all
from engine.services.reports import Period

PASSWORD = "demo1234"


# -- helpers shared by the screening tests ---------------------------------------------------


def at(day: date, hour: int = 9) -> datetime:
    """A local (Shanghai) time on a day, as aware UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=LOCAL_TZ).astimezone(UTC)


def unit_id(services: Services, code: str) -> int:
    with services.uow() as uow:
        return int(uow.session.scalar(select(Unit.id).where(Unit.code == code)))


def actor(services: Services, username: str) -> Actor:
    with services.uow() as uow:
        uid = uow.session.scalar(select(User.id).where(User.username == username))
        assert uid is not None, username
        return load_actor(uow.session, uid)


def make_user(services: Services, username: str, *roles: tuple[str, str]) -> Actor:
    """A user holding role@unit-code grants, created through the users service."""
    with services.uow() as uow:
        grants = []
        for role, code in roles:
            uid = uow.session.scalar(select(Unit.id).where(Unit.code == code))
            grants.append({"role": role, "unit_id": uid})
        users.create_user(
            uow,
            ADMIN,
            username=username,
            password=PASSWORD,
            display_name=username,
            now=datetime(2026, 1, 1, tzinfo=UTC),
            roles=grants,
        )
        uow.commit()
    return actor(services, username)


def tick(services: Services, clock: SettableClock, when: datetime) -> dict[str, int]:
    """Move the clock and run every job once; our jobs must not fail."""
    clock.set(when)
    result = run_all(services, when)
    assert result["open_screening_rounds"] >= 0, result
    assert result["remind_screening"] >= 0, result
    return result


def round_of(services: Services, code: str, month: str) -> ScreeningRound:
    with services.uow() as uow:
        rnd = uow.session.scalars(
            select(ScreeningRound)
            .join(Unit, Unit.id == ScreeningRound.unit_id)
            .where(Unit.code == code, ScreeningRound.month == month)
        ).one()
        uow.session.expunge_all()
        return rnd


def open_task(services: Services, case_id: int, bpmn_id: str) -> int:
    with services.uow() as uow:
        task_id = uow.session.scalar(
            select(Task.id).where(
                Task.case_id == case_id, Task.bpmn_id == bpmn_id, Task.status == "open"
            )
        )
        assert task_id is not None, f"no open {bpmn_id} on case {case_id}"
        return int(task_id)


def report(
    services: Services, who: Actor, rnd: ScreeningRound, *, zero: bool, on: date
) -> dict[str, Any]:
    assert rnd.case_id is not None
    return tasks.complete_task(
        services,
        who,
        open_task(services, rnd.case_id, "submit_report"),
        {"zero_report": zero, "reported_on": on.isoformat()},
    )


def sign(
    services: Services, who: Actor, rnd: ScreeningRound, *, on: date, approve: bool = True
) -> dict[str, Any]:
    assert rnd.case_id is not None
    data: dict[str, Any] = {"approve": approve, "signed_on": on.isoformat()}
    if not approve:
        data["sign_comment"] = "请补充排查情况"
    return tasks.complete_task(services, who, open_task(services, rnd.case_id, "sign_report"), data)


def hazard_body(services: Services, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dispute_type": "land_homestead",
        "parties": "张三、李四",
        "involved_count": 2,
        "summary": "宅基地界址争议，双方多次争吵",
        "risk_level": "medium",
        "criminal_risk": False,
        "measures": "村调委会介入调解",
        "method": "people_mediation",
        "responsible_unit_id": unit_id(services, "V01"),
        "responsible_person": "孙干事",
        "owning_leader": "周书记",
    }
    body.update(overrides)
    return body


# -- the year --------------------------------------------------------------------------------


def test_a_year_of_screening_for_24_villages(services: Services, clock: SettableClock) -> None:
    with services.uow() as uow:
        reporting = uow.session.scalar(
            select(func.count())
            .select_from(Unit)
            .where(Unit.reporting.is_(True), Unit.active.is_(True))
        )
        villages = uow.session.scalar(
            select(func.count())
            .select_from(Unit)
            .where(Unit.reporting.is_(True), Unit.kind.in_(["village", "community"]))
        )
    assert villages == 24
    assert reporting == 28  # the 24 villages/communities + 4 departments marked reporting

    # Reporters and heads for V03..V13 (V01/V02 come with the demo organisation).
    reporters = {"V01": actor(services, "reporter_v01"), "V02": actor(services, "reporter_v02")}
    leaders = {"V01": actor(services, "leader_v01"), "V02": actor(services, "leader_v02")}
    for n in range(3, 14):
        code = f"V{n:02d}"
        reporters[code] = make_user(services, f"rep_{code.lower()}", ("reporter", code))
        leaders[code] = make_user(services, f"lead_{code.lower()}", ("leader", code))
    handler = actor(services, "handler_v01")
    supervisor = actor(services, "supervisor")
    # Someone who could both request and approve a closure: the approval must still be refused.
    dual = make_user(services, "dual_role", ("handler", "V01"), ("supervisor", "S01"))

    hazard_no = ""
    hazard_case = 0
    expected_zero = 0
    for month in range(1, 13):
        first = date(2026, month, 1)
        key = f"2026-{month:02d}"
        if month == 6:
            # The server was down on the start day: the next tick (the 5th) catches up.
            tick(services, clock, at(date(2026, 6, 5)))
        else:
            tick(services, clock, at(first))
            tick(services, clock, at(first, 10))  # a second tick the same morning: no-op
        with services.uow() as uow:
            count = uow.session.scalar(
                select(func.count()).select_from(ScreeningRound).where(ScreeningRound.month == key)
            )
        assert count == reporting, key

        report_day = first + timedelta(days=9)
        clock.set(at(report_day))
        if month == 2:
            # V01 finds a hazard in February; it stays open and is carried over.
            rnd = round_of(services, "V01", key)
            entry = screening.add_hazard(
                services, reporters["V01"], rnd.id, hazard_body(services, found_on="2026-02-08")
            )
            hazard_no = entry["ledger_no"]
            hazard_case = entry["case_id"]
            assert hazard_no.startswith("JF-2026-") and len(hazard_no) == len("JF-2026-000001")
        for code in reporters:
            if code == "V13":
                continue  # V13 reports late, below
            rnd = round_of(services, code, key)
            zero = not (month == 2 and code == "V01")
            report(services, reporters[code], rnd, zero=zero, on=report_day)
            sign(services, leaders[code], rnd, on=report_day)
            expected_zero += int(zero)

        tick(services, clock, at(first + timedelta(days=22)))  # reminders before the 25th
        tick(services, clock, at(first + timedelta(days=26)))  # red warnings after the 25th

        late_day = first + timedelta(days=26)
        clock.set(at(late_day, 15))
        rnd = round_of(services, "V13", key)
        report(services, reporters["V13"], rnd, zero=True, on=late_day)
        sign(services, leaders["V13"], rnd, on=late_day)
        expected_zero += 1

        if month in (3, 4):
            # The February hazard is in this month's ledger as carried over, not duplicated.
            with services.uow() as uow:
                ledger = screening.list_hazards(
                    uow, supervisor, screening.HazardFilter(month=key), late_day
                )
            assert [(h["ledger_no"], h["carried_over"]) for h in ledger["items"]] == [
                (hazard_no, True)
            ]
        if month == 4:
            _close_the_february_hazard(services, clock, hazard_case, handler, dual, supervisor)

        if month == 3:
            with services.uow() as uow:
                items = screening.list_rounds(uow, supervisor, month=key, today=late_day)
            by_code = {i["unit_code"]: i for i in items}
            assert by_code["V01"]["status"] == "signed" and not by_code["V01"]["late"]
            assert by_code["V01"]["carried_over_count"] == 1
            assert by_code["V01"]["hazard_count"] == 0
            assert by_code["V13"]["status"] == "signed" and by_code["V13"]["late"]
            assert by_code["V24"]["status"] == "overdue" and by_code["V24"]["late"]
            assert by_code["S01-SFS"]["status"] == "overdue"

    # A restart (new services on the same database) and more ticks add nothing.
    restarted = build_services(services.settings, clock, deploy=False)
    try:
        for day in (date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 28)):
            tick(restarted, clock, at(day))
    finally:
        restarted.engine.dispose()

    v24 = round_of(services, "V24", "2026-03")
    v13 = round_of(services, "V13", "2026-03")
    s01 = unit_id(services, "S01")
    with services.uow() as uow:
        total = uow.session.scalar(select(func.count()).select_from(ScreeningRound))
        village_rounds = uow.session.scalar(
            select(func.count())
            .select_from(ScreeningRound)
            .join(Unit, Unit.id == ScreeningRound.unit_id)
            .where(Unit.kind.in_(["village", "community"]))
        )
        round_cases = uow.session.scalar(
            select(func.count()).select_from(Case).where(Case.case_type == "screening_round")
        )
        # Late units flagged: the overdue red warning went to the unit head and the street
        # supervisor, once per round; the due-soon reminder to the reporters.
        red = uow.session.execute(
            select(OutboxMessage.template, User.username)
            .join(User, User.id == OutboxMessage.recipient_user_id)
            .where(OutboxMessage.case_id == v24.case_id)
        ).all()
        reminded = uow.session.scalars(
            select(User.username)
            .join(OutboxMessage, OutboxMessage.recipient_user_id == User.id)
            .where(
                OutboxMessage.case_id == v13.case_id,
                OutboxMessage.template == "screening_due_soon",
            )
        ).all()
        hazards = uow.session.scalar(select(func.count()).select_from(Hazard))
        figures = screening.screening_figures(
            uow,
            Period(
                date(2026, 1, 1),
                date(2026, 12, 31),
                s01,
                uow.session.scalar(select(Unit.path).where(Unit.code == "S01")) or "",
            ),
        )
    assert total == 12 * reporting == 336
    assert village_rounds == 12 * 24
    assert round_cases == total
    assert ("screening_overdue", "supervisor") in red
    assert [t for t, u in red if u == "supervisor"] == ["screening_overdue"]
    assert reminded == ["rep_v13"]
    assert hazards == 1

    # Figures: 12 signed on time per month (V01..V12), V13 late; 4 departments and V14..V24
    # never report. Zero reports: every report but V01's February one.
    timeliness = figures["screening_report_timeliness"]
    assert isinstance(timeliness, screening.Ratio)
    assert (timeliness.numerator, timeliness.denominator) == (12 * 12, 336)
    assert figures["zero_reports"] == expected_zero == 13 * 12 - 1
    assert figures["hazards_found"] == 1
    signoff = figures["hazard_signoff_rate"]
    assert isinstance(signoff, screening.Ratio)
    assert (signoff.numerator, signoff.denominator) == (1, 1)
    assert figures["hazards_overdue"] == 0

    # After sign-off the entry leaves later ledgers.
    with services.uow() as uow:
        may = screening.list_hazards(
            uow, supervisor, screening.HazardFilter(month="2026-05"), date(2026, 5, 30)
        )
        april = screening.list_hazards(
            uow, supervisor, screening.HazardFilter(month="2026-04"), date(2026, 5, 30)
        )
    assert may["total"] == 0
    assert april["items"][0]["status"] == "signed_off"
    assert april["items"][0]["carried_over"] is True


def _close_the_february_hazard(
    services: Services,
    clock: SettableClock,
    case_id: int,
    handler: Actor,
    dual: Actor,
    supervisor: Actor,
) -> None:
    """Resolve by mediation agreement, refuse a self-approval, then sign off (销号)."""
    with services.uow() as uow:
        hazard = uow.session.scalars(select(Hazard).where(Hazard.case_id == case_id)).one()
        warned = uow.session.scalars(
            select(DeadlineWarning.level).where(DeadlineWarning.case_id == case_id)
        ).all()
        uow.session.expunge_all()
    # The medium-risk time limit (15 days from 8 February) passed long ago: yellow, then red.
    assert hazard.time_limit_on == date(2026, 2, 24)
    assert sorted(warned) == ["red", "yellow"]

    clock.set(at(date(2026, 4, 28)))
    resolve = open_task(services, case_id, "resolve")
    with pytest.raises(ValidationError) as missing:
        tasks.complete_task(
            services,
            dual,
            resolve,
            {"resolution": "agreement", "resolved_on": "2026-04-27", "evidence_refs": "协议书"},
        )
    assert set(missing.value.errors) == {"agreement_no", "agreement_signed_on", "agreement_parties"}
    tasks.complete_task(
        services,
        dual,
        resolve,
        {
            "resolution": "agreement",
            "resolved_on": "2026-04-27",
            "evidence_refs": "调解协议书、现场核查照片、回访记录",
            "progress": "经村调委会调解，双方达成协议",
            "agreement_no": "枫调〔2026〕12号",
            "agreement_signed_on": "2026-04-27",
            "agreement_parties": "张三、李四",
        },
    )
    tasks.complete_task(
        services,
        actor(services, "leader_v01"),
        open_task(services, case_id, "confirm_closure"),
        {"confirm": True, "confirmed_on": "2026-04-28"},
    )
    approve = open_task(services, case_id, "approve_closure")
    with pytest.raises(PermissionDeniedError):
        tasks.complete_task(
            services, dual, approve, {"approve": True, "signed_off_on": "2026-04-28"}
        )
    # A rejection needs its reason, and goes back to resolve with it.
    with pytest.raises(ValidationError) as no_reason:
        tasks.complete_task(
            services, supervisor, approve, {"approve": False, "signed_off_on": "2026-04-28"}
        )
    assert "approve_comment" in no_reason.value.errors
    tasks.complete_task(
        services,
        supervisor,
        approve,
        {"approve": False, "signed_off_on": "2026-04-28", "approve_comment": "缺少当事人签字"},
    )
    with services.uow() as uow:
        back = uow.session.scalars(select(Hazard).where(Hazard.case_id == case_id)).one()
        uow.session.expunge_all()
    assert (back.status, back.rejection_reason) == ("open", "缺少当事人签字")
    tasks.complete_task(
        services,
        handler,
        open_task(services, case_id, "resolve"),
        {
            "resolution": "agreement",
            "resolved_on": "2026-04-28",
            "evidence_refs": "调解协议书（含当事人签字）、回访记录",
            "agreement_no": "枫调〔2026〕12号",
            "agreement_signed_on": "2026-04-27",
            "agreement_parties": "张三、李四",
        },
    )
    tasks.complete_task(
        services,
        actor(services, "leader_v01"),
        open_task(services, case_id, "confirm_closure"),
        {"confirm": True, "confirmed_on": "2026-04-28"},
    )
    tasks.complete_task(
        services,
        supervisor,
        open_task(services, case_id, "approve_closure"),
        {"approve": True, "signed_off_on": "2026-04-28"},
    )
    with services.uow() as uow:
        hazard = uow.session.scalars(select(Hazard).where(Hazard.case_id == case_id)).one()
        agreement = uow.session.scalars(
            select(MediationAgreement).where(MediationAgreement.hazard_id == hazard.id)
        ).one()
        kinds = {
            d.kind: d
            for d in uow.session.scalars(select(Deadline).where(Deadline.case_id == case_id))
        }
        case_row = uow.session.get(Case, case_id)
        uow.session.expunge_all()
    assert hazard.status == "signed_off"
    assert hazard.signed_off_on == date(2026, 4, 28)
    assert hazard.signed_off_by_id == supervisor.user_id
    assert case_row is not None and case_row.status == "completed"
    # 人民调解法 Art. 33: 30 days from 27 April is 27 May (a Wednesday).
    assert agreement.judicial_confirmation_due == date(2026, 5, 27)
    assert kinds["judicial_confirmation"].due_on == date(2026, 5, 27)
    assert kinds["hazard_medium"].met_on == date(2026, 4, 28)
    assert kinds["hazard_medium"].state == "missed"


def test_a_second_round_for_the_same_unit_and_month_is_impossible(
    services: Services, clock: SettableClock
) -> None:
    first = screening.open_rounds_for_month(services, "2026-03", clock.now())
    again = screening.open_rounds_for_month(services, "2026-03", clock.now())
    assert (first, again) == (28, 0)
    with services.uow() as uow:
        uow.session.add(
            ScreeningRound(
                unit_id=unit_id(services, "V01"),
                month="2026-03",
                due_on=date(2026, 3, 25),
                status="open",
                opened_at=clock.now(),
            )
        )
        with pytest.raises(IntegrityError):
            uow.session.flush()


def test_before_the_start_day_no_round_opens(services: Services, clock: SettableClock) -> None:
    from engine.services.settings import set_settings

    with services.uow() as uow:
        set_settings(uow, ADMIN, {"screening_start_day": 5}, clock.now())
        uow.commit()
    assert screening.open_screening_rounds(services, at(date(2026, 4, 4))) == 0
    assert screening.open_screening_rounds(services, at(date(2026, 4, 5))) == 28
    assert round_of(services, "V01", "2026-04").due_on == date(2026, 4, 25)


def test_a_round_that_was_signed_cannot_take_hazards(
    services: Services, clock: SettableClock
) -> None:
    screening.open_rounds_for_month(services, "2026-03", clock.now())
    rnd = round_of(services, "V01", "2026-03")
    report(services, actor(services, "reporter_v01"), rnd, zero=True, on=date(2026, 3, 2))
    with pytest.raises(ConflictError):
        screening.add_hazard(
            services, actor(services, "reporter_v01"), rnd.id, hazard_body(services)
        )
