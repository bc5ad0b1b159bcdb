"""Demo screening (`fengqiao demo`): last month signed with carried-over hazards, this month
part-reported, some hazards open and one signed off. Everything goes through the services."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.clock import local_today
from engine.persistence.models import Hazard, ScreeningRound, Task, Unit, User
from engine.services import tasks
from engine.services.access import Actor, load_actor
from engine.services.screening import add_hazard, month_key, open_rounds_for_month

DEMO_USERS = (
    "reporter_v01",
    "leader_v01",
    "reporter_v02",
    "leader_v02",
    "handler_sfs",
    "leader",
    "supervisor",
)


def _actors(services: Services) -> dict[str, Actor] | None:
    with services.uow() as uow:
        ids = dict(
            uow.session.execute(
                select(User.username, User.id).where(User.username.in_(DEMO_USERS))
            ).all()
        )
        if len(ids) != len(DEMO_USERS):
            return None
        return {name: load_actor(uow.session, uid) for name, uid in ids.items()}


def _unit(services: Services, code: str) -> int:
    with services.uow() as uow:
        uid = uow.session.scalar(select(Unit.id).where(Unit.code == code))
        assert uid is not None
        return int(uid)


def _round(services: Services, code: str, month: str) -> tuple[int, int]:
    with services.uow() as uow:
        row = uow.session.execute(
            select(ScreeningRound.id, ScreeningRound.case_id)
            .join(Unit, Unit.id == ScreeningRound.unit_id)
            .where(Unit.code == code, ScreeningRound.month == month)
        ).one()
        assert row[1] is not None
        return int(row[0]), int(row[1])


def _complete(
    services: Services, who: Actor, case_id: int, bpmn_id: str, data: dict[str, Any]
) -> None:
    with services.uow() as uow:
        task_id = uow.session.scalar(
            select(Task.id).where(
                Task.case_id == case_id, Task.bpmn_id == bpmn_id, Task.status == "open"
            )
        )
    assert task_id is not None
    tasks.complete_task(services, who, int(task_id), data)


def _hazard(
    services: Services, who: Actor, round_id: int, found_on: date, **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "found_on": found_on.isoformat(),
        "criminal_risk": False,
        "owning_leader": "王主任",
        **fields,
    }
    return add_hazard(services, who, round_id, body)


def seed_screening(services: Services) -> dict[str, Any]:
    """Seed two months of screening for 东风村 (V01) and 红旗村 (V02); idempotent."""
    with services.uow() as uow:
        if uow.session.scalar(select(func.count()).select_from(Hazard)):
            return {"screening": "already seeded"}
    people = _actors(services)
    if people is None:
        return {"screening": "skipped (demo users missing)"}
    now = services.clock.now()
    today = local_today(services.clock)
    this_first = today.replace(day=1)
    prev_first = (this_first - timedelta(days=1)).replace(day=1)
    prev, this = month_key(prev_first), month_key(this_first)
    opened = open_rounds_for_month(services, prev, now) + open_rounds_for_month(services, this, now)
    v01, sfs = _unit(services, "V01"), _unit(services, "S01-SFS")

    # Last month: V01 found two hazards (one settled and signed off, one carried over);
    # V02 found a wage dispute still open and past its time limit. Both reports signed.
    round_v01, case_v01 = _round(services, "V01", prev)
    carried = _hazard(
        services,
        people["reporter_v01"],
        round_v01,
        prev_first + timedelta(days=3),
        dispute_type="land_homestead",
        parties="张建国、张建军",
        involved_count=2,
        summary="兄弟二人因老宅宅基地分割发生争执，多次发生口角",
        risk_level="medium",
        measures="村调委会上门了解情况，约定择日调解",
        method="people_mediation",
        responsible_unit_id=v01,
        responsible_person="孙干事",
    )
    settled = _hazard(
        services,
        people["reporter_v01"],
        round_v01,
        prev_first + timedelta(days=4),
        dispute_type="neighbour",
        parties="李秀英、王桂兰",
        involved_count=2,
        summary="邻里排水沟堵塞引发纠纷",
        risk_level="low",
        measures="司法所组织人民调解",
        method="people_mediation",
        responsible_unit_id=sfs,
        responsible_person="陈调解",
    )
    _complete(
        services,
        people["reporter_v01"],
        case_v01,
        "submit_report",
        {"zero_report": False, "reported_on": (prev_first + timedelta(days=9)).isoformat()},
    )
    _complete(
        services,
        people["leader_v01"],
        case_v01,
        "sign_report",
        {"approve": True, "signed_on": (prev_first + timedelta(days=9)).isoformat()},
    )
    settled_on = prev_first + timedelta(days=12)
    _complete(
        services,
        people["handler_sfs"],
        settled["case_id"],
        "resolve",
        {
            "resolution": "agreement",
            "resolved_on": settled_on.isoformat(),
            "evidence_refs": "调解协议书、现场核查照片、双方签字确认",
            "progress": "经司法所调解，双方同意共同出资疏通排水沟",
            "agreement_no": f"枫调〔{prev_first.year}〕3号",
            "agreement_signed_on": settled_on.isoformat(),
            "agreement_parties": "李秀英、王桂兰",
        },
    )
    _complete(
        services,
        people["leader"],
        settled["case_id"],
        "confirm_closure",
        {"confirm": True, "confirmed_on": settled_on.isoformat()},
    )
    _complete(
        services,
        people["supervisor"],
        settled["case_id"],
        "approve_closure",
        {"approve": True, "signed_off_on": (settled_on + timedelta(days=1)).isoformat()},
    )

    round_v02, case_v02 = _round(services, "V02", prev)
    _hazard(
        services,
        people["reporter_v02"],
        round_v02,
        prev_first + timedelta(days=5),
        dispute_type="wages",
        parties="外来务工人员12人、某建筑公司",
        involved_count=12,
        summary="工程完工后拖欠12名务工人员工资约18万元，有聚集上访苗头",
        risk_level="high",
        criminal_risk=True,
        measures="街道劳动保障、司法所联合约谈施工方",
        method="administrative_mediation",
        responsible_unit_id=sfs,
        responsible_person="陈调解",
    )
    _complete(
        services,
        people["reporter_v02"],
        case_v02,
        "submit_report",
        {"zero_report": False, "reported_on": (prev_first + timedelta(days=8)).isoformat()},
    )
    _complete(
        services,
        people["leader_v02"],
        case_v02,
        "sign_report",
        {"approve": True, "signed_on": (prev_first + timedelta(days=8)).isoformat()},
    )

    # This month: V01 entered a new hazard and its report is signed; V02 submitted a zero
    # report that awaits its head's signature; every other unit has yet to report.
    round_v01, case_v01 = _round(services, "V01", this)
    _hazard(
        services,
        people["reporter_v01"],
        round_v01,
        today,
        dispute_type="property_management",
        parties="幸福小区部分业主、物业公司",
        involved_count=30,
        summary="物业费调价引发业主不满，拟集体拒缴",
        risk_level="medium",
        measures="召开业主代表座谈会",
        method="administrative_mediation",
        responsible_unit_id=v01,
        responsible_person="孙干事",
    )
    _complete(
        services,
        people["reporter_v01"],
        case_v01,
        "submit_report",
        {"zero_report": False, "reported_on": today.isoformat()},
    )
    _complete(
        services,
        people["leader_v01"],
        case_v01,
        "sign_report",
        {"approve": True, "signed_on": today.isoformat()},
    )
    _round_v02, case_v02 = _round(services, "V02", this)
    _complete(
        services,
        people["reporter_v02"],
        case_v02,
        "submit_report",
        {"zero_report": True, "reported_on": today.isoformat()},
    )
    return {
        "screening_rounds": opened,
        "screening_hazards": 4,
        "screening_carried_over": [carried["ledger_no"]],
    }
