"""`fengqiao demo`: several dozen living petitions across the demo villages, in every state.

Every petition is built through the services, as the clerks, handlers and leaders of the demo
organisation would: a settable clock is moved to each business date before acting, so the
timeline, deadlines and KPIs look like months of real work. Afterwards the timers, lapsed
windows and warnings run as of the real time, which opens the supervision of the overdue ones.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ, SettableClock
from engine.domain.text import id_check_character
from engine.errors import FengqiaoError
from engine.persistence.models import Petition, Task, Unit, User
from engine.services import petitions, tasks
from engine.services.access import Actor, load_actor
from engine.services.deadlines import raise_warnings
from engine.services.timers import fire_due_timers
from engine.workflow import WorkflowRuntime

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐"
GIVEN = [
    "建国",
    "秀英",
    "志强",
    "桂兰",
    "海峰",
    "丽娟",
    "国庆",
    "春梅",
    "永福",
    "晓燕",
    "德明",
    "玉珍",
]
MATTERS = [
    ("宅基地边界纠纷", "请求重新丈量宅基地并确认四至边界，制止邻户违规搭建"),
    ("拖欠务工工资", "请求协调某建筑公司支付拖欠的2025年工资共计3万余元"),
    ("土地承包经营权流转", "反映村集体流转本户承包地未经同意，请求返还或给予补偿"),
    ("养殖场异味扰民", "村内养殖场臭味严重影响生活，请求责令整改"),
    ("物业服务质量差", "小区物业长期不维修电梯、乱收停车费，请求街道督促整改"),
    ("征地补偿款分配", "对村征地补偿款分配方案有异议，请求公开分配明细"),
    ("邻里排水纠纷", "邻居改建排水沟导致雨水倒灌我家，请求协调处理"),
    ("低保资格认定", "家庭困难申请低保未获批准，请求重新审核"),
    ("道路破损维修", "村道多处破损影响出行，建议纳入年度维修计划"),
    ("噪声扰民", "附近加工厂夜间生产噪声扰民，请求依法处理"),
    ("房屋漏水维修", "安置房屋顶漏水多年未修，请求开发商维修"),
    ("婚姻家庭矛盾", "家庭赡养纠纷，请求村委会调解老人赡养费"),
]
CHANNELS = ["visit", "letter", "online", "phone", "visit", "online"]

# Each scenario: a name and the steps after registration, as (days after receipt, step).
Step = tuple[int, str]
SCENARIOS: list[tuple[str, int, list[Step]]] = [
    # (name, days before today the petition was received, steps)
    ("registered", 2, []),
    ("acceptance_due_soon", 13, []),
    ("acceptance_overdue", 19, []),
    (
        "not_accepted",
        30,
        [
            (4, "not_accept"),
        ],
    ),
    (
        "forwarded",
        12,
        [
            (2, "forward"),
        ],
    ),
    (
        "handling",
        20,
        [
            (2, "accept"),
        ],
    ),
    (
        "reply_due_soon",
        59,
        [
            (1, "accept"),
        ],
    ),
    (
        "reply_overdue",
        75,
        [
            (3, "accept"),
        ],
    ),
    (
        "extension",
        70,
        [
            (2, "accept"),
            (40, "ask_extension"),
            (42, "approve_extension"),
        ],
    ),
    (
        "approving",
        40,
        [
            (2, "accept"),
            (25, "handle"),
            (30, "draft"),
        ],
    ),
    (
        "returned",
        45,
        [
            (2, "accept"),
            (25, "handle"),
            (30, "draft"),
            (32, "return"),
        ],
    ),
    (
        "awaiting_evaluation",
        40,
        [
            (2, "accept"),
            (25, "handle"),
            (30, "draft"),
            (31, "approve"),
            (34, "deliver"),
        ],
    ),
    (
        "satisfied",
        80,
        [
            (3, "accept"),
            (30, "handle"),
            (40, "draft"),
            (41, "approve"),
            (44, "deliver"),
            (50, "satisfied"),
        ],
    ),
    (
        "basically_satisfied",
        70,
        [
            (1, "accept"),
            (20, "handle"),
            (25, "draft"),
            (26, "approve"),
            (28, "deliver"),
            (33, "basic"),
        ],
    ),
    (
        "not_evaluated",
        75,
        [
            (2, "accept"),
            (30, "handle"),
            (35, "draft"),
            (36, "approve"),
            (40, "deliver"),
        ],
    ),
    (
        "under_review",
        70,
        [
            (2, "accept"),
            (25, "handle"),
            (30, "draft"),
            (31, "approve"),
            (33, "deliver"),
            (36, "dissatisfied"),
            (45, "review"),
        ],
    ),
    (
        "reviewed",
        120,
        [
            (2, "accept"),
            (20, "handle"),
            (25, "draft"),
            (26, "approve"),
            (28, "deliver"),
            (30, "dissatisfied"),
            (40, "review"),
            (60, "decide_review"),
        ],
    ),
    (
        "terminated",
        150,
        [
            (2, "accept"),
            (20, "handle"),
            (25, "draft"),
            (26, "approve"),
            (28, "deliver"),
            (30, "dissatisfied"),
            (40, "review"),
            (55, "decide_review"),
            (70, "re_review"),
            (90, "decide_re_review"),
        ],
    ),
    (
        "assigned_due_soon",
        10,
        [
            (1, "accept"),
        ],
    ),
    (
        "late_reply",
        100,
        [
            (2, "accept"),
            (50, "handle"),
            (60, "draft"),
            (61, "approve"),
            (66, "deliver"),
            (70, "satisfied"),
        ],
    ),
]


def _id_number(seed: int) -> str:
    """A valid resident ID number of 诸暨 (330681), deterministic per seed."""
    born = date(1950, 1, 1) + timedelta(days=(seed * 997) % 18000)
    first17 = f"330681{born:%Y%m%d}{seed % 1000:03d}"
    return first17 + id_check_character(first17)


def _at(clock: SettableClock, day: date, hour: int = 10) -> None:
    clock.set(datetime.combine(day, time(hour), LOCAL_TZ))


class _Seeder:
    """Drives the demo users through the petition process."""

    def __init__(self, services: Services, clock: SettableClock) -> None:
        self.services = services
        self.clock = clock
        self.actors: dict[str, Actor] = {}

    def actor(self, username: str) -> Actor:
        if username not in self.actors:
            with self.services.uow() as uow:
                user_id = uow.session.scalar(select(User.id).where(User.username == username))
                if user_id is None:
                    raise RuntimeError(f"demo user {username} is missing; load the demo org")
                self.actors[username] = load_actor(uow.session, user_id)
        return self.actors[username]

    def complete(self, username: str, case_id: int, bpmn_id: str, data: dict[str, Any]) -> None:
        with self.services.uow() as uow:
            task_id = uow.session.scalar(
                select(Task.id).where(
                    Task.case_id == case_id, Task.bpmn_id == bpmn_id, Task.status == "open"
                )
            )
        if task_id is None:
            raise RuntimeError(f"no open {bpmn_id} on case {case_id}")
        tasks.complete_task(self.services, self.actor(username), int(task_id), data)

    def review_case(self, petition_id: int, level: str) -> int:
        view = petitions.get_petition(self.services, self.actor("clerk"), petition_id)
        return int(next(r["case_id"] for r in view["reviews"] if r["level"] == level))

    def step(self, case_id: int, step: str, day: date, responsible: int) -> None:
        iso = day.isoformat()
        if step == "accept":
            self.complete(
                "clerk",
                case_id,
                "decide_acceptance",
                {"decision": "accept", "decided_on": iso, "responsible_unit_id": responsible},
            )
        elif step in ("not_accept", "forward"):
            data: dict[str, Any] = {"decision": step, "decided_on": iso}
            data["reason"] = (
                "不属于本机关职权范围" if step == "forward" else "已经或依法应当通过诉讼解决"
            )
            if step == "forward":
                data["forward_to"] = "区人力资源和社会保障局"
            self.complete("clerk", case_id, "decide_acceptance", data)
        elif step in ("handle", "ask_extension"):
            data = {
                "findings": "已走访当事人并调取相关材料，核实基本情况。",
                "method": "investigation",
            }
            if step == "ask_extension":
                data.update(
                    request_extension=True, extension_days=20, extension_reason="需委托测绘"
                )
            self.complete("handler", case_id, "handle", data)
        elif step == "approve_extension":
            self.complete(
                "leader", case_id, "approve_extension", {"approve": True, "approved_on": iso}
            )
        elif step == "draft":
            self.complete(
                "handler",
                case_id,
                "draft_reply",
                {
                    "outcome": "support",
                    "reply_text": "经调查核实，信访人反映情况基本属实，已责成相关单位整改。",
                    "legal_basis": "《信访工作条例》第三十二条",
                },
            )
        elif step in ("approve", "return"):
            self.complete(
                "leader",
                case_id,
                "approve_reply",
                {
                    "approve": step == "approve",
                    "comment": "同意" if step == "approve" else "请补充依据",
                },
            )
        elif step == "deliver":
            self.complete(
                "handler",
                case_id,
                "deliver_reply",
                {"delivered_on": iso, "delivery_method": "in_person"},
            )
        elif step in ("satisfied", "basic", "dissatisfied"):
            rating = "basically_satisfied" if step == "basic" else step
            self.complete(
                "clerk", case_id, "record_evaluation", {"rating": rating, "evaluated_on": iso}
            )
        elif step in ("review", "re_review"):
            petitions.request_review(
                self.services,
                self.actor("clerk"),
                case_id,
                {"level": step, "requested_on": day},
            )
        elif step in ("decide_review", "decide_re_review"):
            level = "review" if step == "decide_review" else "re_review"
            self.complete(
                "leader" if level == "review" else "district",
                self.review_case(case_id, level),
                "decide_review",
                {"outcome": "uphold", "decided_on": iso, "delivered_on": iso},
            )


def seed_petitions(services: Services) -> dict[str, Any]:
    """Seed the living petitions (skipped if the database already holds petitions)."""
    real_now = services.clock.now()
    today = real_now.astimezone(LOCAL_TZ).date()
    with services.uow() as uow:
        if (uow.session.scalar(select(func.count()).select_from(Petition)) or 0) > 0:
            return {"petitions": "already seeded"}
        villages = list(
            uow.session.scalars(
                select(Unit.id)
                .where(Unit.kind.in_(("village", "community")), Unit.active.is_(True))
                .order_by(Unit.code)
            )
        )
        sfs = uow.session.scalar(select(Unit.id).where(Unit.code == "S01-SFS"))
    if not villages:
        return {"petitions": 0}
    clock = SettableClock(real_now)
    svc = replace(
        services,
        clock=clock,
        runtime=WorkflowRuntime(clock, script_time_limit=services.settings.script_time_limit),
    )
    seeder = _Seeder(svc, clock)
    made: list[int] = []
    count = max(48, len(villages) * 2)
    for i in range(count):
        name, received_ago, steps = SCENARIOS[i % len(SCENARIOS)]
        village = villages[i % len(villages)]
        received = today - timedelta(days=received_ago + (i // len(SCENARIOS)) % 3)
        subject, request = MATTERS[i % len(MATTERS)]
        body: dict[str, Any] = {
            "channel": CHANNELS[i % len(CHANNELS)],
            "received_on": received,
            "category": "suggestion" if "道路" in subject else "claim",
            "subject": subject,
            "request": request,
            "village_id": village,
            "petitioners": [
                {
                    "name": SURNAMES[i % len(SURNAMES)] + GIVEN[i % len(GIVEN)],
                    "id_number": _id_number(i),
                    "phone": f"139{57000000 + i * 7919:08d}",
                    "address": "示范街道",
                }
            ],
        }
        if i % 5 == 0:
            body["proxy_agent"] = "村信访代理员"
        if name == "assigned_due_soon":
            body.update(
                source="assigned",
                assigned_ref=f"区信交〔{today.year}〕{i + 1}号",
                assigned_due_on=today + timedelta(days=2),
            )
        if i % 12 == 7:
            body.update(channel="visit", headcount=12)
            body["petitioners"] = body["petitioners"] + [
                {"name": SURNAMES[(i + k) % len(SURNAMES)] + GIVEN[(i + k) % len(GIVEN)]}
                for k in (3, 5)
            ]
        _at(clock, received, 9)
        try:
            view = petitions.register_petition(svc, seeder.actor("clerk"), body)
        except FengqiaoError:
            continue
        made.append(view["id"])
        responsible = sfs if (i % 4 == 3 and sfs is not None) else village
        for offset, step in steps:
            day = min(received + timedelta(days=offset), today)
            _at(clock, day, 10 + offset % 6)
            seeder.step(view["id"], step, day, responsible)
    # A repeat: the first petitioner comes back on the same matter while it is still open.
    first = petitions.get_petition(svc, seeder.actor("clerk"), made[0], reveal=True)
    _at(clock, today, 9)
    repeat = petitions.register_petition(
        svc,
        seeder.actor("clerk"),
        {
            "channel": "phone",
            "received_on": today,
            "category": first["category"],
            "subject": first["subject"],
            "request": first["request"] + "，至今未处理",
            "village_id": first["village_id"],
            "petitioners": [
                {
                    "name": first["petitioners"][0]["name"],
                    "id_number": first["petitioners"][0]["id_number"],
                }
            ],
        },
    )
    made.append(repeat["id"])
    receptions = _seed_receptions(svc, seeder, made, today)
    clock.set(real_now)
    fire_due_timers(svc, real_now)
    petitions.close_lapsed_windows(svc, real_now)
    raise_warnings(svc, real_now)
    _supervise_one(svc, seeder, today)
    with services.uow() as uow:
        states = dict(
            uow.session.execute(
                select(Petition.status, func.count()).group_by(Petition.status)
            ).all()
        )
    return {
        "petitions": len(made),
        "petition_states": {k: int(v) for k, v in sorted(states.items())},
        "receptions": receptions,
    }


def _seed_receptions(svc: Services, seeder: _Seeder, made: list[int], today: date) -> int:
    leader = seeder.actor("leader")
    done = 0
    for weeks in range(1, 7):
        day = today - timedelta(days=7 * weeks)
        _at(seeder.clock, day, 15)
        kind = "reception" if weeks % 2 else "field_visit"
        petitions.record_reception(
            svc,
            seeder.actor("clerk"),
            {
                "kind": kind,
                "held_on": day,
                "leader_user_id": leader.user_id,
                "person_count": 3 + weeks * 2 if kind == "field_visit" else 2 + weeks % 3,
                "notes": "领导接访日" if kind == "reception" else "走访重点村社",
                "petition_ids": made[weeks : weeks + 2] if kind == "reception" else [],
            },
        )
        done += 1
    return done


def _supervise_one(svc: Services, seeder: _Seeder, today: date) -> None:
    """Record one supervision so the board shows an intervention as well as open ones."""
    with svc.uow() as uow:
        task_id = uow.session.scalar(
            select(Task.id)
            .where(Task.bpmn_id == "supervise", Task.status == "open")
            .order_by(Task.id)
            .limit(1)
        )
    if task_id is None:
        return
    _at(seeder.clock, today, 11)
    tasks.complete_task(
        svc,
        seeder.actor("supervisor"),
        int(task_id),
        {
            "method": "phone",
            "notes": "电话督促责任单位三日内办结",
            "instructed_on": today.isoformat(),
        },
    )
