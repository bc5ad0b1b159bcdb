"""Demo key persons for `fengqiao demo`: four files at different risk levels, mid-process.

Everything is built through the services as the demo users would (never raw inserts):
a high-risk person under control with a recorded contact, a medium-risk person awaiting the
lead leader's assessment, a low-risk person whose team is still to be formed, and a person
whose closure (销号) is awaiting the lead leader's approval.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ
from engine.persistence.models import Case, KeyPerson, Task, Unit, User
from engine.services import stabilization, tasks
from engine.services.access import Actor, load_actor

# Demo resident ID numbers with valid GB 11643 check characters (fictitious people).
PEOPLE = [
    ("张某某", "330681198001011232", "13900001111", "V02", "district_assigned", "high"),
    ("李某某", "330681197512124568", "13900002222", "V03", "repeat_petitions", "medium"),
    ("王某某", "33068119900505789X", None, "V04", "screening", None),
    ("赵某某", "110105194912310038", "13900004444", "V05", "district_assigned", "closure"),
]
DEMANDS = {
    "张某某": "要求重新认定宅基地使用权并赔偿损失",
    "李某某": "对征地补偿标准有异议，多次到区、市上访",
    "王某某": "邻里排水纠纷引发的损害赔偿诉求",
    "赵某某": "要求落实企业改制时的社保待遇",
}


def _actor(services: Services, username: str) -> Actor:
    with services.uow() as uow:
        user_id = uow.session.scalar(select(User.id).where(User.username == username))
        assert user_id is not None, username
        return load_actor(uow.session, user_id)


def _id(services: Services, model: Any, column: Any, value: str) -> int:
    with services.uow() as uow:
        found = uow.session.scalar(select(model.id).where(column == value))
        assert found is not None, value
        return int(found)


def _task(services: Services, case_id: int, bpmn_id: str) -> int:
    with services.uow() as uow:
        found = uow.session.scalar(
            select(Task.id).where(
                Task.case_id == case_id, Task.bpmn_id == bpmn_id, Task.status == "open"
            )
        )
        assert found is not None, bpmn_id
        return int(found)


def _child_task(services: Services, kp_id: int, bpmn_id: str) -> int | None:
    with services.uow() as uow:
        kp = uow.session.get(KeyPerson, kp_id)
        assert kp is not None
        found = uow.session.scalar(
            select(Task.id)
            .join(Case, Case.id == Task.case_id)
            .where(
                Case.parent_case_id == kp.case_id, Task.bpmn_id == bpmn_id, Task.status == "open"
            )
        )
        return int(found) if found is not None else None


def seed_key_persons(services: Services) -> dict[str, Any]:
    """Create the demo key persons (skipped if any file exists already)."""
    with services.uow() as uow:
        if uow.session.scalar(select(KeyPerson.id).limit(1)) is not None:
            return {"key_persons": 0}
    now = services.clock.now()
    today = now.astimezone(LOCAL_TZ).date().isoformat()
    clerk, leader = _actor(services, "clerk"), _actor(services, "leader")
    handler_sfs = _actor(services, "handler_sfs")
    leader_id = _id(services, User, User.username, "leader")
    sfs = _id(services, Unit, Unit.code, "S01-SFS")
    five_clear = {f"five_clear_{i}": "已走访核实，情况清楚" for i in range(1, 6)}
    created = 0
    for name, id_number, phone, village, source, stage in PEOPLE:
        body: dict[str, Any] = {
            "name": name,
            "id_number": id_number,
            "village_id": _id(services, Unit, Unit.code, village),
            "source": source,
            "core_demand": DEMANDS[name],
        }
        if phone:
            body["phone"] = phone
        if source == "district_assigned":
            body["assigned_ref"] = "区信联〔2026〕1号"
        kp = stabilization.register_key_person(services, clerk, body)
        created += 1
        if stage is None:
            continue  # the street leader still has to form the team
        tasks.complete_task(
            services,
            leader,
            _task(services, kp["case_id"], "form_team"),
            {
                "lead_leader_id": leader_id,
                "responsible_unit_id": sfs,
                "member_user_ids": "handler_sfs, reporter_v01",
                "other_members": "派出所 刘警官 民警\n调委会 陈调解 调解员",
                "approved_on": today,
            },
        )
        if stage == "medium":
            continue  # the lead leader's assessment is waiting
        tasks.complete_task(
            services,
            leader,
            _task(services, kp["case_id"], "assess"),
            {
                "assessed_on": today,
                **five_clear,
                "risk_level": "high" if stage == "high" else "medium",
                "assessment": "诉求长期未解决，情绪波动较大，敏感节点有赴省进京风险",
                "measures": "包案领导每月见面，专班成员每周走访，网格员日常关注",
                "plan": "依法复核诉求，协调相关部门提出化解方案，做好思想疏导",
                "plan_due_on": today,
                "sensitive_plan": "敏感节点期间每日见面，落实零报告",
                "escalations_province": 2,
                "escalations_capital": 1,
            },
        )
        stabilization.open_contact_cycles(services, now)
        contact = _child_task(services, kp["id"], "record_contact")
        if contact is not None:
            tasks.complete_task(
                services,
                handler_sfs,
                contact,
                {
                    "contacted_on": today,
                    "method": "visit",
                    "situation": "上门走访，本人情绪基本平稳，表示等待处理结果",
                    "risk_signal": "none",
                },
            )
        if stage == "closure":
            tasks.complete_task(
                services,
                handler_sfs,
                _task(services, kp["case_id"], "propose_closure"),
                {
                    "evidence_kind": "mediation_agreement",
                    "evidence_ref": "司调〔2026〕8号调解协议书",
                    "return_visit_on": today,
                    "resolution_summary": "经司法所调解达成协议，社保待遇已落实，本人签字息访",
                },
            )
    return {"key_persons": created}
