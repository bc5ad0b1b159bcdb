"""Deadlines on cases of every type, and the yellow/red warnings the scheduler raises for them."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine.bootstrap import Services
from engine.domain.calendar import DueDate
from engine.domain.deadlines import deadline_state
from engine.persistence.db import UnitOfWork
from engine.persistence.models import Case, Deadline, DeadlineWarning, Task, Unit, User
from engine.services.access import SYSTEM
from engine.services.case_types import HookContext, case_visibility
from engine.services.notify import enqueue_many, users_with_role
from engine.services.settings import get_setting


def set_deadline(
    uow: UnitOfWork, case: Case, kind: str, due: DueDate, *, source: str, unit_id: int | None = None
) -> Deadline:
    """Create or move a case's deadline of a kind (e.g. after an approved extension)."""
    rows = _case_deadlines(uow, case)
    row = rows.get(kind)
    if row is None:
        row = Deadline(case_id=case.id, kind=kind, state="pending", met_on=None)
        uow.session.add(row)
        rows[kind] = row
    row.due_on = due.due_on
    row.calendar_unverified = due.calendar_unverified
    row.source = source
    row.unit_id = unit_id if unit_id is not None else case.unit_id
    if row.met_on is None:
        row.state = "pending"
    return row


def meet_deadline(uow: UnitOfWork, case: Case, kind: str, met_on: date) -> Deadline | None:
    """Record that a deadline's act happened on a business date: met if on time, else missed."""
    row = _case_deadlines(uow, case).get(kind)
    if row is None:
        return None
    row.met_on = met_on
    row.state = "met" if met_on <= row.due_on else "missed"
    return row


def drop_deadline(uow: UnitOfWork, case: Case, kind: str) -> None:
    """Remove a deadline that no longer applies (e.g. the acceptance path was not taken)."""
    rows = _case_deadlines(uow, case)
    row = rows.get(kind)
    if row is not None and row.met_on is None:
        uow.session.delete(row)
        del rows[kind]


def case_deadlines(uow: UnitOfWork, case: Case) -> list[Deadline]:
    """The case's deadline rows as this transaction knows them, by due date (flush first)."""
    rows = _case_deadlines(uow, case).values()
    return sorted(rows, key=lambda d: (d.due_on, d.id or 0))


def note_new_case(uow: UnitOfWork, case: Case) -> None:
    """A case inserted in this transaction has no deadlines yet: none need reading."""
    if case.id is not None:
        uow.memo((_DEADLINES_KEY, case.id), dict)


def _case_deadlines(uow: UnitOfWork, case: Case) -> dict[str, Deadline]:
    """The case's deadline rows by kind, read once per transaction (one per kind: unique).

    A completion meets, moves and adds several deadlines of its case; one read serves them
    all, and a row added here is found again before it is flushed. The map is kept per
    transaction (a rolled-back savepoint starts afresh) and only set_deadline adds rows."""
    if case.id is None:
        return {}

    def read() -> dict[str, Deadline]:
        rows = uow.session.scalars(select(Deadline).where(Deadline.case_id == case.id))
        return {d.kind: d for d in rows}

    return uow.memo((_DEADLINES_KEY, case.id), read)


_DEADLINES_KEY = "fengqiao.case_deadlines"


def deadlines_of(uow: UnitOfWork, case_id: int) -> dict[str, Deadline]:
    """A case's deadlines by kind."""
    return {
        d.kind: d for d in uow.session.scalars(select(Deadline).where(Deadline.case_id == case_id))
    }


def refresh_state(row: Deadline, today: date) -> str:
    """The state a deadline shows today (pending, met or missed)."""
    return deadline_state(row.due_on, row.met_on, today).value


def _claim_warning(uow: UnitOfWork, deadline: Deadline, level: str, now: datetime) -> bool:
    """Insert the (deadline, level, due date) warning row; False if another run already did."""
    insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    result = uow.session.execute(
        insert(DeadlineWarning)
        .values(
            deadline_id=deadline.id,
            case_id=deadline.case_id,
            level=level,
            due_on=deadline.due_on,
            raised_at=now,
        )
        .on_conflict_do_nothing()
        .returning(DeadlineWarning.id)
    )
    return result.first() is not None


