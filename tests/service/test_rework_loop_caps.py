"""The human rework loops stop at their caps (SPIFFWORKFLOW.md trap 8): N rounds are fine,
the next is refused with a field message and writes nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.errors import ValidationError
from engine.persistence.models import AuditEvent, Case, Hazard, Petition, ScreeningRound, Task
from engine.services import petitions, screening, tasks
from tests.service import petition_support as ps
from tests.service.test_screening_year import (
    actor,
    at,
    hazard_body,
    open_task,
    report,
    round_of,
    sign,
)

ESCALATE_ZH = "退回次数已达上限，请报街道协调"
RETURNED = {"approve": False, "comment": "补充依据"}


def _state(services: Services, case_id: int) -> dict[str, Any]:
    """Everything a refused completion must leave alone: the case, its tasks, its audit."""
    with services.uow() as uow:
        case = uow.session.get(Case, case_id)
        assert case is not None
        open_tasks = uow.session.execute(
            select(Task.id, Task.bpmn_id, Task.status)
            .where(Task.case_id == case_id)
            .order_by(Task.id)
        ).all()
        audit = uow.session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.case_id == case_id)
        )
        petition = uow.session.scalars(select(Petition).where(Petition.case_id == case_id)).first()
        hazard = uow.session.scalars(select(Hazard).where(Hazard.case_id == case_id)).first()
        rnd = uow.session.scalars(
            select(ScreeningRound).where(ScreeningRound.case_id == case_id)
        ).first()
        return {
            "version": case.version,
            "status": case.status,
            "state": case.state,
            "data": dict(case.data),
            "tasks": [tuple(row) for row in open_tasks],
            "audit": audit,
            "petition": None
            if petition is None
            else (petition.status, petition.reply_returns, petition.extension_days),
            "hazard": None if hazard is None else (hazard.status, hazard.rejection_reason),
            "round": None if rnd is None else (rnd.status, rnd.rejection_reason),
        }


def _message(exc: ValidationError, field: str) -> str:
    """The first message the 422 gives for a field."""
    messages = exc.errors[field]
    assert isinstance(messages, list) and messages, exc.errors
    return str(messages[0])


def _open_tasks(services: Services, case_id: int) -> list[str]:
    with services.uow() as uow:
        return list(
            uow.session.scalars(
                select(Task.bpmn_id)
                .where(Task.case_id == case_id, Task.status == "open")
                .order_by(Task.id)
            )
        )


# -- petition ---------------------------------------------------------------------------------


def test_a_fourth_extension_request_is_refused(services: Services, clock: SettableClock) -> None:
    case_id = ps.register(services)["id"]
    ps.accept(services, case_id, "2026-03-02")
    for n in range(petitions.MAX_EXTENSION_REQUESTS):
        ps.handle(
            services,
            case_id,
            request_extension=True,
            extension_days=10,
            extension_reason=f"第{n}次",
        )
        ps.complete(services, "leader", case_id, "approve_extension", {"approve": False})
    assert _open_tasks(services, case_id) == ["handle"]
    before = _state(services, case_id)
    assert before["data"]["extension_round"] == petitions.MAX_EXTENSION_REQUESTS == 3
    with pytest.raises(ValidationError) as refused:
        ps.handle(
            services, case_id, request_extension=True, extension_days=10, extension_reason="再次"
        )
    message = _message(refused.value, "request_extension")
    assert "申请次数已达上限" in message and "街道协调" in message
    assert _state(services, case_id) == before
    # Handling on without an extension still works: the petition goes to the reply.
    ps.handle(services, case_id)
    assert _open_tasks(services, case_id) == ["draft_reply"]


def test_the_twenty_first_return_of_a_reply_is_refused(
    services: Services, clock: SettableClock
) -> None:
    case_id = ps.register(services)["id"]
    ps.accept(services, case_id, "2026-03-02")
    ps.handle(services, case_id)
    draft = {"outcome": "explain", "reply_text": "初稿"}
    for _ in range(petitions.MAX_REPLY_RETURNS):
        ps.complete(services, "handler", case_id, "draft_reply", draft)
        ps.complete(services, "leader", case_id, "approve_reply", RETURNED)
    assert _open_tasks(services, case_id) == ["draft_reply"]
    ps.complete(services, "handler", case_id, "draft_reply", draft)
    before = _state(services, case_id)
    assert before["petition"][1] == petitions.MAX_REPLY_RETURNS == 20
    with pytest.raises(ValidationError) as refused:
        ps.complete(services, "leader", case_id, "approve_reply", RETURNED)
    assert ESCALATE_ZH in _message(refused.value, "approve")
    assert _state(services, case_id) == before
    ps.complete(services, "leader", case_id, "approve_reply", {"approve": True})
    assert _open_tasks(services, case_id) == ["deliver_reply"]


# -- screening round --------------------------------------------------------------------------


def test_the_eleventh_return_of_a_screening_report_is_refused(
    services: Services, clock: SettableClock
) -> None:
    clock.set(at(date(2026, 3, 2)))
    screening.open_rounds_for_month(services, "2026-03", clock.now())
    rnd = round_of(services, "V02", "2026-03")
    assert rnd.case_id is not None
    reporter, leader = actor(services, "reporter_v02"), actor(services, "leader_v02")
    for _ in range(screening.MAX_SIGN_RETURNS):
        report(services, reporter, rnd, zero=True, on=date(2026, 3, 2))
        sign(services, leader, rnd, on=date(2026, 3, 2), approve=False)
    assert round_of(services, "V02", "2026-03").status == "open"
    report(services, reporter, rnd, zero=True, on=date(2026, 3, 2))
    before = _state(services, rnd.case_id)
    assert before["data"]["sign_returns"] == screening.MAX_SIGN_RETURNS == 10
    with pytest.raises(ValidationError) as refused:
        sign(services, leader, rnd, on=date(2026, 3, 2), approve=False)
    assert ESCALATE_ZH in _message(refused.value, "approve")
    assert _state(services, rnd.case_id) == before
    with pytest.raises(ValidationError) as english:
        sign(services, replace(leader, language="en"), rnd, on=date(2026, 3, 2), approve=False)
    assert "too many returns; escalate to the street" in _message(english.value, "approve")
    assert _state(services, rnd.case_id) == before
    sign(services, leader, rnd, on=date(2026, 3, 2))
    assert round_of(services, "V02", "2026-03").status == "signed"


# -- hazard -----------------------------------------------------------------------------------

RESOLVED = {"resolution": "decision", "resolved_on": "2026-03-02", "evidence_refs": "处理决定书"}


def _reject(services: Services, case_id: int, step: str) -> dict[str, Any]:
    """Resolve, then reject at `step` (confirm_closure or approve_closure)."""
    tasks.complete_task(
        services, actor(services, "handler_v01"), open_task(services, case_id, "resolve"), RESOLVED
    )
    leader = actor(services, "leader_v01")
    confirm = open_task(services, case_id, "confirm_closure")
    if step == "confirm_closure":
        data = {"confirm": False, "confirmed_on": "2026-03-02", "confirm_comment": "材料不全"}
        return tasks.complete_task(services, leader, confirm, data)
    tasks.complete_task(services, leader, confirm, {"confirm": True, "confirmed_on": "2026-03-02"})
    data = {"approve": False, "signed_off_on": "2026-03-02", "approve_comment": "缺少签字"}
    return tasks.complete_task(
        services, actor(services, "supervisor"), open_task(services, case_id, step), data
    )


def test_the_eleventh_rejection_of_a_hazard_closure_is_refused(
    services: Services, clock: SettableClock
) -> None:
    clock.set(at(date(2026, 3, 2)))
    screening.open_rounds_for_month(services, "2026-03", clock.now())
    rnd = round_of(services, "V01", "2026-03")
    entry = screening.add_hazard(
        services, actor(services, "reporter_v01"), rnd.id, hazard_body(services)
    )
    case_id = int(entry["case_id"])
    # Rejections at confirmation and at sign-off count together.
    for n in range(screening.MAX_CLOSURE_REJECTIONS):
        _reject(services, case_id, "confirm_closure" if n % 2 else "approve_closure")
    assert _open_tasks(services, case_id) == ["resolve"]
    leader, supervisor = actor(services, "leader_v01"), actor(services, "supervisor")
    tasks.complete_task(
        services, actor(services, "handler_v01"), open_task(services, case_id, "resolve"), RESOLVED
    )
    before = _state(services, case_id)
    assert before["data"]["closure_rejections"] == screening.MAX_CLOSURE_REJECTIONS == 10
    confirm = open_task(services, case_id, "confirm_closure")
    with pytest.raises(ValidationError) as at_confirmation:
        tasks.complete_task(
            services,
            leader,
            confirm,
            {"confirm": False, "confirmed_on": "2026-03-02", "confirm_comment": "再退回"},
        )
    assert ESCALATE_ZH in _message(at_confirmation.value, "confirm")
    assert _state(services, case_id) == before
    tasks.complete_task(services, leader, confirm, {"confirm": True, "confirmed_on": "2026-03-02"})
    before = _state(services, case_id)
    approve = open_task(services, case_id, "approve_closure")
    with pytest.raises(ValidationError) as at_signoff:
        tasks.complete_task(
            services,
            supervisor,
            approve,
            {"approve": False, "signed_off_on": "2026-03-02", "approve_comment": "再退回"},
        )
    assert ESCALATE_ZH in _message(at_signoff.value, "approve")
    assert _state(services, case_id) == before
    tasks.complete_task(
        services, supervisor, approve, {"approve": True, "signed_off_on": "2026-03-02"}
    )
    assert _state(services, case_id)["hazard"] == ("signed_off", None)
