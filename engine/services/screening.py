"""Monthly dispute screening (矛盾纠纷排查): rounds, the hazard ledger (台账) and sign-off (销号).

Every month each reporting unit gets one round (process `screening_round`): it reports the
hazards it found, or an explicit zero report, signed by its head (DOMAIN.md §5). Every hazard
is a ledger entry (process `hazard`) closed only by sign-off with evidence. Open entries are
carried over into later months' ledgers by a date rule, never copied.
"""

from __future__ import annotations

import calendar as pycalendar
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ
from engine.domain.calendar import DueDate
from engine.domain.deadlines import HAZARD_RULES, MEDIATION_RULES, RuleViolation, compute_due
from engine.domain.deadlines import check_business_date as _check_date
from engine.domain.enums import DisputeType, ResolutionMethod, RiskLevel
from engine.domain.kpi import Ratio
from engine.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from engine.persistence.db import UnitOfWork, conflicts_as_409
from engine.persistence.models import (
    Case,
    Hazard,
    HazardNote,
    MediationAgreement,
    RoleAssignment,
    ScreeningRound,
    Task,
    Unit,
    User,
)
from engine.services.access import Actor, unit_scope
from engine.services.audit import record_case_event
from engine.services.calendar import load_calendar
from engine.services.case_types import CaseType, CaseTypeRegistry, HookContext
from engine.services.cases import case_view, next_case_no, start_case, take_numbers
from engine.services.deadlines import meet_deadline, set_deadline
from engine.services.notify import enqueue
from engine.services.reports import Figure, Period, register_section
from engine.services.settings import get_setting
from engine.workflow import HumanTask, Snapshot

ROUND_TYPE = "screening_round"
HAZARD_TYPE = "hazard"
ROUND_PREFIX = "PC"  # 排查
HAZARD_PREFIX = "JF"  # 纠纷: ledger numbers JF-<year>-<6 digits>
HAZARD_STATUSES = ("open", "pending_confirmation", "pending_approval", "signed_off")
ROUND_STATUSES = ("open", "submitted", "signed", "overdue")
ESCALATION_TARGETS = ("petition", "key_person")
OPEN_BATCH = 500  # rounds started per transaction when a month opens
MAX_PER_PAGE = 200
# Bounds of the two rework loops (SPIFFWORKFLOW.md trap 8: a loop grows the task tree and
# stalls at ~334 iterations). The BPMN loop-back flows carry the same numbers
# (`sign_returns <= 10`, `closure_rejections <= 10`); past them the street coordinates.
MAX_SIGN_RETURNS = 10  # a unit head sends one month's report back at most 10 times
MAX_CLOSURE_REJECTIONS = 10  # confirmation + sign-off rejections of one hazard, together


# -- months and dates -------------------------------------------------------------------------


def month_key(day: date) -> str:
    """The 'YYYY-MM' key of the month a date falls in."""
    return f"{day.year:04d}-{day.month:02d}"


def parse_month(text: str, field: str = "month") -> date:
    """The first day of a 'YYYY-MM' month, else a 422 naming the field."""
    try:
        year, month = (int(p) for p in text.split("-"))
        return date(year, month, 1)
    except (ValueError, TypeError):
        raise ValidationError("invalid month", {field: ["Use YYYY-MM."]}) from None


def next_month(first: date) -> date:
    """The first day of the following month."""
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def round_due_on(first: date, due_day: int) -> date:
    """The report due day of a month (setting screening_due_day, capped at the month's end)."""
    last = pycalendar.monthrange(first.year, first.month)[1]
    return first.replace(day=max(1, min(due_day, last)))


def _local(now: datetime) -> date:
    return now.astimezone(LOCAL_TZ).date()


def _insert(uow: UnitOfWork) -> Any:
    return pg_insert if uow.dialect == "postgresql" else sqlite_insert


def _date_error(exc: RuleViolation, field: str) -> ValidationError:
    return ValidationError(exc.message_en, {field: [exc.message_en]})


def _check_business_date(value: date, *, today: date, not_before: date | None, field: str) -> None:
    try:
        _check_date(value, today=today, not_before=not_before, field=field)
    except RuleViolation as exc:
        raise _date_error(exc, field) from exc


def _as_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


# -- opening rounds (scheduler job) -----------------------------------------------------------


def open_screening_rounds(services: Services, now: datetime | None = None) -> int:
    """Job: on/after the start day, open this month's round for every reporting unit lacking one."""
    now = now or services.clock.now()
    today = _local(now)
    with services.uow() as uow:
        start_day = int(get_setting(uow, "screening_start_day"))
    if today.day < start_day:
        return 0
    return open_rounds_for_month(services, month_key(today), now)


def open_rounds_for_month(services: Services, month: str, now: datetime) -> int:
    """Open the month's rounds that do not exist yet; unique (unit, month) makes repeats no-ops."""
    first = parse_month(month)
    opened = 0
    while True:
        with services.uow() as uow:
            due_on = round_due_on(first, int(get_setting(uow, "screening_due_day")))
            has_round = exists().where(
                ScreeningRound.unit_id == Unit.id, ScreeningRound.month == month
            )
            units = uow.session.execute(
                select(Unit.id, Unit.name)
                .where(Unit.reporting.is_(True), Unit.active.is_(True), ~has_round)
                .order_by(Unit.id)
                .limit(OPEN_BATCH)
            ).all()
            if not units:
                return opened
            # The unique (unit_id, month) key decides: a concurrent scheduler's rows win silently.
            created = uow.session.execute(
                _insert(uow)(ScreeningRound)
                .values(
                    [
                        {
                            "unit_id": unit_id,
                            "month": month,
                            "due_on": due_on,
                            "status": "open",
                            "opened_at": now,
                        }
                        for unit_id, _name in units
                    ]
                )
                .on_conflict_do_nothing()
                .returning(ScreeningRound.id, ScreeningRound.unit_id)
            ).all()
            names = dict(units)
            if created:
                _start_round_cases(
                    services,
                    uow,
                    [(rid, uid, names[uid]) for rid, uid in created],
                    month,
                    due_on,
                    now,
                )
            uow.commit()
            opened += len(created)
            if len(units) < OPEN_BATCH:
                return opened


