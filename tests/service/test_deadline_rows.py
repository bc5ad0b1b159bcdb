"""A case's deadline rows and the calendar are read once per transaction (issue 10).

A completion meets, drops and sets several deadlines of its case; they come from one read of
the case's rows, which also finds a row set earlier in the same transaction before it is
flushed, and forgets rows set inside a savepoint that was rolled back.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import event, func, select

from engine.bootstrap import Services
from engine.domain.calendar import DueDate
from engine.persistence.models import Case, Deadline
from engine.services.calendar import load_calendar
from engine.services.deadlines import drop_deadline, meet_deadline, set_deadline
from tests.service.petition_support import accept, register


def _count_reads(services: Services, table: str) -> list[str]:
    seen: list[str] = []

    @event.listens_for(services.engine, "before_cursor_execute")
    def _log(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            seen.append(statement)

    return seen


def test_acceptance_reads_the_case_deadlines_and_the_calendar_once(services: Services) -> None:
    case_id = register(services)["id"]
    deadline_reads = _count_reads(services, "deadlines")
    calendar_reads = _count_reads(services, "calendar_days")
    accept(services, case_id, "2026-03-02")
    # meet acceptance_notice, drop remit_objection, set reply: one read of the case's rows.
    assert len(deadline_reads) == 1
    assert len(calendar_reads) == 1
    with services.uow() as uow:
        rows = {
            kind: (state, met_on)
            for kind, state, met_on in uow.session.execute(
                select(Deadline.kind, Deadline.state, Deadline.met_on).where(
                    Deadline.case_id == case_id
                )
            )
        }
    assert rows["acceptance_notice"] == ("met", date(2026, 3, 2))
    assert "remit_objection" not in rows
    assert rows["reply"] == ("pending", None)


def test_a_row_set_twice_before_the_flush_is_one_row(services: Services) -> None:
    case_id = register(services)["id"]
    with services.uow() as uow:
        case = uow.session.get(Case, case_id)
        assert case is not None
        set_deadline(uow, case, "reply", DueDate(date(2026, 5, 1), False), source="第一次")
        set_deadline(uow, case, "reply", DueDate(date(2026, 5, 8), False), source="第二次")
        meet_deadline(uow, case, "reply", date(2026, 5, 6))
        uow.commit()
    with services.uow() as uow:
        reply = uow.session.execute(
            select(Deadline.due_on, Deadline.source, Deadline.state).where(
                Deadline.case_id == case_id, Deadline.kind == "reply"
            )
        ).all()
    assert [tuple(r) for r in reply] == [(date(2026, 5, 8), "第二次", "met")]


def test_a_rolled_back_savepoint_forgets_its_rows(services: Services) -> None:
    case_id = register(services)["id"]
    with services.uow() as uow:
        case = uow.session.get(Case, case_id)
        assert case is not None
        savepoint = uow.session.begin_nested()
        set_deadline(uow, case, "reply", DueDate(date(2026, 5, 1), False), source="回滚")
        uow.session.flush()
        savepoint.rollback()
        # The row is gone with the savepoint: meeting it finds nothing, setting it adds anew.
        assert meet_deadline(uow, case, "reply", date(2026, 4, 1)) is None
        set_deadline(uow, case, "reply", DueDate(date(2026, 6, 1), False), source="保留")
        drop_deadline(uow, case, "remit_objection")
        uow.commit()
    with services.uow() as uow:
        kinds = dict(
            uow.session.execute(
                select(Deadline.kind, Deadline.source).where(Deadline.case_id == case_id)
            ).all()
        )
        count = uow.session.scalar(
            select(func.count()).select_from(Deadline).where(Deadline.case_id == case_id)
        )
    assert kinds["reply"] == "保留"
    assert "remit_objection" not in kinds
    assert count == len(kinds)


def test_the_calendar_is_read_again_in_the_next_transaction(services: Services) -> None:
    reads = _count_reads(services, "calendar_days")
    with services.uow() as uow:
        first = load_calendar(uow)
        assert load_calendar(uow) is first
    with services.uow() as uow:
        assert load_calendar(uow) is not first
    assert len(reads) == 2