# (role, unit id) -> its holders, read once per batch of warnings.
_Holders = dict[tuple[str, int], list[User]]


def _recipients(
    uow: UnitOfWork, case: Case, *, red: bool, holders: _Holders | None = None
) -> list[User]:
    """Who hears of a deadline: the people on the case's open tasks; for red also supervisors."""
    holders = {} if holders is None else holders

    def with_role(role: str, unit_id: int) -> list[User]:
        if (role, unit_id) not in holders:
            holders[role, unit_id] = users_with_role(uow, role, unit_id)
        return holders[role, unit_id]

    users: dict[int, User] = {}
    for task in uow.session.scalars(
        select(Task).where(Task.case_id == case.id, Task.status == "open")
    ):
        if task.assignee_id is not None:
            user = uow.session.get(User, task.assignee_id)
            if user is not None:
                users[user.id] = user
        elif task.role and task.unit_id is not None:
            users.update({u.id: u for u in with_role(task.role, task.unit_id)})
    if red:
        users.update({u.id: u for u in with_role("supervisor", case.unit_id)})
    return list(users.values())


def raise_warnings(services: Services, now: datetime | None = None, *, batch: int = 500) -> int:
    """Yellow `warning_days` before a pending deadline, red once missed; each exactly once."""
    now = now or services.clock.now()
    today = _local(now)
    raised = 0
    horizon = today
    floor: int | None = None
    while True:
        with services.uow() as uow:
            # The candidates' ids first, from the (state, due_on) index: ordering by id in the
            # same query makes SQLite walk every deadline in id order (issue 10, 1M deadlines).
            # Later rounds take the deadlines added meanwhile (e.g. by a red warning's 督办).
            if floor is None:
                horizon = today + timedelta(days=int(get_setting(uow, "warning_days")))
                newest = uow.session.scalar(select(func.max(Deadline.id))) or 0
                needs = _needs_warning(today, horizon)
            else:
                newest, needs = floor, and_(_needs_warning(today, horizon), Deadline.id > floor)
            candidates = sorted(uow.session.scalars(select(Deadline.id).where(needs)))
        if not candidates:
            return raised
        floor = max(newest, candidates[-1])
        for start in range(0, len(candidates), batch):
            ids = candidates[start : start + batch]
            raised += _raise_batch(services, ids, today, horizon, now)


def _raise_batch(
    services: Services, ids: list[int], today: date, horizon: date, now: datetime
) -> int:
    """Warn for these deadlines in one transaction; the count of warnings raised."""
    raised = 0
    holders: _Holders = {}
    with services.uow() as uow:
        # Read again, with the same conditions: another scheduler may have warned meanwhile.
        rows = uow.session.scalars(
            select(Deadline)
            .where(Deadline.id.in_(ids), _needs_warning(today, horizon))
            .order_by(Deadline.id)
        ).all()
        for deadline in rows:
            level = "red" if deadline.due_on < today else "yellow"
            if not _claim_warning(uow, deadline, level, now):
                continue
            case = uow.session.get(Case, deadline.case_id)
            if case is None:
                continue
            if level == "red":
                deadline.state = "missed"
            _notify(services, uow, case, deadline, level, today, now, holders)
            if level == "red":
                hooks: Any = services.case_types.get(case.case_type).hooks
                on_missed = getattr(hooks, "on_deadline_missed", None)
                if on_missed is not None:
                    on_missed(HookContext(services, uow, SYSTEM, now), case, deadline)
            raised += 1
        uow.commit()
    return raised