def _start_round_cases(
    services: Services,
    uow: UnitOfWork,
    rounds: Sequence[tuple[int, int, str]],
    month: str,
    due_on: date,
    now: datetime,
) -> None:
    """Start one `screening_round` instance per new round, writing rows in bulk.

    This is start_case() unrolled for many instances at once: a new instance has no earlier
    task rows or timers to reconcile, so task rows and audit events are added directly and
    the opening notice goes to each unit's reporters in one query (issue 10: 1,000 units in
    ≤ 10 s)."""
    session = uow.session
    deployed = services.definitions.latest(uow, ROUND_TYPE)
    year = int(month[:4])
    label = f"{year}年{int(month[5:])}月"
    started: list[tuple[int, int, Case, Snapshot]] = []
    numbers = iter(_case_numbers(uow, ROUND_PREFIX, year, len(rounds)))
    # Ids known before the INSERT let the audit head go into that INSERT (no UPDATE per case).
    ids = iter(_case_ids(uow, len(rounds)))
    for round_id, unit_id, unit_name in rounds:
        snapshot = services.runtime.start(
            deployed.definition,
            {
                "round_id": round_id,
                "unit_id": unit_id,
                "unit_name": unit_name,
                "month": month,
                "due_on": due_on.isoformat(),
            },
        )
        case_row = Case(
            id=next(ids),
            case_type=ROUND_TYPE,
            case_no=next(numbers),
            title=f"{unit_name} {label}矛盾纠纷排查",
            unit_id=unit_id,
            status=snapshot.status,
            definition_id=deployed.id,
            state=snapshot.state,
            version=1,
            data=dict(snapshot.data),
            error=snapshot.error,
            audit_seq=0,
            audit_hash="",
            created_by_id=None,
            created_at=now,
            updated_at=now,
            closed_at=None,
        )
        session.add(case_row)
        started.append((round_id, unit_id, case_row, snapshot))
    sha = deployed.definition.sha256[:12]
    children: list[Any] = []
    for _round_id, _unit_id, case_row, snapshot in started:
        event = record_case_event(
            uow,
            case_row,
            "case.started",
            actor_id=None,
            at=now,
            detail={"case_type": ROUND_TYPE, "definition": sha},
        )
        # Held back until the cases are in: the flush does not order these by foreign key.
        session.expunge(event)
        children.append(event)
        children.extend(
            Task(
                case_id=case_row.id,
                spiff_id=human.id,
                bpmn_id=human.bpmn_id,
                name=human.name or human.bpmn_id,
                role=human.candidate_roles[0] if human.candidate_roles else None,
                unit_id=human.unit_id if human.unit_id is not None else case_row.unit_id,
                assignee_id=None,
                status="open",
                due_at=human.due_at,
                created_at=now,
            )
            for human in snapshot.tasks
        )
    session.flush()
    session.add_all(children)
    session.flush()
    session.execute(
        update(ScreeningRound),
        [{"id": rid, "case_id": c.id} for rid, _uid, c, _s in started],
    )
    base = services.settings.base_url.rstrip("/")
    reporters = _unit_users(uow, "reporter", [uid for _r, uid, _c, _s in started])
    names = {uid: name for _rid, uid, name in rounds}
    for round_id, unit_id, case_row, _snapshot in started:
        for user in reporters.get(unit_id, []):
            enqueue(
                uow,
                key=f"screening:opened:{round_id}:{user.id}",
                template="screening_opened",
                params={
                    "unit_name": names[unit_id],
                    "month": month,
                    "due_on": due_on.isoformat(),
                    "url": f"{base}/cases/{case_row.id}",
                },
                user=user,
                case_id=case_row.id,
                now=now,
            )


def _case_ids(uow: UnitOfWork, n: int) -> list[int]:
    """Reserve n ids of the cases table: from its sequence, or past the max under SQLite's lock."""
    if uow.dialect == "postgresql":
        rows = uow.session.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('cases', 'id')) FROM generate_series(1, :n)"
            ),
            {"n": n},
        ).scalars()
        return [int(r) for r in rows]
    # SQLite: the transaction began with BEGIN IMMEDIATE, so no other writer can take these.
    top = uow.session.scalar(select(func.max(Case.id))) or 0
    return list(range(top + 1, top + n + 1))


def _case_numbers(uow: UnitOfWork, prefix: str, year: int, n: int) -> list[str]:
    """Allocate n consecutive case numbers with one counter upsert, not n."""
    last = take_numbers(uow, f"{prefix}-{year}", n)  # locks the counter row, takes n numbers
    return [f"{prefix}-{year}-{v:06d}" for v in range(last - n + 1, last + 1)]


def _unit_users(uow: UnitOfWork, role: str, unit_ids: Sequence[int]) -> dict[int, list[User]]:
    """Active users holding `role` directly on each of the units (one query)."""
    out: dict[int, list[User]] = defaultdict(list)
    if not unit_ids:
        return out
    rows = uow.session.execute(
        select(RoleAssignment.unit_id, User)
        .join(User, User.id == RoleAssignment.user_id)
        .where(
            RoleAssignment.role == role,
            RoleAssignment.unit_id.in_(sorted(set(unit_ids))),
            User.active.is_(True),
        )
        .order_by(User.id)
    ).all()
    for unit_id, user in rows:
        if unit_id is not None:
            out[unit_id].append(user)
    return out


# -- reminders and red warnings (scheduler job) -----------------------------------------------


