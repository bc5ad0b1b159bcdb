"""Deployment lint rules and instance migration through the services (issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.errors import PermissionDeniedError, ValidationError
from engine.persistence.models import AuditEvent, Case, Task, Unit, User
from engine.services.access import load_actor
from engine.services.cases import open_case
from engine.services.definitions import deploy_upload, migrate_instances, validate_bpmn
from engine.services.tasks import complete_task
from engine.services.timers import fire_due_timers
from tests.conftest import TEST_BPMN

NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:camunda="http://camunda.org/schema/1.0/bpmn"'
)


def bpmn(body: str, pid: str = "p") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions {NS} id="d" '
        f'targetNamespace="t"><bpmn:process id="{pid}" isExecutable="true">{body}'
        "</bpmn:process></bpmn:definitions>"
    ).encode()


def actor(services: Services, username: str) -> Any:
    with services.uow() as uow:
        user_id = uow.session.scalar(select(User.id).where(User.username == username))
        return load_actor(uow.session, int(user_id))


def s01(services: Services) -> int:
    with services.uow() as uow:
        return int(uow.session.scalar(select(Unit.id).where(Unit.code == "S01")))


def test_an_automatic_loop_without_timer_or_counter_is_refused() -> None:
    xml = bpmn(
        '<bpmn:startEvent id="s"/><bpmn:scriptTask id="spin" scriptFormat="python">'
        "<bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>"
        '<bpmn:exclusiveGateway id="gw" default="back"/><bpmn:endEvent id="e"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="spin"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="spin" targetRef="gw"/>'
        '<bpmn:sequenceFlow id="out" sourceRef="gw" targetRef="e">'
        "<bpmn:conditionExpression>x == 2</bpmn:conditionExpression></bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="back" sourceRef="gw" targetRef="spin"/>'
    )
    with pytest.raises(ValidationError) as exc:
        validate_bpmn(xml, filename="spin.bpmn")
    assert "gw" in exc.value.errors
    assert "unbounded" in str(exc.value.errors["gw"][0])
    assert "循环" in str(exc.value.errors["gw"][1])


def test_conditional_flows_out_of_a_task_are_refused_naming_the_task() -> None:
    """SpiffWorkflow runs no conditional flows out of tasks: say so, never a 500."""
    xml = bpmn(
        '<bpmn:startEvent id="s"/><bpmn:userTask id="t" camunda:candidateGroups="handler" '
        'default="plain"/><bpmn:endEvent id="a"/><bpmn:endEvent id="b"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t"/>'
        '<bpmn:sequenceFlow id="cond" sourceRef="t" targetRef="a">'
        "<bpmn:conditionExpression>True</bpmn:conditionExpression></bpmn:sequenceFlow>"
        '<bpmn:sequenceFlow id="plain" sourceRef="t" targetRef="b"/>'
    )
    with pytest.raises(ValidationError) as exc:
        validate_bpmn(xml, filename="ok.bpmn")
    assert "t" in exc.value.errors


def test_only_admins_deploy(services: Services) -> None:
    with pytest.raises(PermissionDeniedError):
        deploy_upload(
            services,
            actor(services, "leader"),
            "x.bpmn",
            (TEST_BPMN / "simple_review.bpmn").read_bytes(),
        )


def test_camunda_modeler_bpmn_runs_as_authored(services: Services, clock: SettableClock) -> None:
    """formData forms, candidateGroups, camunda:assignee and an unquoted P3D timer."""
    xml = (TEST_BPMN / "lint" / "valid_camunda_modeler_review.bpmn").read_bytes()
    deploy_upload(services, actor(services, "admin"), "modeler.bpmn", xml)
    view = open_case(
        services,
        actor(services, "clerk"),
        case_type="modeler_review",
        unit_id=s01(services),
        data={"parent_unit_id": s01(services)},
    )
    review = view["open_tasks"][0]
    assert review["bpmn_id"] == "review" and review["role"] == "handler"
    with pytest.raises(ValidationError) as exc:  # the formData constraints hold
        complete_task(
            services,
            actor(services, "handler"),
            review["id"],
            {"decision": "maybe", "amount": 5000},
        )
    assert {"decision", "amount", "decided_on"} <= set(exc.value.errors)
    result = complete_task(
        services,
        actor(services, "handler"),
        review["id"],
        {"decision": "approve", "amount": 300, "decided_on": "2026-03-02"},
    )
    approve = result["next_tasks"][0]
    assert approve["bpmn_id"] == "approve"
    assert approve["assignee_id"] == actor(services, "leader").user_id  # camunda:assignee

    # A second case waits three days (P3D, written without quotes) and is escalated.
    second = open_case(
        services,
        actor(services, "clerk"),
        case_type="modeler_review",
        unit_id=s01(services),
        data={"parent_unit_id": s01(services)},
    )
    clock.set(datetime(2026, 3, 5, 2, 0, tzinfo=UTC))
    assert fire_due_timers(services) == 1
    with services.uow() as uow:
        open_ids = uow.session.scalars(
            select(Task.bpmn_id).where(Task.case_id == second["id"], Task.status == "open")
        ).all()
    assert list(open_ids) == ["escalate"]


def test_migration_is_audited_and_new_tasks_follow_the_new_version(services: Services) -> None:
    admin = actor(services, "admin")
    old_xml = (TEST_BPMN / "lint" / "valid_camunda_modeler_review.bpmn").read_bytes()
    deploy_upload(services, admin, "modeler.bpmn", old_xml)
    view = open_case(
        services,
        actor(services, "clerk"),
        case_type="modeler_review",
        unit_id=s01(services),
        data={"parent_unit_id": s01(services)},
    )
    new_xml = old_xml.replace(
        b'<bpmn:userTask id="review" name="Review \xe5\xae\xa1\xe6\xa0\xb8" '
        b'camunda:candidateGroups="handler">',
        b'<bpmn:userTask id="review" name="Review v2" camunda:candidateGroups="intake">',
    )
    assert new_xml != old_xml
    target = deploy_upload(services, admin, "modeler.bpmn", new_xml)["definitions"][0]
    dry = migrate_instances(services, admin, target["id"], dry_run=True)
    assert [(i["case_id"], i["movable"]) for i in dry["items"]] == [(view["id"], True)]
    assert dry["items"][0]["reopened_tasks"] == ["review"]

    done = migrate_instances(services, admin, target["id"], dry_run=False)
    assert done["migrated"] == 1
    with services.uow() as uow:
        case = uow.session.get(Case, view["id"])
        assert case is not None and case.definition_id == target["id"]
        event = uow.session.scalars(
            select(AuditEvent).where(
                AuditEvent.case_id == view["id"], AuditEvent.action == "case.migrated"
            )
        ).one()
        assert event.detail["from_version"] == 1 and event.detail["to_version"] == 2
        task = uow.session.scalars(
            select(Task).where(Task.case_id == view["id"], Task.status == "open")
        ).one()
        assert task.name == "Review v2" and task.role == "intake"
    again = migrate_instances(services, admin, target["id"], dry_run=True)
    assert again["items"] == []  # nothing left on an older version
    explicit = migrate_instances(services, admin, target["id"], case_ids=[view["id"], 999999])
    reasons = {i["case_id"]: i["reasons"][0]["message"] for i in explicit["items"]}
    assert "already runs version 2" in reasons[view["id"]]
    assert "not a running case" in reasons[999999]
