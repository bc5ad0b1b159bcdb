"""The daily digest at 08:30 local, once per user per day, through real mail (issue 6)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ, SettableClock
from engine.persistence.models import Task
from engine.services import tasks as task_service
from engine.services.cases import start_case
from engine.services.dispatch import dispatch_outbox, send_daily_digests
from engine.services.jobs import JOBS, run_all
from tests.service.dispatch_support import (
    actor,
    outbox,
    set_contact,
    smtp_server,
    unit_id,
    use_smtp,
    user,
)


def approved_review(services: Services, decided_on: str) -> tuple[str, int]:
    """A simple_review case decided 'approve' on a date: the leader's approval is due 5 days on."""
    with services.uow() as uow:
        case, _ = start_case(
            services,
            uow,
            actor(services, "clerk"),
            services.case_types.get("simple_review"),
            unit_id=unit_id(services, "S01"),
            data={},
            title="摘要测试",
            now=services.clock.now(),
        )
        uow.commit()
        case_no, case_id = case.case_no, case.id
    with services.uow() as uow:
        review_id = uow.session.scalars(
            select(Task.id).where(Task.case_id == case_id, Task.status == "open")
        ).one()
    task_service.complete_task(
        services,
        actor(services, "handler"),
        review_id,
        {"decision": "approve", "decided_on": decided_on},
    )
    return case_no, case_id


def test_digest_lists_due_today_and_overdue_work_once_a_day(
    services: Services, clock: SettableClock
) -> None:
    names = [j.name for j in JOBS]
    assert names.index("raise_deadline_warnings") < names.index("dispatch_outbox")
    assert names.index("daily_digest") < names.index("dispatch_outbox")
    set_contact(services, "leader", email="leader@example.cn")
    overdue_no, _ = approved_review(services, "2026-03-02")  # due 2026-03-07
    clock.set(datetime(2026, 3, 4, 10, 0, tzinfo=LOCAL_TZ))
    due_today_no, _ = approved_review(services, "2026-03-04")  # due 2026-03-09

    clock.set(datetime(2026, 3, 9, 8, 29, tzinfo=LOCAL_TZ))
    assert send_daily_digests(services, clock.now()) == 0  # not yet 08:30
    with smtp_server() as (store, port):
        use_smtp(services, port)
        clock.set(datetime(2026, 3, 9, 8, 30, tzinfo=LOCAL_TZ))
        results = run_all(services, clock.now())
        assert results["daily_digest"] >= 1
        clock.set(datetime(2026, 3, 9, 17, 0, tzinfo=LOCAL_TZ))
        assert run_all(services, clock.now())["daily_digest"] == 0  # once a day
        mails = [m for m in store.received if "leader@example.cn" in str(m["To"])]
        # The two approvals were announced when they opened, then today's digest.
        subjects = [str(m["Subject"]) for m in mails]
        assert len(subjects) == 3
        assert sum(s.startswith("【枫桥】待认领任务：Approve 批准") for s in subjects) == 2
        [mail] = [m for m in mails if "待办日报" in str(m["Subject"])]

    leader = user(services, "leader")
    digests = [r for r in outbox(services, "inapp") if r.template == "daily_digest"]
    mine = [r for r in digests if r.recipient_user_id == leader.id]
    assert len(mine) == 1
    params = mine[0].params
    assert [i["case_no"] for i in params["due_today"]] == [due_today_no]
    assert [i["case_no"] for i in params["overdue"]] == [overdue_no]
    assert params["overdue"][0]["due_on"] == "2026-03-07"
    # Handlers have no open task due by today: no digest for them.
    assert user(services, "handler").id not in {r.recipient_user_id for r in digests}

    assert mail["Subject"] == "【枫桥】2026-03-09 待办日报：今日到期 1 件，已逾期 1 件"
    body = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"{overdue_no}　Approve 批准（2026-03-07 到期）" in body

    # The next day brings the next digest (the approvals are both overdue now).
    clock.set(datetime(2026, 3, 10, 8, 45, tzinfo=LOCAL_TZ))
    assert send_daily_digests(services, clock.now()) >= 1
    mine = [
        r
        for r in outbox(services, "inapp")
        if r.template == "daily_digest" and r.recipient_user_id == leader.id
    ]
    assert len(mine) == 2 and len(mine[1].params["overdue"]) == 2
    assert dispatch_outbox(services).sent == 0  # SMTP gone: the e-mail copy waits for retry


def test_digest_time_is_a_setting(services: Services, clock: SettableClock) -> None:
    from engine.services.access import SYSTEM
    from engine.services.settings import set_settings

    approved_review(services, "2026-03-02")
    with services.uow() as uow:
        set_settings(uow, SYSTEM, {"digest_time": "07:00"}, clock.now())
        uow.commit()
    clock.set(datetime(2026, 3, 7, 7, 5, tzinfo=LOCAL_TZ))
    assert send_daily_digests(services, clock.now()) >= 1