def remind_screening(services: Services, now: datetime | None = None) -> int:
    """Job: remind units N days before the due day; red-warn leader and street supervisor after.

    Also reminds the responsible unit's handlers that a mediation agreement's 30-day window for
    judicial confirmation is closing (人民调解法 Art. 33). Each message has an idempotency key
    and each round is marked, so repeats and concurrent schedulers send nothing twice."""
    now = now or services.clock.now()
    today = _local(now)
    sent = 0
    base = services.settings.base_url.rstrip("/")
    with services.uow() as uow:
        lead = int(get_setting(uow, "screening_reminder_days"))
        soon = uow.session.execute(
            select(ScreeningRound, Unit.name)
            .join(Unit, Unit.id == ScreeningRound.unit_id)
            .where(
                ScreeningRound.status.in_(["open", "submitted"]),
                ScreeningRound.reminded_at.is_(None),
                ScreeningRound.due_on >= today,
                ScreeningRound.due_on <= today + timedelta(days=lead),
            )
            .order_by(ScreeningRound.id)
        ).all()
        unit_ids = [r.unit_id for r, _n in soon]
        reporters = _unit_users(uow, "reporter", unit_ids)
        leaders = _unit_users(uow, "leader", unit_ids)
        for rnd, unit_name in soon:
            unit_people = reporters if rnd.status == "open" else leaders
            for user in unit_people.get(rnd.unit_id, []):
                enqueue(
                    uow,
                    key=f"screening:due_soon:{rnd.id}:{user.id}",
                    template="screening_due_soon",
                    params={
                        "unit_name": unit_name,
                        "month": rnd.month,
                        "due_on": rnd.due_on.isoformat(),
                        "days_left": (rnd.due_on - today).days,
                        "url": f"{base}/cases/{rnd.case_id}",
                    },
                    user=user,
                    case_id=rnd.case_id,
                    now=now,
                )
            rnd.reminded_at = now
            sent += 1
        uow.commit()

    with services.uow() as uow:
        late = uow.session.execute(
            select(ScreeningRound, Unit.name, Unit.path)
            .join(Unit, Unit.id == ScreeningRound.unit_id)
            .where(
                ScreeningRound.status.in_(["open", "submitted"]),
                ScreeningRound.overdue_warned_at.is_(None),
                ScreeningRound.due_on < today,
            )
            .order_by(ScreeningRound.id)
        ).all()
        if late:
            leaders = _unit_users(uow, "leader", [r.unit_id for r, _n, _p in late])
            supervisors = _street_supervisors(uow)
            for rnd, unit_name, path in late:
                people = {u.id: u for u in leaders.get(rnd.unit_id, [])}
                for street_path, users in supervisors:
                    if path.startswith(street_path):
                        people.update({u.id: u for u in users})
                for user in people.values():
                    enqueue(
                        uow,
                        key=f"screening:overdue:{rnd.id}:{user.id}",
                        template="screening_overdue",
                        params={
                            "unit_name": unit_name,
                            "month": rnd.month,
                            "due_on": rnd.due_on.isoformat(),
                            "url": f"{base}/cases/{rnd.case_id}",
                        },
                        user=user,
                        case_id=rnd.case_id,
                        now=now,
                    )
                rnd.overdue_warned_at = now
                sent += 1
        uow.commit()

    with services.uow() as uow:
        warning_days = int(get_setting(uow, "warning_days"))
        closing = uow.session.execute(
            select(MediationAgreement, Hazard)
            .join(Hazard, Hazard.id == MediationAgreement.hazard_id)
            .where(
                MediationAgreement.judicial_confirmation_on.is_(None),
                MediationAgreement.reminded_at.is_(None),
                MediationAgreement.judicial_confirmation_due >= today,
                MediationAgreement.judicial_confirmation_due
                <= today + timedelta(days=warning_days),
            )
        ).all()
        handlers = _unit_users(uow, "handler", [h.responsible_unit_id for _a, h in closing])
        rule = MEDIATION_RULES["judicial_confirmation"]
        for agreement, hazard in closing:
            for user in handlers.get(hazard.responsible_unit_id, []):
                enqueue(
                    uow,
                    key=f"judicial_confirmation:{agreement.id}:{user.id}",
                    template="warning_yellow",
                    params={
                        "case_no": hazard.ledger_no,
                        "deadline_label": rule.label(user.language[:2]),
                        "due_on": agreement.judicial_confirmation_due.isoformat(),
                        "days_left": (agreement.judicial_confirmation_due - today).days,
                        "url": f"{base}/cases/{hazard.case_id}",
                    },
                    user=user,
                    case_id=hazard.case_id,
                    now=now,
                )
            agreement.reminded_at = now
            sent += 1
        uow.commit()
    return sent


def _street_supervisors(uow: UnitOfWork) -> list[tuple[str, list[User]]]:
    """Supervisors holding the role on a street or on the sign-off unit, by the street's path."""
    signoff_code = str(get_setting(uow, "signoff_unit_code"))
    rows = uow.session.execute(
        select(Unit.path, Unit.kind, Unit.code, User)
        .join(RoleAssignment, RoleAssignment.unit_id == Unit.id)
        .join(User, User.id == RoleAssignment.user_id)
        .where(
            RoleAssignment.role == "supervisor",
            User.active.is_(True),
            or_(Unit.kind == "street", Unit.code == signoff_code),
        )
    ).all()
    by_path: dict[str, list[User]] = defaultdict(list)
    for path, kind, _code, user in rows:
        # The safety office sits under its street: its supervisors cover the street's units.
        street_path = path if kind == "street" else "/".join(path.rstrip("/").split("/")[:-1]) + "/"
        by_path[street_path].append(user)
    return list(by_path.items())


# -- views ------------------------------------------------------------------------------------


def round_status(rnd: ScreeningRound, today: date) -> str:
    """open | submitted | signed | overdue (an unsigned round past its due day)."""
    if rnd.status != "signed" and today > rnd.due_on:
        return "overdue"
    return rnd.status


def round_late(rnd: ScreeningRound, today: date) -> bool:
    """Whether the unit missed the due day: not signed by it (still open, or signed after)."""
    if rnd.signed_on is not None:
        return rnd.signed_on > rnd.due_on
    return today > rnd.due_on


def round_view(rnd: ScreeningRound, today: date, **extra: Any) -> dict[str, Any]:
    """A round as GET /screening/rounds shows it."""
    return {
        "id": rnd.id,
        "unit_id": rnd.unit_id,
        "month": rnd.month,
        "due_on": rnd.due_on,
        "status": round_status(rnd, today),
        "late": round_late(rnd, today),
        "zero_report": rnd.zero_report,
        "submitted_on": rnd.reported_on,
        "signed_on": rnd.signed_on,
        "case_id": rnd.case_id,
        "rejection_reason": rnd.rejection_reason,
        **extra,
    }


def list_rounds(
    uow: UnitOfWork,
    actor: Actor,
    *,
    month: str,
    unit_id: int | None = None,
    status: str | None = None,
    today: date,
) -> list[dict[str, Any]]:
    """A month's rounds in the caller's scope, with hazards found and carried over per unit."""
    first = parse_month(month)
    if status is not None and status not in ROUND_STATUSES:
        raise ValidationError(
            "invalid status", {"status": [f"One of {', '.join(ROUND_STATUSES)}."]}
        )
    stmt = (
        select(ScreeningRound, Unit.name, Unit.code)
        .join(Unit, Unit.id == ScreeningRound.unit_id)
        .where(ScreeningRound.month == month, unit_scope(actor, ScreeningRound.unit_id))
    )
    if unit_id is not None:
        stmt = stmt.where(ScreeningRound.unit_id.in_(_subtree(unit_id)))
    rows = uow.session.execute(stmt.order_by(Unit.code)).all()
    found = dict(
        uow.session.execute(
            select(Hazard.round_id, func.count())
            .join(ScreeningRound, ScreeningRound.id == Hazard.round_id)
            .where(ScreeningRound.month == month)
            .group_by(Hazard.round_id)
        ).all()
    )
    carried = dict(
        uow.session.execute(
            select(Hazard.unit_id, func.count())
            .where(_carried_into(first))
            .group_by(Hazard.unit_id)
        ).all()
    )
    items = [
        round_view(
            rnd,
            today,
            unit_name=name,
            unit_code=code,
            hazard_count=int(found.get(rnd.id, 0)),
            carried_over_count=int(carried.get(rnd.unit_id, 0)),
        )
        for rnd, name, code in rows
    ]
    if status is not None:
        items = [i for i in items if i["status"] == status]
    return items


def _subtree(unit_id: int) -> Any:
    path = select(Unit.path).where(Unit.id == unit_id).scalar_subquery()
    return select(Unit.id).where(Unit.path.startswith(path))


def _carried_into(first: date) -> ColumnElement[bool]:
    """Hazards of earlier months still open when the month began (computed, never copied)."""
    return and_(
        Hazard.month < month_key(first),
        or_(Hazard.signed_off_on.is_(None), Hazard.signed_off_on >= first),
    )


