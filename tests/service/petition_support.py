"""Builders for petition tests: act as demo users through the services, move the clock."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ, SettableClock
from engine.persistence.models import Task, Unit
from engine.services import petitions, tasks
from engine.services.access import Actor, load_actor

# A valid resident ID (GB 11643 checksum) and a mobile number for the demo petitioner.
ID_WANG = "110101199003071233"
PHONE_WANG = "13800138000"


def actor(services: Services, username: str) -> Actor:
    """The actor of a demo user."""
    from engine.persistence.models import User

    with services.uow() as uow:
        user_id = uow.session.scalar(select(User.id).where(User.username == username))
        assert user_id is not None, username
        return load_actor(uow.session, user_id)


def unit_id(services: Services, code: str) -> int:
    """The id of a demo unit by code."""
    with services.uow() as uow:
        found = uow.session.scalar(select(Unit.id).where(Unit.code == code))
        assert found is not None, code
        return int(found)


def at(clock: SettableClock, day: date, hour: int = 10) -> None:
    """Move the clock to a local (Shanghai) time of day."""
    clock.set(datetime.combine(day, time(hour), LOCAL_TZ))


def petition_body(**overrides: Any) -> dict[str, Any]:
    """A valid registration body; keyword arguments replace its fields."""
    body: dict[str, Any] = {
        "channel": "visit",
        "received_on": "2026-03-02",
        "category": "claim",
        "source": "direct",
        "subject": "东风村土地承包经营权纠纷",
        "request": "请求确认本户承包地边界并停止邻户占用耕地",
        "petitioners": [
            {"name": "王大伟", "id_number": ID_WANG, "phone": PHONE_WANG, "address": "东风村3组"}
        ],
    }
    body.update(overrides)
    return body


def register(services: Services, username: str = "clerk", **overrides: Any) -> dict[str, Any]:
    """Register a petition as a user (the clerk by default)."""
    return petitions.register_petition(
        services, actor(services, username), petition_body(**overrides)
    )


def open_task_id(services: Services, case_id: int, bpmn_id: str) -> int:
    """The id of the case's open task of that BPMN id."""
    with services.uow() as uow:
        found = uow.session.scalar(
            select(Task.id).where(
                Task.case_id == case_id, Task.bpmn_id == bpmn_id, Task.status == "open"
            )
        )
        assert found is not None, f"no open {bpmn_id} on case {case_id}"
        return int(found)


def complete(
    services: Services, username: str, case_id: int, bpmn_id: str, data: dict[str, Any]
) -> dict[str, Any]:
    """Complete the case's open task of that BPMN id as a user."""
    task_id = open_task_id(services, case_id, bpmn_id)
    return tasks.complete_task(services, actor(services, username), task_id, data)


def accept(services: Services, case_id: int, decided_on: str, unit: str = "V01") -> None:
    """The clerk accepts, naming a responsible unit."""
    complete(
        services,
        "clerk",
        case_id,
        "decide_acceptance",
        {
            "decision": "accept",
            "decided_on": decided_on,
            "responsible_unit_id": unit_id(services, unit),
        },
    )


def handle(services: Services, case_id: int, username: str = "handler", **extra: Any) -> None:
    """The handler records findings (optionally asking for an extension)."""
    data: dict[str, Any] = {"findings": "现场核实，双方边界有争议", "method": "mediation"}
    data.update(extra)
    complete(services, username, case_id, "handle", data)


def reply(services: Services, case_id: int, delivered_on: str, leader: str = "leader") -> None:
    """Draft, approve and deliver the reply."""
    complete(
        services,
        "handler",
        case_id,
        "draft_reply",
        {"outcome": "support", "reply_text": "支持信访人请求", "legal_basis": "农村土地承包法"},
    )
    complete(services, leader, case_id, "approve_reply", {"approve": True})
    complete(
        services,
        "handler",
        case_id,
        "deliver_reply",
        {"delivered_on": delivered_on, "delivery_method": "in_person"},
    )


def deadlines(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A petition view's deadlines by kind."""
    return {d["kind"]: d for d in view["deadlines"]}
