"""Closure (销号): proposal, approval by the lead leader (never the proposer), the petition
office's check, rejections back with their reason, sign-off and reopening."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.errors import ConflictError, PermissionDeniedError, ValidationError
from engine.persistence.models import Case, KeyPersonClosure, Task
from engine.services import stabilization, tasks
from tests.service.test_stabilization_support import (
    actor,
    assess,
    complete,
    current_case,
    detached,
    form_team,
    make_user,
    open_child_tasks,
    open_task,
    person,
    register,
    tick,
    under_control,
    user_id,
)

MONDAY = date(2026, 3, 2)
PROPOSAL = {
    "evidence_kind": "mediation_agreement",
    "evidence_ref": "司调〔2026〕8号",
    "return_visit_on": "2026-03-02",
    "resolution_summary": "达成调解协议，本人签字息访",
}


def propose(services: Services, kp_id: int, who: str = "handler_sfs") -> None:
    complete(
        services,
        who,
        open_task(services, current_case(services, kp_id), "propose_closure"),
        PROPOSAL,
    )


def approve(
    services: Services, kp_id: int, who: str, decision: str = "approve", reason: str = ""
) -> None:
    complete(
        services,
        who,
        open_task(services, current_case(services, kp_id), "approve_closure"),
        {"approve_decision": decision, "approve_reason": reason, "approved_on": "2026-03-02"},
    )


def verify(services: Services, kp_id: int, decision: str = "approve", reason: str = "") -> None:
    complete(
        services,
        "clerk",
        open_task(services, current_case(services, kp_id), "verify_closure"),
        {"verify_decision": decision, "verify_reason": reason, "verified_on": "2026-03-02"},
    )


def closures(services: Services, kp_id: int) -> list[KeyPersonClosure]:
    with services.uow() as uow:
        return detached(
            uow,
            uow.session.scalars(
                select(KeyPersonClosure)
                .where(KeyPersonClosure.key_person_id == kp_id)
                .order_by(KeyPersonClosure.id)
            ),
        )


def test_a_proposer_cannot_approve_their_own_closure(services: Services) -> None:
    # A street leader who also handles for the judicial office leads the team and proposes.
    make_user(services, "boss", ("leader", "S01"), ("handler", "S01-SFS"))
    kp = register(services)
    form_team(services, kp, lead="boss")
    assess(services, kp, "medium", who="boss")
    propose(services, kp["id"], who="boss")
    task_id = open_task(services, kp["case_id"], "approve_closure")
    boss_id = user_id(services, "boss")
    with pytest.raises(PermissionDeniedError):
        approve(services, kp["id"], "boss")
    # Nothing was written: the approval is still open, the closure still only proposed.
    with services.uow() as uow:
        task = uow.session.get(Task, task_id)
        assert task is not None
        assert task.status == "open"
        assert task.assignee_id == boss_id
    assert [c.status for c in closures(services, kp["id"])] == ["proposed"]
    assert person(services, kp["id"]).status == "closure_proposed"
    # The lead leader hands the approval to the street's other leaders, who may approve.
    tasks.release_task(services, actor(services, "boss"), task_id)
    approve(services, kp["id"], "leader")
    [closure] = closures(services, kp["id"])
    assert closure.status == "approved"
    assert closure.proposed_by_id == user_id(services, "boss")
    assert closure.approved_by_id == user_id(services, "leader")


def test_rejections_go_back_with_their_reason_and_re_approval_signs_off(
    services: Services, clock: SettableClock
) -> None:
    kp = under_control(services, "high")
    tick(services, clock, MONDAY)
    assert len(open_child_tasks(services, kp["id"], "record_contact")) == 1
    propose(services, kp["id"])
    # A rejection needs its reason (422, nothing written).
    with pytest.raises(ValidationError) as info:
        approve(services, kp["id"], "leader", decision="reject")
    assert "approve_reason" in info.value.errors
    approve(services, kp["id"], "leader", decision="reject", reason="回访记录缺本人签字")
    assert person(services, kp["id"]).status == "under_control"
    with services.uow() as uow:
        case = uow.session.get(Case, kp["case_id"])
        assert case is not None
        assert case.data["last_rejection"] == "包案领导退回：回访记录缺本人签字"
    # The proposer cannot forge the reason shown on the next proposal.
    complete(
        services,
        "handler_sfs",
        open_task(services, kp["case_id"], "propose_closure"),
        {**PROPOSAL, "last_rejection": "无"},
    )
    with services.uow() as uow:
        case = uow.session.get(Case, kp["case_id"])
        assert case is not None
        assert case.data["last_rejection"] == "包案领导退回：回访记录缺本人签字"
    approve(services, kp["id"], "leader")
    assert person(services, kp["id"]).status == "closure_approved"
    verify(services, kp["id"], decision="reject", reason="调解协议未盖章")
    propose(services, kp["id"])
    approve(services, kp["id"], "leader")
    verify(services, kp["id"])
    rows = closures(services, kp["id"])
    assert [(c.status, c.rejected_step, c.rejection_reason) for c in rows] == [
        ("rejected", "approve", "回访记录缺本人签字"),
        ("rejected", "verify", "调解协议未盖章"),
        ("signed_off", None, None),
    ]
    signed = rows[-1]
    assert signed.signed_off_on == date(2026, 3, 2)
    assert signed.approved_by_id == user_id(services, "leader")
    assert signed.verified_by_id == user_id(services, "clerk")
    kp_row = person(services, kp["id"])
    assert kp_row.status == "signed_off"
    assert kp_row.signed_off_on == date(2026, 3, 2)
    # Sign-off ends the contacts: the open cycle is withdrawn and no new one opens.
    assert open_child_tasks(services, kp["id"], "record_contact") == []
    tick(services, clock, MONDAY + timedelta(days=14))
    assert open_child_tasks(services, kp["id"], "record_contact") == []
    with services.uow() as uow:
        main = uow.session.get(Case, kp["case_id"])
        assert main is not None
        assert main.status == "completed"


def test_the_petition_office_check_must_be_made_by_another_person(services: Services) -> None:
    make_user(services, "twohats", ("leader", "S01"), ("intake", "S01"))
    kp = register(services)
    form_team(services, kp, lead="twohats")
    assess(services, kp, "low", who="twohats")
    propose(services, kp["id"])
    approve(services, kp["id"], "twohats")
    with pytest.raises(PermissionDeniedError):
        complete(
            services,
            "twohats",
            open_task(services, kp["case_id"], "verify_closure"),
            {"verify_decision": "approve", "verified_on": "2026-03-02"},
        )


def test_a_signed_off_file_can_be_reopened_with_a_reason(
    services: Services, clock: SettableClock
) -> None:
    kp = under_control(services, "medium")
    clerk = actor(services, "clerk")
    with pytest.raises(ConflictError):
        stabilization.reopen_key_person(services, clerk, kp["id"], "复访")
    propose(services, kp["id"])
    approve(services, kp["id"], "leader")
    verify(services, kp["id"])
    with pytest.raises(ValidationError):
        stabilization.reopen_key_person(services, clerk, kp["id"], "  ")
    with pytest.raises(PermissionDeniedError):
        stabilization.reopen_key_person(services, actor(services, "handler_sfs"), kp["id"], "复访")
    old_case = kp["case_id"]
    view = stabilization.reopen_key_person(services, clerk, kp["id"], "本人再次赴区上访")
    assert view["status"] == "assessing"
    assert view["reopened_count"] == 1
    assert view["closures"][-1]["status"] == "reopened"
    assert view["closures"][-1]["reopen_reason"] == "本人再次赴区上访"
    new_case = current_case(services, kp["id"])
    assert new_case != old_case
    leader_id = user_id(services, "leader")
    with services.uow() as uow:
        case = uow.session.get(Case, new_case)
        assert case is not None
        assert case.parent_case_id == old_case
        # The team is kept: the lead leader reassesses straight away.
        assess_task = uow.session.scalars(
            select(Task).where(Task.case_id == new_case, Task.status == "open")
        ).one()
        assert assess_task.bpmn_id == "assess"
        assert assess_task.assignee_id == leader_id
    assess(services, kp, "high")
    assert person(services, kp["id"]).status == "under_control"
    tick(services, clock, MONDAY + timedelta(days=1))
    assert len(open_child_tasks(services, kp["id"], "record_contact")) == 1
    with services.uow() as uow:
        count = uow.session.scalar(
            select(func.count())
            .select_from(KeyPersonClosure)
            .where(KeyPersonClosure.key_person_id == kp["id"])
        )
    assert count == 1