def _in_ledger(first: date) -> ColumnElement[bool]:
    """Entries of a month's ledger: found that month, or carried over into it."""
    return or_(Hazard.month == month_key(first), _carried_into(first))


def _hazard_visible(actor: Actor) -> ColumnElement[bool]:
    return or_(unit_scope(actor, Hazard.unit_id), unit_scope(actor, Hazard.responsible_unit_id))


def hazard_view(
    h: Hazard,
    today: date,
    *,
    month: str | None = None,
    unit_name: str | None = None,
    responsible_unit_name: str | None = None,
) -> dict[str, Any]:
    """A ledger entry as the API shows it; `carried_over` relative to the month listed."""
    return {
        "id": h.id,
        "ledger_no": h.ledger_no,
        "case_id": h.case_id,
        "round_id": h.round_id,
        "unit_id": h.unit_id,
        "unit_name": unit_name,
        "month": h.month,
        "found_on": h.found_on,
        "source": h.source,
        "dispute_type": h.dispute_type,
        "dispute_type_label": DisputeType(h.dispute_type).label(),
        "parties": h.parties,
        "involved_count": h.involved_count,
        "summary": h.summary,
        "risk_level": h.risk_level,
        "criminal_risk": h.criminal_risk,
        "measures": h.measures,
        "method": h.method,
        "responsible_unit_id": h.responsible_unit_id,
        "responsible_unit_name": responsible_unit_name,
        "responsible_person": h.responsible_person,
        "owning_leader": h.owning_leader,
        "time_limit_on": h.time_limit_on,
        "progress": h.progress,
        "status": h.status,
        "overdue": h.status != "signed_off" and today > h.time_limit_on,
        "carried_over": month is not None and h.month < month,
        "resolution": h.resolution,
        "evidence_refs": h.evidence_refs,
        "resolved_on": h.resolved_on,
        "confirmed_on": h.confirmed_on,
        "signed_off_on": h.signed_off_on,
        "signed_off_by_id": h.signed_off_by_id,
        "rejection_reason": h.rejection_reason,
        "escalated_to": h.escalated_to,
        "escalated_case_id": h.escalated_case_id,
    }


@dataclass(frozen=True)
class HazardFilter:
    """Filters of GET /api/v1/screening/hazards."""

    status: str | None = None
    unit_id: int | None = None
    risk_level: str | None = None
    month: str | None = None
    overdue: bool | None = None
    page: int = 1
    per_page: int = 50


def _hazard_query(actor: Actor, flt: HazardFilter, today: date) -> Any:
    responsible = Unit.__table__.alias("responsible")
    stmt = (
        select(Hazard, Unit.name, responsible.c.name)
        .join(Unit, Unit.id == Hazard.unit_id)
        .join(responsible, responsible.c.id == Hazard.responsible_unit_id)
        .where(_hazard_visible(actor))
    )
    if flt.status is not None:
        if flt.status not in HAZARD_STATUSES:
            raise ValidationError(
                "invalid status", {"status": [f"One of {', '.join(HAZARD_STATUSES)}."]}
            )
        stmt = stmt.where(Hazard.status == flt.status)
    if flt.risk_level is not None:
        if flt.risk_level not in RiskLevel.__members__:
            raise ValidationError(
                "invalid risk level", {"risk_level": ["One of high, medium, low."]}
            )
        stmt = stmt.where(Hazard.risk_level == flt.risk_level)
    if flt.unit_id is not None:
        sub = _subtree(flt.unit_id)
        stmt = stmt.where(or_(Hazard.unit_id.in_(sub), Hazard.responsible_unit_id.in_(sub)))
    if flt.month is not None:
        stmt = stmt.where(_in_ledger(parse_month(flt.month)))
    if flt.overdue is True:
        stmt = stmt.where(Hazard.status != "signed_off", Hazard.time_limit_on < today)
    elif flt.overdue is False:
        stmt = stmt.where(or_(Hazard.status == "signed_off", Hazard.time_limit_on >= today))
    return stmt