def _needs_warning(today: date, horizon: date) -> Any:
    """SQL: a pending deadline due by `horizon` without its red warning, nor its yellow one
    while not yet overdue (a warning counts for the due date it was raised for)."""
    red_done = exists().where(
        DeadlineWarning.deadline_id == Deadline.id,
        DeadlineWarning.due_on == Deadline.due_on,
        DeadlineWarning.level == "red",
    )
    yellow_done = exists().where(
        DeadlineWarning.deadline_id == Deadline.id,
        DeadlineWarning.due_on == Deadline.due_on,
        DeadlineWarning.level == "yellow",
    )
    return and_(
        Deadline.state == "pending",
        Deadline.due_on <= horizon,
        ~red_done,
        ~and_(Deadline.due_on >= today, yellow_done),
    )


def _local(now: datetime) -> date:
    from engine.clock import LOCAL_TZ

    return now.astimezone(LOCAL_TZ).date()


def _notify(
    services: Services,
    uow: UnitOfWork,
    case: Case,
    deadline: Deadline,
    level: str,
    today: date,
    now: datetime,
    holders: _Holders | None = None,
) -> None:
    """One in-app message per recipient (keyed per deadline, due date and user), fanned out
    to their channels: one `enqueue_many` per language, whose label the message carries."""
    from engine.domain.deadlines import ALL_RULES

    rule = ALL_RULES.get(deadline.kind)
    base = services.settings.base_url.rstrip("/")
    by_language: dict[str, list[User]] = {}
    for user in _recipients(uow, case, red=level == "red", holders=holders):
        by_language.setdefault(user.language[:2], []).append(user)
    for language, users in by_language.items():
        params: dict[str, Any] = {
            "case_no": case.case_no,
            "deadline_label": rule.label(language) if rule else deadline.kind,
            "due_on": deadline.due_on.isoformat(),
            "url": f"{base}/cases/{case.id}",
        }
        if level == "red":
            params["days_over"] = (today - deadline.due_on).days
        else:
            params["days_left"] = (deadline.due_on - today).days
        due = deadline.due_on.isoformat()
        enqueue_many(
            uow,
            [(f"warning:{level}:{deadline.id}:{due}:{user.id}", user) for user in users],
            template=f"warning_{level}",
            params=params,
            case_id=case.id,
            now=now,
        )


# Up to this many cases in the caller's scope are listed by id in the board's query.
BOARD_CASE_IDS_MAX = 5000


def open_deadlines_board(
    uow: UnitOfWork, actor: Any, today: date, *, limit: int = 500
) -> list[dict[str, Any]]:
    """Pending and missed-unmet deadlines of open cases in scope, earliest first (督办 board).

    A closed case leaves the board: its lapsed windows and missed deadlines are history (they
    stay in its timeline and in the figures), not work to chase."""
    from engine.services.access import unit_scope_ids
    from engine.services.cases import CLOSED_STATUSES

    in_scope = and_(
        unit_scope_ids(uow.session, actor, Case.unit_id),
        case_visibility(actor),
        Case.status.not_in(CLOSED_STATUSES),
    )
    # A street's cases are read first (an index-only scan), so the board reads just their
    # deadlines: joining the scope instead makes the planner read every open deadline of
    # every street once the database holds many (issue 10, bench/growth.py).
    case_ids = list(
        uow.session.scalars(select(Case.id).where(in_scope).limit(BOARD_CASE_IDS_MAX + 1))
    )
    if len(case_ids) <= BOARD_CASE_IDS_MAX:
        in_scope = Deadline.case_id.in_(case_ids)
    rows = uow.session.execute(
        select(Deadline, Case.case_no, Case.title, Case.case_type, Unit.name)
        .join(Case, Case.id == Deadline.case_id)
        .outerjoin(Unit, Unit.id == Deadline.unit_id)
        .where(
            Deadline.state.in_(["pending", "missed"]),
            Deadline.met_on.is_(None),
            in_scope,
        )
        .order_by(Deadline.due_on, Deadline.id)
        .limit(limit)
    ).all()
    return [
        {
            "case_id": d.case_id,
            "case_no": case_no,
            "title": title,
            "case_type": case_type,
            "unit_id": d.unit_id,
            "unit_name": unit_name,
            "kind": d.kind,
            "due_on": d.due_on,
            "state": d.state,
            "days_left": (d.due_on - today).days,
        }
        for d, case_no, title, case_type, unit_name in rows
    ]
