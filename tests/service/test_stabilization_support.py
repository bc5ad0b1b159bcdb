"""Helpers shared by the stabilization tests: build key-person files through the services."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ, SettableClock
from engine.persistence.models import Case, KeyPerson, Task, Unit, User
from engine.services import stabilization, tasks, users
from engine.services.access import Actor, load_actor
from engine.services.demo import ADMIN
from engine.services.jobs import run_all

FIVE_CLEAR = {f"five_clear_{i}": f"第{i}项已查清" for i in range(1, 6)}


def at(day: date, hour: int = 9) -> datetime:
    """A local (Shanghai) time on a day, as aware UTC."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=LOCAL_TZ).astimezone(UTC)


def unit_id(services: Services, code: str) -> int:
    """The id of a demo unit by its code."""
    with services.uow() as uow:
        found = uow.session.scalar(select(Unit.id).where(Unit.code == code))
        assert found is not None, code
        return int(found)


def user_id(services: Services, username: str) -> int:
    """The id of a demo user."""
    with services.uow() as uow:
        found = uow.session.scalar(select(User.id).where(User.username == username))
        assert found is not None, username
        return int(found)


def actor(services: Services, username: str) -> Actor:
    """The actor of a demo user."""
    uid = user_id(services, username)
    with services.uow() as uow:
        return load_actor(uow.session, uid)


def make_user(services: Services, username: str, *roles: tuple[str, str]) -> Actor:
    """A user holding role@unit-code grants, created through the users service."""
    grants = [{"role": role, "unit_id": unit_id(services, code)} for role, code in roles]
    with services.uow() as uow:
        users.create_user(
            uow,
            ADMIN,
            username=username,
            password="demo1234",
            display_name=username,
            roles=grants,
            now=services.clock.now(),
        )
        uow.commit()
    return actor(services, username)


def register(services: Services, who: str = "clerk", **overrides: Any) -> dict[str, Any]:
    """Register a key person in 东风村 (V01) as the petition office."""
    body: dict[str, Any] = {
        "name": "张三",
        "id_number": "11010519491231002X",
        "phone": "13800138000",
        "village_id": unit_id(services, "V01"),
        "source": "district_assigned",
        "assigned_ref": "区信联〔2026〕3号",
        "core_demand": "要求解决宅基地纠纷",
    }
    body.update(overrides)
    return stabilization.register_key_person(services, actor(services, who), body)


def open_task(services: Services, case_id: int, bpmn_id: str) -> int:
    """The id of the open task of a BPMN id on a case."""
    with services.uow() as uow:
        found = uow.session.scalar(
            select(Task.id).where(
                Task.case_id == case_id, Task.bpmn_id == bpmn_id, Task.status == "open"
            )
        )
        assert found is not None, f"no open {bpmn_id} on case {case_id}"
        return int(found)


def open_child_tasks(services: Services, kp_id: int, bpmn_id: str) -> list[Task]:
    """Open tasks of a BPMN id on the file's child instances, oldest first (detached rows)."""
    with services.uow() as uow:
        kp = uow.session.get(KeyPerson, kp_id)
        assert kp is not None
        return detached(
            uow,
            uow.session.scalars(
                select(Task)
                .join(Case, Case.id == Task.case_id)
                .where(
                    Case.parent_case_id == kp.case_id,
                    Task.bpmn_id == bpmn_id,
                    Task.status == "open",
                )
                .order_by(Task.id)
            ),
        )


def detached(uow: Any, rows: Any) -> list[Any]:
    """Rows that stay readable after their unit of work closes."""
    out = list(rows)
    for row in out:
        uow.session.expunge(row)
    return out


def complete(services: Services, who: str, task_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Complete a task as a demo user through the generic task service."""
    return tasks.complete_task(services, actor(services, who), task_id, data)


def form_team(
    services: Services,
    kp: dict[str, Any],
    *,
    lead: str = "leader",
    unit_code: str = "S01-SFS",
    members: str = "handler_sfs",
    on: str = "2026-03-02",
) -> None:
    """Complete form_team as the street leader."""
    complete(
        services,
        "leader",
        open_task(services, kp["case_id"], "form_team"),
        {
            "lead_leader_id": user_id(services, lead),
            "responsible_unit_id": unit_id(services, unit_code),
            "member_user_ids": members,
            "other_members": "李警官 民警\n王调解 调解员",
            "approved_on": on,
        },
    )


def assess(
    services: Services,
    kp: dict[str, Any],
    risk: str,
    *,
    who: str = "leader",
    on: str = "2026-03-02",
) -> None:
    """Complete the assessment (the lead leader's task) at a risk level."""
    complete(
        services,
        who,
        open_task(services, current_case(services, kp["id"]), "assess"),
        {
            "assessed_on": on,
            **FIVE_CLEAR,
            "risk_level": risk,
            "assessment": "情绪不稳定，有进京上访苗头",
            "measures": "专人包联，每周走访",
            "plan": "依法解决宅基地确权，做好解释疏导",
            "plan_due_on": "2026-06-30",
        },
    )


def current_case(services: Services, kp_id: int) -> int:
    """The file's current stabilization case."""
    with services.uow() as uow:
        kp = uow.session.get(KeyPerson, kp_id)
        assert kp is not None
        return kp.case_id


def person(services: Services, kp_id: int) -> KeyPerson:
    """The file row as stored."""
    with services.uow() as uow:
        kp = uow.session.get(KeyPerson, kp_id)
        assert kp is not None
        uow.session.expunge(kp)
        return kp


def tick(services: Services, clock: SettableClock, day: date, hour: int = 9) -> dict[str, int]:
    """Move the clock to a local time and run every scheduler job once."""
    when = at(day, hour)
    clock.set(when)
    return run_all(services, when)


def under_control(services: Services, risk: str, **register_overrides: Any) -> dict[str, Any]:
    """A registered person with a team (SFS) and an assessment at `risk`."""
    kp = register(services, **register_overrides)
    form_team(services, kp)
    assess(services, kp, risk)
    return kp