def list_hazards(uow: UnitOfWork, actor: Actor, flt: HazardFilter, today: date) -> dict[str, Any]:
    """Ledger entries in scope, by ledger number; a month lists its carried-over entries too."""
    per_page = max(1, min(flt.per_page, MAX_PER_PAGE))
    page = max(1, flt.page)
    stmt = _hazard_query(actor, flt, today)
    total = uow.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = uow.session.execute(
        stmt.order_by(Hazard.found_on, Hazard.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return {
        "items": [
            hazard_view(h, today, month=flt.month, unit_name=u, responsible_unit_name=r)
            for h, u, r in rows
        ],
        "total": int(total or 0),
        "page": page,
        "per_page": per_page,
    }


def ledger_rows(
    uow: UnitOfWork, actor: Actor, month: str, unit_id: int | None, today: date
) -> list[dict[str, Any]]:
    """Every entry of a month's ledger in scope (export; no paging)."""
    stmt = _hazard_query(actor, HazardFilter(month=month, unit_id=unit_id), today)
    rows = uow.session.execute(stmt.order_by(Hazard.unit_id, Hazard.found_on, Hazard.id)).all()
    return [
        hazard_view(h, today, month=month, unit_name=u, responsible_unit_name=r) for h, u, r in rows
    ]


def _load_hazard(uow: UnitOfWork, actor: Actor, hazard_id: int) -> Hazard:
    hazard = uow.session.scalars(
        select(Hazard).where(Hazard.id == hazard_id, _hazard_visible(actor))
    ).first()
    if hazard is None:
        raise NotFoundError("hazard not found")
    return hazard


def get_hazard(uow: UnitOfWork, actor: Actor, hazard_id: int, today: date) -> dict[str, Any]:
    """One ledger entry with its notes, agreements, case (tasks, deadlines, timeline) and links."""
    hazard = _load_hazard(uow, actor, hazard_id)
    names = dict(
        uow.session.execute(
            select(Unit.id, Unit.name).where(
                Unit.id.in_([hazard.unit_id, hazard.responsible_unit_id])
            )
        ).all()
    )
    view = hazard_view(
        hazard,
        today,
        unit_name=names.get(hazard.unit_id),
        responsible_unit_name=names.get(hazard.responsible_unit_id),
    )
    view["notes"] = [
        {"id": n.id, "noted_on": n.noted_on, "text": n.text, "author_id": n.author_id}
        for n in uow.session.scalars(
            select(HazardNote).where(HazardNote.hazard_id == hazard.id).order_by(HazardNote.id)
        )
    ]
    view["agreements"] = [
        {
            "id": a.id,
            "agreement_no": a.agreement_no,
            "signed_on": a.signed_on,
            "parties": a.parties,
            "judicial_confirmation_due": a.judicial_confirmation_due,
            "judicial_confirmation_on": a.judicial_confirmation_on,
        }
        for a in uow.session.scalars(
            select(MediationAgreement)
            .where(MediationAgreement.hazard_id == hazard.id)
            .order_by(MediationAgreement.id)
        )
    ]
    case_row = uow.session.get(Case, hazard.case_id) if hazard.case_id else None
    view["case"] = case_view(uow, case_row) if case_row is not None else None
    if hazard.escalated_case_id is not None:
        linked = uow.session.get(Case, hazard.escalated_case_id)
        view["escalated_case_no"] = linked.case_no if linked is not None else None
    return view


# -- adding hazards ---------------------------------------------------------------------------

HAZARD_FIELDS = (
    "dispute_type",
    "parties",
    "involved_count",
    "summary",
    "risk_level",
    "criminal_risk",
    "measures",
    "method",
    "responsible_unit_id",
    "responsible_person",
)


def _validate_hazard(uow: UnitOfWork, body: Mapping[str, Any], today: date) -> dict[str, Any]:
    """Check a new ledger entry; every problem is reported at once (422, nothing written)."""
    errors: dict[str, Any] = {}
    clean: dict[str, Any] = {}
    for name in HAZARD_FIELDS:
        missing = name not in body or body[name] is None or body[name] == ""
        if missing and name not in {"measures", "criminal_risk"}:
            errors[name] = ["Missing data for required field."]
    enums: dict[str, tuple[str, ...]] = {
        "dispute_type": tuple(DisputeType.__members__),
        "risk_level": tuple(RiskLevel.__members__),
        "method": tuple(ResolutionMethod.__members__),
    }
    for name, allowed in enums.items():
        value = body.get(name)
        if value is not None and value != "" and value not in allowed:
            errors[name] = [f"Must be one of: {', '.join(allowed)}."]
    for name, limit in (("parties", 500), ("summary", 4000), ("measures", 4000)):
        text = body.get(name)
        if text is not None and (not isinstance(text, str) or len(text) > limit):
            errors[name] = [f"Text of at most {limit} characters."]
    for name in ("responsible_person", "owning_leader", "source"):
        text = body.get(name)
        if text is not None and (not isinstance(text, str) or len(text) > 100):
            errors[name] = ["Text of at most 100 characters."]
    count = body.get("involved_count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        errors["involved_count"] = ["Must be a whole number of at least 1."]
    unit_id = body.get("responsible_unit_id")
    if unit_id is not None:
        unit = uow.session.get(Unit, unit_id) if isinstance(unit_id, int) else None
        if unit is None or not unit.active:
            errors["responsible_unit_id"] = ["Unknown unit."]
    found_on = today
    try:
        found_on = _as_date(body.get("found_on")) or today
        _check_business_date(found_on, today=today, not_before=None, field="found_on")
    except (ValueError, TypeError):
        errors["found_on"] = ["Not a valid date; use YYYY-MM-DD."]
    except ValidationError as exc:
        errors.update(exc.errors or {})
    time_limit_on: date | None = None
    try:
        time_limit_on = _as_date(body.get("time_limit_on"))
        if time_limit_on is not None and time_limit_on < found_on:
            errors["time_limit_on"] = ["Must not be before the day the hazard was found."]
    except (ValueError, TypeError):
        errors["time_limit_on"] = ["Not a valid date; use YYYY-MM-DD."]
    if errors:
        raise ValidationError("the hazard has errors", errors)
    clean = {name: body.get(name) for name in HAZARD_FIELDS}
    clean["criminal_risk"] = bool(body.get("criminal_risk") or False)
    clean["measures"] = body.get("measures") or ""
    clean["owning_leader"] = body.get("owning_leader") or ""
    clean["source"] = body.get("source") or "月度排查"
    clean["found_on"] = found_on
    clean["time_limit_on"] = time_limit_on
    return clean


def add_hazard(
    services: Services, actor: Actor, round_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    """Enter a hazard in the ledger of an open round and start its `hazard` process."""
    now = services.clock.now()
    today = _local(now)
    with services.uow() as uow, conflicts_as_409():
        rnd, unit = _round_in_scope(uow, actor, round_id)
        if not actor.covers(unit.path, ["reporter", "handler", "leader"]):
            raise PermissionDeniedError("only the unit's reporter, handler or leader adds hazards")
        if rnd.status != "open":
            raise ConflictError("the round's report has been submitted; no hazards can be added")
        clean = _validate_hazard(uow, body, today)
        hazard, _case = _enter_hazard(services, uow, actor, rnd, unit, clean, now)
        uow.commit()
        return hazard_view(hazard, today, unit_name=unit.name)


def _round_in_scope(uow: UnitOfWork, actor: Actor, round_id: int) -> tuple[ScreeningRound, Unit]:
    row = uow.session.execute(
        select(ScreeningRound, Unit)
        .join(Unit, Unit.id == ScreeningRound.unit_id)
        .where(ScreeningRound.id == round_id, unit_scope(actor, ScreeningRound.unit_id))
    ).first()
    if row is None:
        raise NotFoundError("round not found")
    return row[0], row[1]


def _enter_hazard(
    services: Services,
    uow: UnitOfWork,
    actor: Actor,
    rnd: ScreeningRound,
    unit: Unit,
    clean: dict[str, Any],
    now: datetime,
) -> tuple[Hazard, Case]:
    session = uow.session
    found_on: date = clean["found_on"]
    risk = RiskLevel(clean["risk_level"])
    rule = HAZARD_RULES[f"hazard_{risk.value}"]
    if clean["time_limit_on"] is None:
        days = get_setting(uow, "hazard_time_limit_days").get(risk.value, rule.length)
        due = compute_due(rule, found_on, load_calendar(uow), length_override=int(days))
    else:
        due = DueDate(clean["time_limit_on"])
    signoff_code = str(get_setting(uow, "signoff_unit_code"))
    signoff_unit_id = session.scalar(select(Unit.id).where(Unit.code == signoff_code))
    if signoff_unit_id is None:
        raise ConflictError(f"the sign-off unit '{signoff_code}' (setting) does not exist")
    ledger_no = next_case_no(uow, HAZARD_PREFIX, found_on.year)
    hazard = Hazard(
        ledger_no=ledger_no,
        round_id=rnd.id,
        unit_id=rnd.unit_id,
        month=rnd.month,
        found_on=found_on,
        source=clean["source"],
        dispute_type=clean["dispute_type"],
        parties=clean["parties"],
        involved_count=clean["involved_count"],
        summary=clean["summary"],
        risk_level=risk.value,
        criminal_risk=clean["criminal_risk"],
        measures=clean["measures"],
        method=clean["method"],
        responsible_unit_id=clean["responsible_unit_id"],
        responsible_person=clean["responsible_person"],
        owning_leader=clean["owning_leader"],
        time_limit_on=due.due_on,
        progress="",
        status="open",
        created_by_id=actor.user_id or None,
        created_at=now,
    )
    session.add(hazard)
    session.flush()
    case_type = services.case_types.get(HAZARD_TYPE)
    case_row, _snapshot = start_case(
        services,
        uow,
        actor,
        case_type,
        unit_id=rnd.unit_id,
        data={
            "hazard_id": hazard.id,
            "ledger_no": ledger_no,
            "unit_id": rnd.unit_id,
            "responsible_unit_id": hazard.responsible_unit_id,
            "signoff_unit_id": signoff_unit_id,
            "risk_level": risk.value,
            "method": hazard.method,
            "time_limit_on": due.due_on.isoformat(),
        },
        title=f"{unit.name} {DisputeType(hazard.dispute_type).label()}：{hazard.summary[:60]}",
        now=now,
        parent_case_id=rnd.case_id,
        case_no=ledger_no,
    )
    hazard.case_id = case_row.id
    set_deadline(
        uow,
        case_row,
        rule.kind,
        due,
        source=rule.source if clean["time_limit_on"] is None else "set at entry",
        unit_id=hazard.responsible_unit_id,
    )
    if rnd.case_id is not None:
        round_case = session.get(Case, rnd.case_id)
        if round_case is not None:
            # Touching the round's case bumps its version: a report submitted concurrently
            # (say, a zero report) loses the race with a 409 instead of contradicting the ledger.
            record_case_event(
                uow,
                round_case,
                "screening.hazard_added",
                actor_id=actor.user_id,
                at=now,
                detail={"ledger_no": ledger_no, "hazard_id": hazard.id},
            )
            round_case.updated_at = now
    return hazard, case_row


def add_hazard_note(
    services: Services, actor: Actor, hazard_id: int, text: str, noted_on: date | None = None
) -> dict[str, Any]:
    """Record a progress note (化解进展) on a hazard not yet signed off."""
    now = services.clock.now()
    today = _local(now)
    with services.uow() as uow:
        hazard = _load_hazard(uow, actor, hazard_id)
        paths = dict(
            uow.session.execute(
                select(Unit.id, Unit.path).where(
                    Unit.id.in_([hazard.unit_id, hazard.responsible_unit_id])
                )
            ).all()
        )
        roles = ["handler", "leader", "reporter"]
        if not any(actor.covers(p, roles) for p in paths.values()):
            raise PermissionDeniedError("only the units handling the hazard record progress")
        if hazard.status == "signed_off":
            raise ConflictError("the hazard is signed off")
        text = (text or "").strip()
        errors: dict[str, Any] = {}
        if not text or len(text) > 2000:
            errors["text"] = ["Between 1 and 2000 characters."]
        day = noted_on or today
        try:
            _check_business_date(day, today=today, not_before=hazard.found_on, field="noted_on")
        except ValidationError as exc:
            errors.update(exc.errors or {})
        if errors:
            raise ValidationError("the note has errors", errors)
        note = HazardNote(
            hazard_id=hazard.id, noted_on=day, text=text, author_id=actor.user_id, created_at=now
        )
        uow.session.add(note)
        hazard.progress = text
        case_row = uow.session.get(Case, hazard.case_id) if hazard.case_id else None
        if case_row is not None:
            record_case_event(
                uow,
                case_row,
                "hazard.progress",
                actor_id=actor.user_id,
                at=now,
                detail={"noted_on": day.isoformat(), "text": text},
            )
        uow.session.flush()
        uow.commit()
        return {"id": note.id, "noted_on": note.noted_on, "text": note.text}


# -- escalation -------------------------------------------------------------------------------


def escalate_hazard(
    services: Services, actor: Actor, hazard_id: int, target: str, details: Mapping[str, Any]
) -> dict[str, Any]:
    """Escalate a hazard into a petition case or a key-person file; both stay linked.

    The petition (engine.services.petitions.register_petition) or key-person file
    (engine.services.stabilization.register_key_person) is registered by its own service,
    with its own rules and permissions; the hazard then records the link, and the new case
    becomes a child of the hazard's case."""
    now = services.clock.now()
    today = _local(now)
    if target not in ESCALATION_TARGETS:
        raise ValidationError("invalid target", {"target": ["One of petition, key_person."]})
    with services.uow() as uow:
        hazard = _load_hazard(uow, actor, hazard_id)
        unit = uow.session.get(Unit, hazard.unit_id)
        assert unit is not None
        if hazard.escalated_case_id is not None:
            raise ConflictError("the hazard is already escalated")
        if hazard.status == "signed_off":
            raise ConflictError("the hazard is signed off")
        unit_name = unit.name
        body = (
            _petition_body(hazard, unit, details, today)
            if target == "petition"
            else _key_person_body(hazard, unit, details)
        )
    if target == "petition":
        from engine.services.petitions import register_petition

        created = register_petition(services, actor, body)
    else:
        from engine.services.stabilization import register_key_person

        created = register_key_person(services, actor, body)
    linked_id = int(created["case_id"])
    with services.uow() as uow, conflicts_as_409():
        claimed = uow.session.execute(
            update(Hazard)
            .where(Hazard.id == hazard_id, Hazard.escalated_case_id.is_(None))
            .values(escalated_to=target, escalated_case_id=linked_id)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError("the hazard was escalated meanwhile")
        entry = uow.session.get(Hazard, hazard_id)
        linked = uow.session.get(Case, linked_id)
        assert entry is not None
        assert linked is not None
        hazard_case = uow.session.get(Case, entry.case_id) if entry.case_id else None
        if hazard_case is not None:
            linked.parent_case_id = hazard_case.id
            record_case_event(
                uow,
                hazard_case,
                "hazard.escalated",
                actor_id=actor.user_id,
                at=now,
                detail={"target": target, "case_no": linked.case_no, "case_id": linked.id},
            )
            hazard_case.updated_at = now
        record_case_event(
            uow,
            linked,
            "case.linked",
            actor_id=actor.user_id,
            at=now,
            detail={"from_hazard": entry.ledger_no, "hazard_id": entry.id},
        )
        uow.commit()
        view = hazard_view(entry, today, unit_name=unit_name)
        view["escalated_case_no"] = linked.case_no
        return view


def _party_names(parties: str) -> list[str]:
    names = [p.strip() for p in re.split(r"[、,，;；/\s]+", parties) if p.strip()]
    return names[:5] or ["（未具名）"]


def _petition_body(
    hazard: Hazard, unit: Unit, details: Mapping[str, Any], today: date
) -> dict[str, Any]:
    """A petition registration built from the ledger entry; the caller's details win."""
    village = unit.id if unit.kind in {"village", "community"} else None
    body: dict[str, Any] = {
        "channel": "visit",
        "category": "claim",
        "received_on": today.isoformat(),
        "subject": f"{DisputeType(hazard.dispute_type).label()}：{hazard.summary}"[:200],
        "request": hazard.summary,
        "facts": f"排查台账 {hazard.ledger_no}：{hazard.summary}",
        "petitioners": [{"name": n} for n in _party_names(hazard.parties)],
        "village_id": village,
    }
    body.update({k: v for k, v in details.items() if v is not None and k != "note"})
    return body


def _key_person_body(hazard: Hazard, unit: Unit, details: Mapping[str, Any]) -> dict[str, Any]:
    """A key-person registration built from the ledger entry; the caller's details win."""
    body: dict[str, Any] = {
        "name": _party_names(hazard.parties)[0],
        "core_demand": hazard.summary,
        "source": "screening",
        "village_id": unit.id,
    }
    body.update({k: v for k, v in details.items() if v is not None and k != "note"})
    return body


# -- case hooks -------------------------------------------------------------------------------


def _round_of(uow: UnitOfWork, case_row: Case) -> ScreeningRound:
    rnd = uow.session.scalars(
        select(ScreeningRound).where(ScreeningRound.case_id == case_row.id)
    ).first()
    if rnd is None:
        raise ConflictError("this case has no screening round")
    return rnd


def _hazard_of(uow: UnitOfWork, case_row: Case) -> Hazard:
    hazard = uow.session.scalars(select(Hazard).where(Hazard.case_id == case_row.id)).first()
    if hazard is None:
        raise ConflictError("this case has no ledger entry")
    return hazard


def _date_field(data: Mapping[str, Any], name: str) -> date:
    value = _as_date(data.get(name))
    if value is None:
        raise ValidationError("missing date", {name: ["Missing data for required field."]})
    return value


def _count_return(
    ctx: HookContext, case: Case, counter: str, limit: int, field: str, what_en: str, what_zh: str
) -> dict[str, Any]:
    """One more return on `counter` in the task data; 422 on `field` past `limit`."""
    done = int(case.data.get(counter) or 0)
    if done >= limit:
        english = ctx.actor.language.startswith("en")
        message = (
            f"{what_en} was already sent back {limit} times (the limit): too many returns; "
            "escalate to the street for coordination."
            if english
            else f"{what_zh}已退回{limit}次，退回次数已达上限，请报街道协调。"
        )
        raise ValidationError("too many returns", {field: [message]})
    return {counter: done + 1}


def _require_reason(data: Mapping[str, Any], flag: str, reason: str) -> None:
    if not data.get(flag) and not str(data.get(reason) or "").strip():
        raise ValidationError(
            "a reason is required", {reason: ["Give the reason for sending it back."]}
        )


class ScreeningRoundHooks:
    """Rules of `screening_round`: zero-report consistency, business dates, round status."""

    def before_complete(
        self, ctx: HookContext, case: Case, task: Task, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Zero report iff no hazards were entered this round (422 both ways); dates in order."""
        uow = ctx.uow
        rnd = _round_of(uow, case)
        today = _local(ctx.now)
        if task.bpmn_id == "submit_report":
            found = (
                uow.session.scalar(
                    select(func.count()).select_from(Hazard).where(Hazard.round_id == rnd.id)
                )
                or 0
            )
            if data.get("zero_report") and found:
                raise ValidationError(
                    "a zero report cannot list hazards",
                    {
                        "zero_report": [
                            f"{found} hazard(s) were entered this month: a zero report is "
                            "not possible."
                        ]
                    },
                )
            if not data.get("zero_report") and not found:
                raise ValidationError(
                    "no hazards entered",
                    {
                        "zero_report": [
                            "No hazards were entered this month: enter them first, or submit "
                            "a zero report."
                        ]
                    },
                )
            _check_business_date(
                _date_field(data, "reported_on"),
                today=today,
                not_before=parse_month(rnd.month),
                field="reported_on",
            )
        elif task.bpmn_id == "sign_report":
            _check_business_date(
                _date_field(data, "signed_on"),
                today=today,
                not_before=rnd.reported_on,
                field="signed_on",
            )
            _require_reason(data, "approve", "sign_comment")
            if not data.get("approve"):
                return _count_return(
                    ctx,
                    case,
                    "sign_returns",
                    MAX_SIGN_RETURNS,
                    "approve",
                    "This report",
                    "本月报告",
                )
        return {}

    def after_complete(
        self, ctx: HookContext, case: Case, task: Task, data: Mapping[str, Any], snapshot: Snapshot
    ) -> None:
        """Record the report or the signature on the round row."""
        rnd = _round_of(ctx.uow, case)
        if task.bpmn_id == "submit_report":
            rnd.status = "submitted"
            rnd.zero_report = bool(data.get("zero_report"))
            rnd.reported_on = _as_date(data.get("reported_on"))
            rnd.submitted_by_id = ctx.actor.user_id
            rnd.rejection_reason = None
        elif task.bpmn_id == "sign_report":
            if data.get("approve"):
                rnd.status = "signed"
                rnd.signed_on = _as_date(data.get("signed_on"))
                rnd.signed_by_id = ctx.actor.user_id
            else:
                rnd.status = "open"
                rnd.rejection_reason = str(data.get("sign_comment") or "")

    def task_due(self, ctx: HookContext, case: Case, task: HumanTask) -> datetime | None:
        """The round's due day (camunda:dueDate="due_on"), end of the local day."""
        return task.due_at


class HazardHooks:
    """Rules of `hazard`: closure evidence, agreements, no self-approval, sign-off dates."""

    def before_complete(
        self, ctx: HookContext, case: Case, task: Task, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Check evidence and dates; refuse an approver who requested the closure."""
        hazard = _hazard_of(ctx.uow, case)
        today = _local(ctx.now)
        if task.bpmn_id == "resolve":
            _check_business_date(
                _date_field(data, "resolved_on"),
                today=today,
                not_before=hazard.found_on,
                field="resolved_on",
            )
            needs_agreement = (
                data.get("resolution") == "agreement" and hazard.method == "people_mediation"
            )
            if needs_agreement or data.get("agreement_no"):
                errors = {
                    name: ["A people's mediation agreement needs this."]
                    for name in ("agreement_no", "agreement_signed_on", "agreement_parties")
                    if not str(data.get(name) or "").strip()
                }
                if errors:
                    raise ValidationError("the mediation agreement is incomplete", errors)
                _check_business_date(
                    _date_field(data, "agreement_signed_on"),
                    today=today,
                    not_before=hazard.found_on,
                    field="agreement_signed_on",
                )
        elif task.bpmn_id == "confirm_closure":
            _check_business_date(
                _date_field(data, "confirmed_on"),
                today=today,
                not_before=hazard.resolved_on,
                field="confirmed_on",
            )
            _require_reason(data, "confirm", "confirm_comment")
            if not data.get("confirm"):
                return self._count_rejection(ctx, case, "confirm")
        elif task.bpmn_id == "approve_closure":
            if ctx.actor.user_id == hazard.closure_requested_by_id:
                raise PermissionDeniedError(
                    "the person who requested the closure cannot approve it (销号不得自批)"
                )
            _check_business_date(
                _date_field(data, "signed_off_on"),
                today=today,
                not_before=hazard.confirmed_on,
                field="signed_off_on",
            )
            _require_reason(data, "approve", "approve_comment")
            if not data.get("approve"):
                return self._count_rejection(ctx, case, "approve")
        return {}

    @staticmethod
    def _count_rejection(ctx: HookContext, case: Case, field: str) -> dict[str, Any]:
        return _count_return(
            ctx,
            case,
            "closure_rejections",
            MAX_CLOSURE_REJECTIONS,
            field,
            "This closure request",
            "销号申请",
        )

    def after_complete(
        self, ctx: HookContext, case: Case, task: Task, data: Mapping[str, Any], snapshot: Snapshot
    ) -> None:
        """Move the ledger entry along; agreements start the judicial-confirmation window."""
        uow = ctx.uow
        hazard = _hazard_of(uow, case)
        if task.bpmn_id == "resolve":
            hazard.status = "pending_confirmation"
            hazard.resolution = str(data.get("resolution"))
            hazard.evidence_refs = str(data.get("evidence_refs") or "")
            hazard.resolved_on = _as_date(data.get("resolved_on"))
            hazard.closure_requested_by_id = ctx.actor.user_id
            hazard.rejection_reason = None
            progress = str(data.get("progress") or "").strip()
            if progress:
                hazard.progress = progress
                uow.session.add(
                    HazardNote(
                        hazard_id=hazard.id,
                        noted_on=hazard.resolved_on or _local(ctx.now),
                        text=progress,
                        author_id=ctx.actor.user_id,
                        created_at=ctx.now,
                    )
                )
            if data.get("agreement_no"):
                self._record_agreement(ctx, case, hazard, data)
        elif task.bpmn_id == "confirm_closure":
            if data.get("confirm"):
                hazard.status = "pending_approval"
                hazard.confirmed_on = _as_date(data.get("confirmed_on"))
                hazard.confirmed_by_id = ctx.actor.user_id
            else:
                hazard.status = "open"
                hazard.rejection_reason = str(data.get("confirm_comment") or "")
        elif task.bpmn_id == "approve_closure":
            if data.get("approve"):
                hazard.status = "signed_off"
                hazard.signed_off_on = _as_date(data.get("signed_off_on"))
                hazard.signed_off_by_id = ctx.actor.user_id
                if hazard.signed_off_on is not None:
                    meet_deadline(uow, case, f"hazard_{hazard.risk_level}", hazard.signed_off_on)
            else:
                hazard.status = "open"
                hazard.confirmed_on = None
                hazard.rejection_reason = str(data.get("approve_comment") or "")

    @staticmethod
    def _record_agreement(
        ctx: HookContext, case: Case, hazard: Hazard, data: Mapping[str, Any]
    ) -> None:
        uow = ctx.uow
        signed_on = _date_field(data, "agreement_signed_on")
        rule = MEDIATION_RULES["judicial_confirmation"]
        # 人民调解法 Art. 33: judicial confirmation may be applied for within 30 days.
        due = compute_due(rule, signed_on, load_calendar(uow))
        number = str(data.get("agreement_no")).strip()
        agreement = uow.session.scalars(
            select(MediationAgreement).where(
                MediationAgreement.hazard_id == hazard.id,
                MediationAgreement.agreement_no == number,
            )
        ).first()
        if agreement is None:
            agreement = MediationAgreement(
                hazard_id=hazard.id, agreement_no=number, created_at=ctx.now
            )
            uow.session.add(agreement)
        agreement.signed_on = signed_on
        agreement.parties = str(data.get("agreement_parties") or "")
        agreement.judicial_confirmation_due = due.due_on
        set_deadline(
            uow, case, rule.kind, due, source=rule.source, unit_id=hazard.responsible_unit_id
        )

    def task_due(self, ctx: HookContext, case: Case, task: HumanTask) -> datetime | None:
        """`resolve` is due on the hazard's time limit (camunda:dueDate="time_limit_on")."""
        return task.due_at


# -- figures ----------------------------------------------------------------------------------


def _count_if(*conditions: Any) -> Any:
    """SQL: how many rows of the group meet all the conditions (0, never NULL)."""
    return func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)


def screening_figures(uow: UnitOfWork, period: Period) -> dict[str, Figure]:
    """KPIs of DOMAIN.md §3 for screening, by SQL aggregation over the unit's subtree."""
    units = select(Unit.id).where(Unit.path.startswith(period.unit_path))
    session = uow.session
    due, on_time, zero = session.execute(
        select(
            func.count(),
            _count_if(
                ScreeningRound.signed_on.is_not(None),
                ScreeningRound.signed_on <= ScreeningRound.due_on,
            ),
            _count_if(
                ScreeningRound.zero_report.is_(True),
                ScreeningRound.status.in_(["submitted", "signed"]),
            ),
        ).where(
            ScreeningRound.unit_id.in_(units),
            ScreeningRound.due_on >= period.date_from,
            ScreeningRound.due_on <= period.date_to,
        )
    ).one()
    found, signed_off = session.execute(
        select(
            func.count(),
            _count_if(Hazard.signed_off_on.is_not(None), Hazard.signed_off_on <= period.date_to),
        ).where(
            Hazard.unit_id.in_(units),
            Hazard.found_on >= period.date_from,
            Hazard.found_on <= period.date_to,
        )
    ).one()
    overdue = session.scalar(
        select(func.count())
        .select_from(Hazard)
        .where(
            Hazard.unit_id.in_(units),
            Hazard.found_on <= period.date_to,
            Hazard.time_limit_on < period.date_to,
            or_(Hazard.signed_off_on.is_(None), Hazard.signed_off_on > period.date_to),
        )
    )
    return {
        "screening_report_timeliness": Ratio(int(on_time), int(due)),
        "zero_reports": int(zero),
        "hazards_found": int(found),
        "hazard_signoff_rate": Ratio(int(signed_off), int(found)),
        "hazards_overdue": int(overdue or 0),
    }


# -- registration -----------------------------------------------------------------------------


def register_case_types(registry: CaseTypeRegistry) -> None:
    """Register `screening_round` and `hazard` with their hooks, and the KPI section."""
    registry.register(
        CaseType(
            name=ROUND_TYPE,
            process_id=ROUND_TYPE,
            prefix=ROUND_PREFIX,
            label_zh="矛盾纠纷排查",
            label_en="Dispute screening round",
            hooks=ScreeningRoundHooks(),
        )
    )
    registry.register(
        CaseType(
            name=HAZARD_TYPE,
            process_id=HAZARD_TYPE,
            prefix=HAZARD_PREFIX,
            label_zh="矛盾纠纷隐患",
            label_en="Dispute hazard",
            hooks=HazardHooks(),
        )
    )
    register_section("screening", screening_figures)
