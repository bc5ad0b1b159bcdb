"""Key-petitioner stabilization: one person, one special team, one plan (一人一专班、一人一对策).

The person's file runs process `stabilization` (form_team -> assess -> propose_closure ->
approve_closure -> verify_closure, rejections back with their reason). Periodic work never
loops inside that instance (SpiffWorkflow's tree would grow without end): the scheduler opens
a new short child instance for each contact cycle (`key_person_contact`), each monthly
reassessment (`key_person_reassess`) and each sensitive-period day (`key_person_daily_report`).
The file is visible only to its team, the petition office (intake) and supervisors (DESIGN.md
§6); anyone else gets 404.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ
from engine.domain.deadlines import RuleViolation, check_business_date
from engine.domain.enums import ContactMethod, KeyPersonSource, RiskLevel, RiskSignal
from engine.domain.kpi import Ratio
from engine.domain.text import valid_id_number, valid_phone
from engine.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from engine.persistence.db import UnitOfWork, conflicts_as_409
from engine.persistence.models import (
    Case,
    JobRun,
    KeyPerson,
    KeyPersonClosure,
    KeyPersonContact,
    KeyPersonDailyReport,
    KeyPersonMember,
    KeyPersonPetition,
    KeyPersonRiskEntry,
    RoleAssignment,
    Task,
    Unit,
    User,
)
from engine.services.access import SYSTEM, Actor, unit_scope
from engine.services.audit import record_case_event
from engine.services.case_types import CaseType, CaseTypeRegistry, HookContext
from engine.services.cases import apply_snapshot, start_case, task_summary
from engine.services.notify import enqueue
from engine.services.reports import Figure, Period
from engine.services.settings import get_setting
from engine.workflow import HumanTask, Snapshot

PROCESS = "stabilization"
CONTACT_PROCESS = "key_person_contact"
REASSESS_PROCESS = "key_person_reassess"
DAILY_PROCESS = "key_person_daily_report"
CHILD_TYPES = (CONTACT_PROCESS, REASSESS_PROCESS, DAILY_PROCESS)

# A file is under control (contacts, reassessments, daily reports run) from its assessment
# until it is signed off; a closure in progress does not stop the contacts.
CONTROLLED = ("under_control", "closure_proposed", "closure_approved")
STATUSES = ("forming_team", "assessing", *CONTROLLED, "signed_off")
STATUS_LABELS = {
    "forming_team": "组建专班",
    "assessing": "研判评估",
    "under_control": "稳控中",
    "closure_proposed": "销号申请中",
    "closure_approved": "待信访办核查",
    "signed_off": "已销号",
}
# The assess form carries this many answer slots per checklist (the lists are settings).
CHECKLIST_SLOTS = 6
REGISTER_ROLES = ("intake", "leader", "supervisor")
REOPEN_ROLES = ("intake", "supervisor")
CANDIDATE_MIN_PETITIONS = 3  # issue 4: 3 or more petitions within 12 months
CANDIDATE_WINDOW_DAYS = 365
RECENT_ROWS = 50


# -- small helpers ----------------------------------------------------------------------------


def _today(now: datetime) -> date:
    return now.astimezone(LOCAL_TZ).date()


def _as_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _required_date(data: Mapping[str, Any], name: str) -> date:
    value = _as_date(data.get(name))
    if value is None:
        raise ValidationError("missing date", {name: ["Missing data for required field."]})
    return value


def _check_date(value: date, *, today: date, not_before: date | None, field: str) -> None:
    try:
        check_business_date(value, today=today, not_before=not_before, field=field)
    except RuleViolation as exc:
        raise ValidationError(exc.message_en, {field: [exc.message_en, exc.message_zh]}) from exc


def _insert(uow: UnitOfWork) -> Any:
    return pg_insert if uow.dialect == "postgresql" else sqlite_insert


def _first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _cadence(uow: UnitOfWork, level: str | None) -> int:
    """Contact cadence in days for a risk level (setting contact_cadence_days, DOMAIN.md §6)."""
    cadence = get_setting(uow, "contact_cadence_days")
    try:
        days = int(cadence.get(level or "low", 30))
    except (AttributeError, TypeError, ValueError):
        days = 30
    return max(1, days)


def _pii(services: Services) -> Any:
    from engine.services.pii import cipher_for

    return cipher_for(services.settings)


def _url(services: Services, case_id: int) -> str:
    return f"{services.settings.base_url.rstrip('/')}/cases/{case_id}"


def _street_of(uow: UnitOfWork, unit: Unit) -> Unit:
    """The street (乡镇/街道) above a village: it owns the file, its leaders form the team."""
    ids = [int(p) for p in unit.path.strip("/").split("/") if p]
    rows = uow.session.scalars(select(Unit).where(Unit.id.in_(ids), Unit.kind == "street")).all()
    if rows:
        return max(rows, key=lambda u: len(u.path))
    parent = uow.session.get(Unit, unit.parent_id) if unit.parent_id else None
    return parent or unit


# -- access: the team, the petition office and supervisors only -------------------------------


def visible_clause(actor: Actor) -> ColumnElement[bool]:
    """SQL filter: files the actor may see (team, intake and supervisors in scope)."""
    if actor is SYSTEM:
        return true()
    conditions: list[ColumnElement[bool]] = [
        unit_scope(actor, KeyPerson.unit_id, ["intake", "supervisor"]),
        KeyPerson.lead_leader_id == actor.user_id,
        KeyPerson.id.in_(
            select(KeyPersonMember.key_person_id).where(
                KeyPersonMember.user_id == actor.user_id, KeyPersonMember.active.is_(True)
            )
        ),
    ]
    # The responsible unit is part of the team: its own handlers (not every ancestor's).
    handler_units = sorted({g.unit_id for g in actor.grants if g.role == "handler" and g.unit_id})
    if handler_units:
        conditions.append(KeyPerson.responsible_unit_id.in_(handler_units))
    # Whoever holds an open step of the file on exactly that unit (the street leader forming
    # the team, the petition office verifying a closure) sees what they must decide on.
    exact = [
        and_(Task.role == g.role, Task.unit_id == g.unit_id) for g in actor.grants if g.unit_id
    ]
    conditions.append(
        KeyPerson.case_id.in_(
            select(Task.case_id).where(
                Task.status == "open", or_(Task.assignee_id == actor.user_id, *exact)
            )
        )
    )
    return or_(*conditions)


def _load_visible(uow: UnitOfWork, actor: Actor, key_person_id: int) -> KeyPerson:
    row = uow.session.scalars(
        select(KeyPerson).where(KeyPerson.id == key_person_id, visible_clause(actor))
    ).first()
    if row is None:
        raise NotFoundError("key person not found")
    return row


def _person_of_case(uow: UnitOfWork, case: Case) -> KeyPerson:
    if case.case_type == PROCESS:
        row = uow.session.scalars(select(KeyPerson).where(KeyPerson.case_id == case.id)).first()
    else:
        row = uow.session.get(KeyPerson, int(case.data.get("key_person_id") or 0))
    if row is None:
        raise NotFoundError("key person of this case not found")
    return row


# -- registering a person ---------------------------------------------------------------------


def _text(
    body: Mapping[str, Any],
    name: str,
    errors: dict[str, list[str]],
    *,
    required: bool,
    max_len: int,
) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors[name] = ["Missing data for required field."]
        return None
    if not isinstance(value, str):
        errors[name] = ["Not a valid string."]
        return None
    value = value.strip()
    if len(value) > max_len:
        errors[name] = [f"Longer than maximum length {max_len}."]
        return None
    return value


def register_key_person(
    services: Services, actor: Actor, body: Mapping[str, Any]
) -> dict[str, Any]:
    """POST /key-persons: open a person's file and its `stabilization` case (form_team next)."""
    now = services.clock.now()
    today = _today(now)
    errors: dict[str, list[str]] = {}
    name = _text(body, "name", errors, required=True, max_len=100)
    core_demand = _text(body, "core_demand", errors, required=True, max_len=4000)
    assigned_ref = _text(body, "assigned_ref", errors, required=False, max_len=100)
    id_number = _text(body, "id_number", errors, required=False, max_len=40)
    phone = _text(body, "phone", errors, required=False, max_len=40)
    source = body.get("source")
    if source not in {s.value for s in KeyPersonSource}:
        errors["source"] = [f"Must be one of: {', '.join(s.value for s in KeyPersonSource)}."]
    if id_number is not None and not valid_id_number(id_number):
        errors["id_number"] = ["Not a valid resident ID number."]
    if phone is not None and not valid_phone(phone):
        errors["phone"] = ["Not a valid phone number."]
    petition_ids = body.get("petition_ids") or []
    if not isinstance(petition_ids, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) for p in petition_ids
    ):
        errors["petition_ids"] = ["Must be a list of petition ids."]
        petition_ids = []
    with services.uow() as uow, conflicts_as_409():
        village = None
        village_id = body.get("village_id")
        if isinstance(village_id, int) and not isinstance(village_id, bool):
            village = uow.session.get(Unit, village_id)
        if village is None or village.kind not in {"village", "community"}:
            errors["village_id"] = ["Unknown village or community."]
        petitions = _checked_petitions(uow, actor, sorted(set(petition_ids)), errors)
        if errors:
            raise ValidationError("the key person has errors", errors)
        assert village is not None
        assert name is not None
        assert core_demand is not None
        if not actor.covers(village.path, REGISTER_ROLES):
            raise PermissionDeniedError("only the petition office, leaders or supervisors register")
        cipher = _pii(services)
        from engine.services.pii import protect_id_number, protect_phone

        sealed_id = protect_id_number(cipher, id_number) if id_number else None
        sealed_phone = protect_phone(cipher, phone) if phone else None
        if sealed_id is not None:
            existing = uow.session.scalars(
                select(KeyPerson).where(
                    KeyPerson.id_number_hash == sealed_id.hash, KeyPerson.status != "signed_off"
                )
            ).first()
            if existing is not None:
                raise ConflictError("this person already has an open key-person file")
        street = _street_of(uow, village)
        ct = services.case_types.get(PROCESS)
        case, _snap = start_case(
            services,
            uow,
            actor,
            ct,
            unit_id=street.id,
            data={
                "unit_id": street.id,
                "village_id": village.id,
                "person_name": name,
                "reopened": False,
                "five_clear_items": list(get_setting(uow, "five_clear_items")),
                "five_redo_items": list(get_setting(uow, "five_redo_items")),
            },
            title=f"{name}（{village.name}）",
            now=now,
        )
        person = KeyPerson(
            case_id=case.id,
            unit_id=street.id,
            village_id=village.id,
            name=name,
            id_number_enc=sealed_id.enc if sealed_id else None,
            id_number_hash=sealed_id.hash if sealed_id else None,
            id_number_masked=sealed_id.masked if sealed_id else None,
            phone_enc=sealed_phone.enc if sealed_phone else None,
            phone_hash=sealed_phone.hash if sealed_phone else None,
            phone_masked=sealed_phone.masked if sealed_phone else None,
            source=str(source),
            assigned_ref=assigned_ref,
            core_demand=core_demand,
            status="forming_team",
            escalations_province=0,
            escalations_capital=0,
            registered_on=today,
            contact_cycles=0,
            reopened_count=0,
            created_by_id=actor.user_id or None,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(person)
        uow.session.flush()
        for pid in petitions:
            uow.session.add(
                KeyPersonPetition(key_person_id=person.id, petition_id=pid, linked_at=now)
            )
        record_case_event(
            uow,
            case,
            "key_person.registered",
            actor_id=actor.user_id,
            at=now,
            detail={"key_person_id": person.id, "source": source, "petitions": petitions},
        )
        uow.commit()
        return person_view(services, uow, person, today=today)


def _checked_petitions(
    uow: UnitOfWork, actor: Actor, ids: Sequence[int], errors: dict[str, list[str]]
) -> list[int]:
    """Petitions the caller may link: they must exist and lie in the caller's scope."""
    if not ids:
        return []
    from engine.persistence.models.petitions import Petition

    found = set(
        uow.session.scalars(
            select(Petition.case_id).where(
                Petition.case_id.in_(ids), unit_scope(actor, Petition.unit_id)
            )
        )
    )
    missing = [i for i in ids if i not in found]
    if missing:
        errors["petition_ids"] = [f"Unknown petition {i}." for i in missing]
    return [i for i in ids if i in found]


# -- candidates from repeat-petition history --------------------------------------------------


def propose_candidates(services: Services, actor: Actor, *, limit: int = 100) -> dict[str, Any]:
    """People with 3+ petitions in 12 months or any re-review, who have no open file yet."""
    from engine.persistence.models.petitions import Petition, Petitioner, PetitionReview

    if actor.paths(REGISTER_ROLES) == []:
        raise PermissionDeniedError("only the petition office, leaders or supervisors")
    today = _today(services.clock.now())
    since = today - timedelta(days=CANDIDATE_WINDOW_DAYS)
    with services.uow() as uow:
        who = func.coalesce(Petitioner.id_number_hash, Petitioner.phone_hash)
        scoped = unit_scope(actor, Petition.unit_id, REGISTER_ROLES)
        recent = func.count(func.distinct(Petitioner.petition_id)).filter(
            Petition.received_on >= since
        )
        rereviews = (
            select(func.count())
            .select_from(PetitionReview)
            .where(PetitionReview.petition_id == Petitioner.petition_id)
            .where(PetitionReview.level == "re_review")
            .correlate(Petitioner)
            .scalar_subquery()
        )
        has_rereview = func.max(rereviews)
        open_files = select(KeyPerson.id_number_hash).where(
            KeyPerson.status != "signed_off", KeyPerson.id_number_hash.is_not(None)
        )
        open_phones = select(KeyPerson.phone_hash).where(
            KeyPerson.status != "signed_off", KeyPerson.phone_hash.is_not(None)
        )
        groups = uow.session.execute(
            select(who.label("who"), recent.label("recent"), has_rereview.label("rr"))
            .select_from(Petitioner)
            .join(Petition, Petition.case_id == Petitioner.petition_id)
            .where(who.is_not(None), scoped)
            .where(
                or_(
                    Petitioner.id_number_hash.is_(None),
                    Petitioner.id_number_hash.not_in(open_files),
                )
            )
            .where(or_(Petitioner.phone_hash.is_(None), Petitioner.phone_hash.not_in(open_phones)))
            .group_by(who)
            .having(or_(recent >= CANDIDATE_MIN_PETITIONS, has_rereview > 0))
            .order_by(recent.desc())
            .limit(limit)
        ).all()
        items = []
        for key, recent_n, rr in groups:
            rows = uow.session.execute(
                select(Petitioner, Petition)
                .join(Petition, Petition.case_id == Petitioner.petition_id)
                .where(who == key, scoped)
                .order_by(Petition.received_on.desc())
            ).all()
            first_p, first_pet = rows[0]
            reasons = []
            if int(recent_n or 0) >= CANDIDATE_MIN_PETITIONS:
                reasons.append("repeat_petitions")
            if int(rr or 0) > 0:
                reasons.append("re_review")
            items.append(
                {
                    "name": first_p.name,
                    "id_number_masked": first_p.id_number_masked,
                    "phone_masked": first_p.phone_masked,
                    "village_id": first_pet.village_id,
                    "petitions_in_12_months": int(recent_n or 0),
                    "has_re_review": int(rr or 0) > 0,
                    "reasons": reasons,
                    "petition_ids": sorted({p.case_id for _pp, p in rows}),
                    "latest_subject": first_pet.subject,
                    "suggested_source": "repeat_petitions",
                }
            )
        return {"items": items, "total": len(items)}


# -- reading files ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPersonFilter:
    """Filters of GET /key-persons."""

    risk_level: str | None = None
    village_id: int | None = None
    status: str | None = None
    overdue_contact: bool | None = None
    page: int = 1
    per_page: int = 50


def key_person_query(actor: Actor, flt: KeyPersonFilter) -> Any:
    """The list's SELECT: visible files with the filters applied (also the ledger's rows)."""
    stmt = select(KeyPerson).where(visible_clause(actor))
    if flt.risk_level:
        stmt = stmt.where(KeyPerson.risk_level == flt.risk_level)
    if flt.village_id is not None:
        stmt = stmt.where(KeyPerson.village_id == flt.village_id)
    if flt.status:
        stmt = stmt.where(KeyPerson.status == flt.status)
    if flt.overdue_contact is True:
        stmt = stmt.where(KeyPerson.contact_overdue_since.is_not(None))
    elif flt.overdue_contact is False:
        stmt = stmt.where(KeyPerson.contact_overdue_since.is_(None))
    return stmt


def list_key_persons(services: Services, actor: Actor, flt: KeyPersonFilter) -> dict[str, Any]:
    """Files the caller may see, filtered by risk, village, status and overdue contact."""
    per_page = max(1, min(flt.per_page, 200))
    page = max(1, flt.page)
    today = _today(services.clock.now())
    with services.uow() as uow:
        stmt = key_person_query(actor, flt)
        total = uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = uow.session.scalars(
            stmt.order_by(KeyPerson.id.desc()).limit(per_page).offset((page - 1) * per_page)
        ).all()
        names = unit_names(
            uow, {r.village_id for r in rows} | {r.responsible_unit_id or 0 for r in rows}
        )
        leaders = user_names(uow, {r.lead_leader_id or 0 for r in rows})
        return {
            "items": [summary_view(r, names, leaders, today) for r in rows],
            "total": total,
            "page": page,
            "per_page": per_page,
        }


def unit_names(uow: UnitOfWork, ids: set[int]) -> dict[int, str]:
    """Unit names by id."""
    ids.discard(0)
    if not ids:
        return {}
    rows = uow.session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(ids)))
    return {int(r[0]): str(r[1]) for r in rows}


def user_names(uow: UnitOfWork, ids: set[int]) -> dict[int, str]:
    """User display names by id."""
    ids.discard(0)
    if not ids:
        return {}
    rows = uow.session.execute(select(User.id, User.display_name).where(User.id.in_(ids)))
    return {int(r[0]): str(r[1]) for r in rows}


def summary_view(
    kp: KeyPerson, units: Mapping[int, str], users: Mapping[int, str], today: date
) -> dict[str, Any]:
    """A file as lists show it (personal numbers masked)."""
    return {
        "id": kp.id,
        "case_id": kp.case_id,
        "name": kp.name,
        "id_number_masked": kp.id_number_masked,
        "phone_masked": kp.phone_masked,
        "village_id": kp.village_id,
        "village_name": units.get(kp.village_id),
        "source": kp.source,
        "assigned_ref": kp.assigned_ref,
        "core_demand": kp.core_demand,
        "status": kp.status,
        "status_label": STATUS_LABELS.get(kp.status, kp.status),
        "risk_level": kp.risk_level,
        "risk_label": RiskLevel(kp.risk_level).label() if kp.risk_level else None,
        "cadence_days": kp.cadence_days,
        "lead_leader_id": kp.lead_leader_id,
        "lead_leader_name": users.get(kp.lead_leader_id or 0),
        "responsible_unit_id": kp.responsible_unit_id,
        "responsible_unit_name": units.get(kp.responsible_unit_id or 0),
        "registered_on": kp.registered_on,
        "last_contact_on": kp.last_contact_on,
        "next_contact_on": kp.next_contact_on,
        "contact_overdue": kp.contact_overdue_since is not None,
        "contact_overdue_since": kp.contact_overdue_since,
        "signed_off_on": kp.signed_off_on,
    }


def person_view(
    services: Services, uow: UnitOfWork, kp: KeyPerson, *, today: date
) -> dict[str, Any]:
    """The whole file: team, plan, risk history, contacts, petitions, closures and status."""
    session = uow.session
    members = session.scalars(
        select(KeyPersonMember)
        .where(KeyPersonMember.key_person_id == kp.id, KeyPersonMember.active.is_(True))
        .order_by(KeyPersonMember.id)
    ).all()
    risks = session.scalars(
        select(KeyPersonRiskEntry)
        .where(KeyPersonRiskEntry.key_person_id == kp.id)
        .order_by(KeyPersonRiskEntry.assessed_on.desc(), KeyPersonRiskEntry.id.desc())
        .limit(RECENT_ROWS)
    ).all()
    contacts = session.scalars(
        select(KeyPersonContact)
        .where(KeyPersonContact.key_person_id == kp.id)
        .order_by(KeyPersonContact.cycle_no.desc())
        .limit(RECENT_ROWS)
    ).all()
    reports = session.scalars(
        select(KeyPersonDailyReport)
        .where(KeyPersonDailyReport.key_person_id == kp.id)
        .order_by(KeyPersonDailyReport.report_on.desc())
        .limit(RECENT_ROWS)
    ).all()
    closures = session.scalars(
        select(KeyPersonClosure)
        .where(KeyPersonClosure.key_person_id == kp.id)
        .order_by(KeyPersonClosure.id)
    ).all()
    petition_ids = list(
        session.scalars(
            select(KeyPersonPetition.petition_id)
            .where(KeyPersonPetition.key_person_id == kp.id)
            .order_by(KeyPersonPetition.petition_id)
        )
    )
    petitions = _petition_rows(uow, petition_ids)
    user_ids = {m.user_id or 0 for m in members} | {kp.lead_leader_id or 0}
    user_ids |= {c.recorded_by_id or 0 for c in contacts} | {r.actor_id or 0 for r in risks}
    for cl in closures:
        user_ids |= {cl.proposed_by_id or 0, cl.approved_by_id or 0, cl.verified_by_id or 0}
        user_ids |= {cl.rejected_by_id or 0, cl.reopened_by_id or 0}
    users = user_names(uow, user_ids)
    units = unit_names(uow, {kp.village_id, kp.responsible_unit_id or 0, kp.unit_id})
    total_contacts = session.scalar(
        select(func.count()).where(KeyPersonContact.key_person_id == kp.id)
    )
    open_tasks = session.scalars(
        select(Task)
        .join(Case, Case.id == Task.case_id)
        .where(
            Task.status == "open",
            or_(Case.id == kp.case_id, Case.parent_case_id == kp.case_id),
        )
        .order_by(Task.due_at.is_(None), Task.due_at, Task.id)
    ).all()
    view = summary_view(kp, units, users, today)
    view.update(
        unit_id=kp.unit_id,
        unit_name=units.get(kp.unit_id),
        team={
            "lead_leader_id": kp.lead_leader_id,
            "lead_leader_name": users.get(kp.lead_leader_id or 0),
            "responsible_unit_id": kp.responsible_unit_id,
            "responsible_unit_name": units.get(kp.responsible_unit_id or 0),
            "approved_on": kp.team_approved_on,
            "members": [
                {
                    "user_id": m.user_id,
                    "name": users.get(m.user_id or 0, m.name),
                    "role": m.role,
                }
                for m in members
            ],
        },
        plan={
            "plan": kp.plan,
            "plan_due_on": kp.plan_due_on,
            "assessment": kp.assessment,
            "measures": kp.measures,
            "sensitive_plan": kp.sensitive_plan,
        },
        escalations={"province": kp.escalations_province, "capital": kp.escalations_capital},
        risk_history=[
            {
                "id": r.id,
                "kind": r.kind,
                "assessed_on": r.assessed_on,
                "risk_level": r.risk_level,
                "previous_level": r.previous_level,
                "assessment": r.assessment,
                "measures": r.measures,
                "checklists": r.checklists,
                "by": users.get(r.actor_id or 0),
            }
            for r in risks
        ],
        contacts=[
            {
                "id": c.id,
                "cycle_no": c.cycle_no,
                "opened_on": c.opened_on,
                "due_on": c.due_on,
                "state": c.state,
                "contacted_on": c.contacted_on,
                "method": c.method,
                "situation": c.situation,
                "risk_signal": c.risk_signal,
                "recorded_by": users.get(c.recorded_by_id or 0),
            }
            for c in contacts
        ],
        contacts_total=int(total_contacts or 0),
        daily_reports=[
            {
                "report_on": r.report_on,
                "period_name": r.period_name,
                "state": r.state,
                "all_calm": r.all_calm,
                "situation": r.situation,
                "risk_signal": r.risk_signal,
            }
            for r in reports
        ],
        petitions=petitions,
        closures=[
            {
                "id": cl.id,
                "status": cl.status,
                "evidence_kind": cl.evidence_kind,
                "evidence_ref": cl.evidence_ref,
                "return_visit_on": cl.return_visit_on,
                "summary": cl.summary,
                "proposed_by": users.get(cl.proposed_by_id or 0),
                "proposed_at": cl.proposed_at,
                "approved_by": users.get(cl.approved_by_id or 0),
                "approved_on": cl.approved_on,
                "verified_by": users.get(cl.verified_by_id or 0),
                "verified_on": cl.verified_on,
                "rejected_by": users.get(cl.rejected_by_id or 0),
                "rejected_step": cl.rejected_step,
                "rejection_reason": cl.rejection_reason,
                "signed_off_on": cl.signed_off_on,
                "reopened_on": cl.reopened_on,
                "reopened_by": users.get(cl.reopened_by_id or 0),
                "reopen_reason": cl.reopen_reason,
            }
            for cl in closures
        ],
        open_tasks=[task_summary(t) for t in open_tasks],
        reopened_count=kp.reopened_count,
    )
    return view


def _petition_rows(uow: UnitOfWork, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    from engine.persistence.models.petitions import Petition

    rows = uow.session.execute(
        select(Petition, Case.case_no)
        .join(Case, Case.id == Petition.case_id)
        .where(Petition.case_id.in_(ids))
        .order_by(Petition.received_on)
    ).all()
    return [
        {
            "id": p.case_id,
            "case_no": case_no,
            "received_on": p.received_on,
            "subject": p.subject,
            "status": p.status,
        }
        for p, case_no in rows
    ]


def get_key_person(
    services: Services, actor: Actor, key_person_id: int, *, reveal: bool = False
) -> dict[str, Any]:
    """GET /key-persons/{id}; `reveal` shows whole ID and phone numbers, and audits the read."""
    now = services.clock.now()
    # A reveal writes its audit event, even on GET.
    with services.uow(write=reveal) as uow, conflicts_as_409():
        kp = _load_visible(uow, actor, key_person_id)
        view = person_view(services, uow, kp, today=_today(now))
        if reveal:
            cipher = _pii(services)
            fields = []
            if kp.id_number_enc:
                view["id_number"] = cipher.decrypt(kp.id_number_enc)
                fields.append("id_number")
            if kp.phone_enc:
                view["phone"] = cipher.decrypt(kp.phone_enc)
                fields.append("phone")
            case = uow.session.get(Case, kp.case_id)
            assert case is not None
            # DESIGN.md §6: every whole read of an ID number is audited.
            record_case_event(
                uow,
                case,
                "pii.revealed",
                actor_id=actor.user_id,
                at=now,
                detail={"key_person_id": kp.id, "fields": fields},
            )
            uow.commit()
        return view


# -- reopening --------------------------------------------------------------------------------


def reopen_key_person(
    services: Services, actor: Actor, key_person_id: int, reason: str
) -> dict[str, Any]:
    """Reopen a signed-off file with a reason: a new `stabilization` case, same team."""
    now = services.clock.now()
    today = _today(now)
    reason = (reason or "").strip()
    with services.uow() as uow, conflicts_as_409():
        kp = _load_visible(uow, actor, key_person_id)
        street = uow.session.get(Unit, kp.unit_id)
        assert street is not None
        if not (actor.covers(street.path, REOPEN_ROLES) or actor.user_id == kp.lead_leader_id):
            raise PermissionDeniedError("only the petition office, supervisors or the lead leader")
        if kp.status != "signed_off":
            raise ConflictError("only a signed-off file can be reopened")
        if not reason:
            raise ValidationError("reason required", {"reason": ["A reason is required."]})
        if len(reason) > 2000:
            raise ValidationError(
                "reason too long", {"reason": ["Longer than maximum length 2000."]}
            )
        old = uow.session.get(Case, kp.case_id)
        assert old is not None
        case, _snap = start_case(
            services,
            uow,
            actor,
            services.case_types.get(PROCESS),
            unit_id=kp.unit_id,
            data={
                "unit_id": kp.unit_id,
                "village_id": kp.village_id,
                "person_name": kp.name,
                "reopened": True,
                "lead_leader_id": kp.lead_leader_id,
                "responsible_unit_id": kp.responsible_unit_id,
                "five_clear_items": list(get_setting(uow, "five_clear_items")),
                "five_redo_items": list(get_setting(uow, "five_redo_items")),
            },
            title=old.title,
            now=now,
            parent_case_id=old.id,
        )
        last = uow.session.scalars(
            select(KeyPersonClosure)
            .where(KeyPersonClosure.key_person_id == kp.id, KeyPersonClosure.status == "signed_off")
            .order_by(KeyPersonClosure.id.desc())
        ).first()
        if last is not None:
            last.status = "reopened"
            last.reopened_on = today
            last.reopened_by_id = actor.user_id
            last.reopen_reason = reason
        kp.case_id = case.id
        kp.status = "assessing"
        kp.signed_off_on = None
        kp.reopened_count += 1
        kp.updated_at = now
        for c, action in ((old, "key_person.reopened"), (case, "key_person.reopened")):
            record_case_event(
                uow,
                c,
                action,
                actor_id=actor.user_id,
                at=now,
                detail={"key_person_id": kp.id, "reason": reason, "new_case_id": case.id},
            )
        uow.commit()
        return person_view(services, uow, kp, today=today)


# -- the hooks of the four processes ----------------------------------------------------------


def _parse_members(
    uow: UnitOfWork, data: Mapping[str, Any]
) -> tuple[list[User], list[tuple[str, str]]]:
    """The team's user members (usernames or ids) and its named outside members with roles."""
    errors: dict[str, list[str]] = {}
    users: list[User] = []
    for token in re.split(r"[,，;；\s]+", str(data.get("member_user_ids") or "").strip()):
        if not token:
            continue
        user = (
            uow.session.get(User, int(token))
            if token.isdigit()
            else uow.session.scalars(select(User).where(User.username == token)).first()
        )
        if user is None or not user.active:
            errors.setdefault("member_user_ids", []).append(f"Unknown user '{token}'.")
        elif user not in users:
            users.append(user)
    others: list[tuple[str, str]] = []
    for line in str(data.get("other_members") or "").splitlines():
        line = line.strip()
        if not line:
            continue
        parts = re.split(r"[\s:：,，]+", line, maxsplit=1)
        name = parts[0][:100]
        role = (parts[1].strip() if len(parts) > 1 else "") or "成员"
        others.append((name, role[:60]))
    if errors:
        raise ValidationError("unknown team members", errors)
    return users, others


def _holds_leader_near(uow: UnitOfWork, user_id: int, street: Unit) -> bool:
    """Whether the user leads the street, a unit above it, or one of its own units."""
    paths = uow.session.scalars(
        select(Unit.path)
        .join(RoleAssignment, RoleAssignment.unit_id == Unit.id)
        .where(RoleAssignment.user_id == user_id, RoleAssignment.role == "leader")
    ).all()
    return any(street.path.startswith(p) or p.startswith(street.path) for p in paths)


def _checklist(
    data: Mapping[str, Any], prefix: str, items: Sequence[str], *, required: bool
) -> tuple[list[dict[str, str]], dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    answers: list[dict[str, str]] = []
    for i in range(1, CHECKLIST_SLOTS + 1):
        key = f"{prefix}_{i}"
        note = str(data.get(key) or "").strip()
        if i <= len(items):
            if not note and required:
                errors[key] = [f"Answer '{items[i - 1]}' with notes."]
            answers.append({"item": str(items[i - 1]), "notes": note})
        elif note:
            errors[key] = ["The checklist has no such item."]
    return answers, errors


class StabilizationHooks:
    """Domain rules around the `stabilization` process's steps."""

    def before_complete(
        self, ctx: HookContext, case: Case, task: Task, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Check each step's business rules; 422 with field messages, 403 for self-approval."""
        uow = ctx.uow
        kp = _person_of_case(uow, case)
        today = _today(ctx.now)
        if task.bpmn_id == "form_team":
            approved_on = _required_date(data, "approved_on")
            _check_date(approved_on, today=today, not_before=kp.registered_on, field="approved_on")
            street = uow.session.get(Unit, kp.unit_id)
            assert street is not None
            errors: dict[str, list[str]] = {}
            leader = uow.session.get(User, int(data["lead_leader_id"]))
            if (
                leader is None
                or not leader.active
                or not _holds_leader_near(uow, leader.id, street)
            ):
                errors["lead_leader_id"] = [
                    "Must be an active leader of this street, above or below it."
                ]
            unit = uow.session.get(Unit, int(data["responsible_unit_id"]))
            if unit is None or not unit.path.startswith(street.path):
                errors["responsible_unit_id"] = ["Must be a unit of this street."]
            if errors:
                raise ValidationError("the team has errors", errors)
            _parse_members(uow, data)
            return {}
        if task.bpmn_id == "assess":
            return _check_assessment(uow, kp, data, today)
        if task.bpmn_id == "propose_closure":
            visit = _required_date(data, "return_visit_on")
            _check_date(visit, today=today, not_before=kp.registered_on, field="return_visit_on")
            # The rejection reason is shown, never typed: keep what the rejecting step wrote.
            return {
                "last_rejection": case.data.get("last_rejection") or "",
                "closure_round": int(case.data.get("closure_round") or 0) + 1,
            }
        closure = _open_closure(uow, kp)
        if task.bpmn_id == "approve_closure":
            if closure.proposed_by_id == ctx.actor.user_id:
                raise PermissionDeniedError(
                    "the proposer of a closure cannot approve it (提出人不得自行审批)"
                )
            on = _required_date(data, "approved_on")
            _check_date(
                on,
                today=today,
                not_before=closure.proposed_at.astimezone(LOCAL_TZ).date(),
                field="approved_on",
            )
            if data.get("approve_decision") == "reject":
                reason = str(data.get("approve_reason") or "").strip()
                if not reason:
                    raise ValidationError(
                        "reason required", {"approve_reason": ["A rejection needs its reason."]}
                    )
                return {"last_rejection": f"包案领导退回：{reason}"}
            return {}
        if task.bpmn_id == "verify_closure":
            if ctx.actor.user_id in {closure.proposed_by_id, closure.approved_by_id}:
                raise PermissionDeniedError(
                    "the check must be made by someone other than the proposer and the approver"
                )
            on = _required_date(data, "verified_on")
            _check_date(on, today=today, not_before=closure.approved_on, field="verified_on")
            if data.get("verify_decision") == "reject":
                reason = str(data.get("verify_reason") or "").strip()
                if not reason:
                    raise ValidationError(
                        "reason required", {"verify_reason": ["A rejection needs its reason."]}
                    )
                return {"last_rejection": f"信访办退回：{reason}"}
            return {}
        return {}

    def after_complete(
        self, ctx: HookContext, case: Case, task: Task, data: Mapping[str, Any], snapshot: Snapshot
    ) -> None:
        """Write the step's outcome into the file, its team, risk ledger and closure records."""
        uow, now = ctx.uow, ctx.now
        kp = _person_of_case(uow, case)
        kp.updated_at = now
        if task.bpmn_id == "form_team":
            _form_team(uow, kp, data, now)
        elif task.bpmn_id == "assess":
            _record_assessment(ctx, kp, case, data, kind="assess")
        elif task.bpmn_id == "propose_closure":
            uow.session.add(
                KeyPersonClosure(
                    key_person_id=kp.id,
                    case_id=case.id,
                    status="proposed",
                    evidence_kind=str(data["evidence_kind"]),
                    evidence_ref=str(data["evidence_ref"]),
                    return_visit_on=_required_date(data, "return_visit_on"),
                    summary=str(data.get("resolution_summary") or ""),
                    proposed_by_id=ctx.actor.user_id,
                    proposed_at=now,
                )
            )
            kp.status = "closure_proposed"
        elif task.bpmn_id == "approve_closure":
            closure = _open_closure(uow, kp)
            if data.get("approve_decision") == "approve":
                closure.status = "approved"
                closure.approved_by_id = ctx.actor.user_id
                closure.approved_on = _required_date(data, "approved_on")
                kp.status = "closure_approved"
            else:
                _reject(closure, kp, ctx.actor, "approve", str(data.get("approve_reason") or ""))
        elif task.bpmn_id == "verify_closure":
            closure = _open_closure(uow, kp)
            if data.get("verify_decision") == "approve":
                on = _required_date(data, "verified_on")
                closure.status = "signed_off"
                closure.verified_by_id = ctx.actor.user_id
                closure.verified_on = on
                closure.signed_off_on = on
                _sign_off(ctx, kp, case, on)
            else:
                _reject(closure, kp, ctx.actor, "verify", str(data.get("verify_reason") or ""))

    def task_due(self, ctx: HookContext, case: Case, task: HumanTask) -> datetime | None:
        """The BPMN's own due date."""
        return task.due_at


def _check_assessment(
    uow: UnitOfWork, kp: KeyPerson, data: Mapping[str, Any], today: date
) -> dict[str, Any]:
    assessed_on = _required_date(data, "assessed_on")
    _check_date(
        assessed_on,
        today=today,
        not_before=kp.team_approved_on or kp.registered_on,
        field="assessed_on",
    )
    plan_due = _required_date(data, "plan_due_on")
    errors: dict[str, list[str]] = {}
    if plan_due < assessed_on:
        errors["plan_due_on"] = ["The plan's deadline cannot be before the assessment."]
    has_history = (
        uow.session.scalar(select(func.count()).where(KeyPersonPetition.key_person_id == kp.id))
        or 0
    ) > 0
    _a, e1 = _checklist(data, "five_clear", get_setting(uow, "five_clear_items"), required=True)
    _b, e2 = _checklist(
        data, "five_redo", get_setting(uow, "five_redo_items"), required=has_history
    )
    errors.update(e1)
    errors.update(e2)
    if errors:
        raise ValidationError("the assessment has errors", errors)
    return {}


def _form_team(uow: UnitOfWork, kp: KeyPerson, data: Mapping[str, Any], now: datetime) -> None:
    users, others = _parse_members(uow, data)
    on = _required_date(data, "approved_on")
    for old in uow.session.scalars(
        select(KeyPersonMember).where(
            KeyPersonMember.key_person_id == kp.id, KeyPersonMember.active.is_(True)
        )
    ):
        old.active = False
    kp.lead_leader_id = int(data["lead_leader_id"])
    kp.responsible_unit_id = int(data["responsible_unit_id"])
    kp.team_approved_on = on
    kp.status = "assessing"
    leader = uow.session.get(User, kp.lead_leader_id)
    rows = [(kp.lead_leader_id, leader.display_name if leader else "", "包案领导")]
    rows += [(u.id, u.display_name, "专班成员") for u in users if u.id != kp.lead_leader_id]
    for user_id, name, role in rows:
        uow.session.add(
            KeyPersonMember(
                key_person_id=kp.id, user_id=user_id, name=name, role=role, active=True, added_on=on
            )
        )
    for name, role in others:
        uow.session.add(
            KeyPersonMember(
                key_person_id=kp.id, user_id=None, name=name, role=role, active=True, added_on=on
            )
        )


def _record_assessment(
    ctx: HookContext, kp: KeyPerson, case: Case, data: Mapping[str, Any], *, kind: str
) -> None:
    """Add a dated risk-ledger entry; a new level changes the cadence from the next cycle on."""
    uow, now = ctx.uow, ctx.now
    today = _today(now)
    level = str(data["risk_level"])
    checklists: dict[str, Any] = {}
    if kind == "assess":
        checklists["five_clear"], _e = _checklist(
            data, "five_clear", get_setting(uow, "five_clear_items"), required=False
        )
        checklists["five_redo"], _e = _checklist(
            data, "five_redo", get_setting(uow, "five_redo_items"), required=False
        )
    previous = kp.risk_level
    assessed_on = _required_date(data, "assessed_on")
    uow.session.add(
        KeyPersonRiskEntry(
            key_person_id=kp.id,
            case_id=case.id,
            kind=kind,
            assessed_on=assessed_on,
            risk_level=level,
            previous_level=previous,
            assessment=str(data.get("assessment") or ""),
            measures=str(data.get("measures") or ""),
            checklists=checklists,
            actor_id=ctx.actor.user_id or None,
            created_at=now,
        )
    )
    kp.risk_level = level
    # The cycle already open keeps its length; the next one opens with this cadence.
    kp.cadence_days = _cadence(uow, level)
    kp.assessment = str(data.get("assessment") or "")
    if data.get("measures"):
        kp.measures = str(data["measures"])
    kp.last_assessed_on = assessed_on
    if kind == "assess":
        kp.plan = str(data.get("plan") or "")
        kp.plan_due_on = _as_date(data.get("plan_due_on"))
        kp.sensitive_plan = str(data.get("sensitive_plan") or "") or None
        kp.escalations_province = int(data.get("escalations_province") or 0)
        kp.escalations_capital = int(data.get("escalations_capital") or 0)
        if kp.status == "assessing":
            kp.status = "under_control"
        if kp.next_contact_on is None:
            kp.next_contact_on = today
        kp.next_reassess_on = _first_of_next_month(today)
    else:
        main = uow.session.get(Case, kp.case_id)
        if main is not None:
            record_case_event(
                uow,
                main,
                "key_person.reassessed",
                actor_id=ctx.actor.user_id,
                at=now,
                detail={"risk_level": level, "previous_level": previous, "on": assessed_on},
            )


def _open_closure(uow: UnitOfWork, kp: KeyPerson) -> KeyPersonClosure:
    row = uow.session.scalars(
        select(KeyPersonClosure)
        .where(
            KeyPersonClosure.key_person_id == kp.id,
            KeyPersonClosure.status.in_(["proposed", "approved"]),
        )
        .order_by(KeyPersonClosure.id.desc())
    ).first()
    if row is None:
        raise ConflictError("no closure proposal is open")
    return row


def _reject(closure: KeyPersonClosure, kp: KeyPerson, actor: Actor, step: str, reason: str) -> None:
    closure.status = "rejected"
    closure.rejected_by_id = actor.user_id
    closure.rejected_step = step
    closure.rejection_reason = reason
    kp.status = "under_control"


def _sign_off(ctx: HookContext, kp: KeyPerson, case: Case, on: date) -> None:
    """销号: the file closes; its open contact, reassessment and report instances are cancelled."""
    kp.status = "signed_off"
    kp.signed_off_on = on
    kp.next_contact_on = None
    kp.next_reassess_on = None
    kp.contact_overdue_since = None
    uow = ctx.uow
    children = uow.session.scalars(
        select(Case).where(Case.parent_case_id == case.id, Case.closed_at.is_(None))
    ).all()
    for child in children:
        _cancel_case(ctx, child)
    for contact in uow.session.scalars(
        select(KeyPersonContact).where(
            KeyPersonContact.key_person_id == kp.id, KeyPersonContact.state == "open"
        )
    ):
        contact.state = "cancelled"
    for report in uow.session.scalars(
        select(KeyPersonDailyReport).where(
            KeyPersonDailyReport.key_person_id == kp.id, KeyPersonDailyReport.state == "open"
        )
    ):
        report.state = "cancelled"


def _cancel_case(ctx: HookContext, case: Case) -> None:
    services = ctx.services
    deployed = services.definitions.get(ctx.uow, case.definition_id)
    snapshot = services.runtime.cancel(deployed.definition, case.state)
    record_case_event(ctx.uow, case, "case.cancelled", actor_id=ctx.actor.user_id, at=ctx.now)
    apply_snapshot(ctx, case, services.case_types.get(case.case_type), snapshot)


def _alert_urgent(
    ctx: HookContext, kp: KeyPerson, *, key: str, situation: str, case_id: int
) -> None:
    """An urgent signal alerts the lead leader at once."""
    if kp.lead_leader_id is None:
        return
    leader = ctx.uow.session.get(User, kp.lead_leader_id)
    if leader is None:
        return
    reporter = ctx.actor.display_name or ctx.actor.username
    enqueue(
        ctx.uow,
        key=key,
        template="contact_urgent",
        params={
            "person_name": kp.name,
            "situation": situation,
            "reporter": reporter,
            "url": _url(ctx.services, kp.case_id),
        },
        user=leader,
        case_id=case_id,
        now=ctx.now,
    )
    main = ctx.uow.session.get(Case, kp.case_id)
    if main is not None:
        record_case_event(
            ctx.uow,
            main,
            "key_person.urgent_signal",
            actor_id=ctx.actor.user_id,
            at=ctx.now,
            detail={"from_case_id": case_id, "lead_leader_id": leader.id},
        )


class ContactHooks:
    """Rules of the `key_person_contact` instance: one contact cycle."""

    def before_complete(
        self, ctx: HookContext, case: Case, task: Task, data: dict[str, Any]
    ) -> dict[str, Any]:
        """The contact date is a past business date within the file's life."""
        kp = _person_of_case(ctx.uow, case)
        on = _required_date(data, "contacted_on")
        _check_date(on, today=_today(ctx.now), not_before=kp.registered_on, field="contacted_on")
        if data.get("method") not in {m.value for m in ContactMethod}:
            raise ValidationError("bad method", {"method": ["Unknown contact method."]})
        return {}

    def after_complete(
        self, ctx: HookContext, case: Case, task: Task, data: Mapping[str, Any], snapshot: Snapshot
    ) -> None:
        """Record the contact on its cycle and the file; an urgent signal alerts the leader."""
        uow = ctx.uow
        kp = _person_of_case(uow, case)
        contact = uow.session.scalars(
            select(KeyPersonContact).where(KeyPersonContact.case_id == case.id)
        ).one()
        on = _required_date(data, "contacted_on")
        contact.state = "done"
        contact.contacted_on = on
        contact.method = str(data["method"])
        contact.situation = str(data.get("situation") or "")
        contact.risk_signal = str(data.get("risk_signal") or RiskSignal.none.value)
        contact.recorded_by_id = ctx.actor.user_id
        contact.recorded_at = ctx.now
        if kp.last_contact_on is None or on > kp.last_contact_on:
            kp.last_contact_on = on
        kp.last_risk_signal = contact.risk_signal
        kp.contact_overdue_since = None
        kp.updated_at = ctx.now
        if contact.risk_signal == RiskSignal.urgent.value:
            _alert_urgent(
                ctx,
                kp,
                key=f"kp-urgent:contact:{contact.id}",
                situation=contact.situation,
                case_id=case.id,
            )

    def task_due(self, ctx: HookContext, case: Case, task: HumanTask) -> datetime | None:
        """Due at the end of the cycle (camunda:dueDate = contact_due_on)."""
        return task.due_at


class ReassessHooks:
    """Rules of the monthly `key_person_reassess` instance."""

    def before_complete(
        self, ctx: HookContext, case: Case, task: Task, data: dict[str, Any]
    ) -> dict[str, Any]:
        """The reassessment date is a past business date, not before the last assessment."""
        kp = _person_of_case(ctx.uow, case)
        on = _required_date(data, "assessed_on")
        _check_date(
            on,
            today=_today(ctx.now),
            not_before=kp.last_assessed_on or kp.registered_on,
            field="assessed_on",
        )
        return {}

    def after_complete(
        self, ctx: HookContext, case: Case, task: Task, data: Mapping[str, Any], snapshot: Snapshot
    ) -> None:
        """Add the dated risk-ledger entry; a changed level changes the cadence from next cycle."""
        kp = _person_of_case(ctx.uow, case)
        kp.updated_at = ctx.now
        _record_assessment(ctx, kp, case, data, kind="reassess")

    def task_due(self, ctx: HookContext, case: Case, task: HumanTask) -> datetime | None:
        """Due at the end of the month (camunda:dueDate = reassess_due_on)."""
        return task.due_at


class DailyReportHooks:
    """Rules of the sensitive-period `key_person_daily_report` instance."""

    def before_complete(
        self, ctx: HookContext, case: Case, task: Task, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A report that is not 'all calm' must say what happened."""
        if not data.get("all_calm") and not str(data.get("situation") or "").strip():
            raise ValidationError(
                "situation required",
                {"situation": ["Describe the situation when it is not all calm."]},
            )
        return {}

    def after_complete(
        self, ctx: HookContext, case: Case, task: Task, data: Mapping[str, Any], snapshot: Snapshot
    ) -> None:
        """Record the day's report; an urgent signal alerts the lead leader."""
        uow = ctx.uow
        kp = _person_of_case(uow, case)
        report = uow.session.scalars(
            select(KeyPersonDailyReport).where(KeyPersonDailyReport.case_id == case.id)
        ).one()
        report.state = "done"
        report.all_calm = bool(data.get("all_calm"))
        report.situation = str(data.get("situation") or "")
        report.risk_signal = str(data.get("risk_signal") or RiskSignal.none.value)
        report.reported_by_id = ctx.actor.user_id
        report.reported_at = ctx.now
        if report.risk_signal == RiskSignal.urgent.value:
            _alert_urgent(
                ctx,
                kp,
                key=f"kp-urgent:daily:{report.id}",
                situation=report.situation,
                case_id=case.id,
            )

    def task_due(self, ctx: HookContext, case: Case, task: HumanTask) -> datetime | None:
        """Due at the end of the report's day."""
        return task.due_at


def case_visible_clause(actor: Actor) -> ColumnElement[bool]:
    """SQL filter on Case: a key-person file's cases (and their child cycles) for those who
    may see the file; the generic case and task endpoints apply it (issue 4 access rule)."""
    files = select(KeyPerson.case_id).where(visible_clause(actor))
    return or_(Case.id.in_(files), Case.parent_case_id.in_(files))


def register_case_types(registry: CaseTypeRegistry) -> None:
    """The stabilization case type and its three short periodic child types."""
    registry.restrict(
        [PROCESS, CONTACT_PROCESS, REASSESS_PROCESS, DAILY_PROCESS], case_visible_clause
    )
    registry.register(
        CaseType(PROCESS, PROCESS, "ZD", "重点信访人员稳控", "Key petitioner", StabilizationHooks())
    )
    registry.register(
        CaseType(
            CONTACT_PROCESS,
            CONTACT_PROCESS,
            "ZDLX",
            "重点人员联系",
            "Key-person contact",
            ContactHooks(),
        )
    )
    registry.register(
        CaseType(
            REASSESS_PROCESS,
            REASSESS_PROCESS,
            "ZDYP",
            "重点人员月度研判",
            "Monthly reassessment",
            ReassessHooks(),
        )
    )
    registry.register(
        CaseType(
            DAILY_PROCESS,
            DAILY_PROCESS,
            "ZDRB",
            "敏感节点日报",
            "Sensitive-period daily report",
            DailyReportHooks(),
        )
    )


# -- the scheduler: contact cycles, missed contacts, reassessments, daily reports -------------


def _child_data(kp: KeyPerson, **extra: Any) -> dict[str, Any]:
    return {
        "unit_id": kp.unit_id,
        "responsible_unit_id": kp.responsible_unit_id or kp.unit_id,
        "lead_leader_id": kp.lead_leader_id,
        "key_person_id": kp.id,
        "person_name": kp.name,
        "risk_level": kp.risk_level,
        **extra,
    }


def _start_child(
    services: Services,
    uow: UnitOfWork,
    kp: KeyPerson,
    process: str,
    data: dict[str, Any],
    now: datetime,
    title: str,
) -> Case:
    case, _snap = start_case(
        services,
        uow,
        SYSTEM,
        services.case_types.get(process),
        unit_id=kp.unit_id,
        data=data,
        title=title,
        now=now,
        parent_case_id=kp.case_id,
    )
    return case


def _due_ids(services: Services, stmt: Any) -> list[int]:
    with services.uow() as uow:
        return list(uow.session.scalars(stmt))


def _lock(uow: UnitOfWork, model: Any, row_id: int) -> Any:
    stmt = select(model).where(model.id == row_id)
    if uow.dialect == "postgresql":
        # Two schedulers never work on the same row: each takes those the other skips.
        stmt = stmt.with_for_update(skip_locked=True)
    return uow.session.scalars(stmt).first()


def open_contact_cycles(services: Services, now: datetime, *, batch: int = 1000) -> int:
    """Open the contact cycles that are due: one short `key_person_contact` instance each."""
    today = _today(now)
    ids = _due_ids(
        services,
        select(KeyPerson.id)
        .where(KeyPerson.status.in_(CONTROLLED), KeyPerson.next_contact_on <= today)
        .order_by(KeyPerson.next_contact_on, KeyPerson.id)
        .limit(batch),
    )
    opened = 0
    for kp_id in ids:
        try:
            with services.uow() as uow, conflicts_as_409():
                kp = _lock(uow, KeyPerson, kp_id)
                if kp is None or kp.status not in CONTROLLED or kp.next_contact_on is None:
                    continue
                if kp.next_contact_on > today:
                    continue
                cadence = _cadence(uow, kp.risk_level)
                start = kp.next_contact_on
                if start + timedelta(days=cadence) <= today:
                    start = today  # the scheduler was down: open the current cycle, not the past
                due = start + timedelta(days=cadence - 1)
                kp.cadence_days = cadence
                kp.contact_cycles += 1
                kp.next_contact_on = start + timedelta(days=cadence)
                kp.updated_at = now
                case = _start_child(
                    services,
                    uow,
                    kp,
                    CONTACT_PROCESS,
                    _child_data(kp, contact_due_on=due.isoformat(), cycle_no=kp.contact_cycles),
                    now,
                    f"{kp.name} 第{kp.contact_cycles}次联系",
                )
                uow.session.add(
                    KeyPersonContact(
                        key_person_id=kp.id,
                        case_id=case.id,
                        cycle_no=kp.contact_cycles,
                        opened_on=start,
                        due_on=due,
                        state="open",
                    )
                )
                uow.session.flush()
                uow.commit()
                opened += 1
        except (IntegrityError, ConflictError):
            continue  # another scheduler opened this cycle
    return opened


def _team_users(uow: UnitOfWork, kp: KeyPerson) -> list[User]:
    """The lead leader, the team's users and the responsible unit's own handlers."""
    ids = set(
        uow.session.scalars(
            select(KeyPersonMember.user_id).where(
                KeyPersonMember.key_person_id == kp.id,
                KeyPersonMember.active.is_(True),
                KeyPersonMember.user_id.is_not(None),
            )
        )
    )
    if kp.lead_leader_id:
        ids.add(kp.lead_leader_id)
    if kp.responsible_unit_id:
        ids |= set(
            uow.session.scalars(
                select(RoleAssignment.user_id).where(
                    RoleAssignment.role == "handler",
                    RoleAssignment.unit_id == kp.responsible_unit_id,
                )
            )
        )
    if not ids:
        return []
    return list(
        uow.session.scalars(
            select(User).where(User.id.in_(ids), User.active.is_(True)).order_by(User.id)
        )
    )


def flag_missed_contacts(services: Services, now: datetime, *, batch: int = 1000) -> int:
    """A cycle that ended without a contact is missed: warn the team and the lead leader."""
    today = _today(now)
    ids = _due_ids(
        services,
        select(KeyPersonContact.id)
        .where(KeyPersonContact.state == "open", KeyPersonContact.due_on < today)
        .order_by(KeyPersonContact.due_on, KeyPersonContact.id)
        .limit(batch),
    )
    warned = 0
    for contact_id in ids:
        try:
            with services.uow() as uow, conflicts_as_409():
                contact = _lock(uow, KeyPersonContact, contact_id)
                if contact is None or contact.state != "open":
                    continue
                kp = uow.session.get(KeyPerson, contact.key_person_id)
                case = uow.session.get(Case, contact.case_id)
                assert kp is not None
                assert case is not None
                contact.state = "missed"
                if kp.contact_overdue_since is None:
                    kp.contact_overdue_since = contact.due_on + timedelta(days=1)
                ctx = HookContext(services, uow, SYSTEM, now)
                if case.closed_at is None:
                    _cancel_case(ctx, case)
                for user in _team_users(uow, kp):
                    enqueue(
                        uow,
                        key=f"kp-contact-missed:{contact.id}:{user.id}",
                        template="contact_missed",
                        params={
                            "person_name": kp.name,
                            "due_on": contact.due_on.isoformat(),
                            "url": _url(services, kp.case_id),
                        },
                        user=user,
                        case_id=kp.case_id,
                        now=now,
                    )
                main = uow.session.get(Case, kp.case_id)
                if main is not None:
                    record_case_event(
                        uow,
                        main,
                        "key_person.contact_missed",
                        actor_id=None,
                        at=now,
                        detail={"cycle_no": contact.cycle_no, "due_on": contact.due_on},
                    )
                uow.commit()
                warned += 1
        except ConflictError:
            continue
    return warned


def remind_contacts(services: Services, now: datetime, *, batch: int = 1000) -> int:
    """`warning_days` before a cycle ends without a contact, remind the team once."""
    today = _today(now)
    with services.uow() as uow:
        lead = int(get_setting(uow, "warning_days"))
    horizon = today + timedelta(days=lead)
    with services.uow() as uow:
        rows = uow.session.execute(
            select(KeyPersonContact, KeyPerson)
            .join(KeyPerson, KeyPerson.id == KeyPersonContact.key_person_id)
            .where(
                KeyPersonContact.state == "open",
                KeyPersonContact.due_on >= today,
                KeyPersonContact.due_on <= horizon,
                # a cycle shorter than the lead time is reminded by its own opening
                KeyPersonContact.opened_on < today,
            )
            .limit(batch)
        ).all()
        sent = 0
        for contact, kp in rows:
            for user in _team_users(uow, kp):
                enqueue(
                    uow,
                    key=f"kp-contact-due:{contact.id}:{user.id}",
                    template="contact_due",
                    params={
                        "person_name": kp.name,
                        "due_on": contact.due_on.isoformat(),
                        "url": _url(services, kp.case_id),
                    },
                    user=user,
                    case_id=kp.case_id,
                    now=now,
                )
            sent += 1
        uow.commit()
        return sent


def open_reassessments(services: Services, now: datetime, *, batch: int = 1000) -> int:
    """Open the month's reassessment for every file under control (one per person and month)."""
    today = _today(now)
    month = today.strftime("%Y-%m")
    ids = _due_ids(
        services,
        select(KeyPerson.id)
        .where(KeyPerson.status.in_(CONTROLLED), KeyPerson.next_reassess_on <= today)
        .order_by(KeyPerson.id)
        .limit(batch),
    )
    opened = 0
    for kp_id in ids:
        try:
            with services.uow() as uow, conflicts_as_409():
                kp = _lock(uow, KeyPerson, kp_id)
                if kp is None or kp.next_reassess_on is None or kp.next_reassess_on > today:
                    continue
                claimed = uow.session.execute(
                    _insert(uow)(JobRun)
                    .values(job="key_person_reassess", period=f"{kp.id}:{month}", ran_at=now)
                    .on_conflict_do_nothing()
                    .returning(JobRun.id)
                ).first()
                kp.next_reassess_on = _first_of_next_month(today)
                if claimed is None:
                    uow.commit()
                    continue
                ctx = HookContext(services, uow, SYSTEM, now)
                # Last month's reassessment, if still open, is superseded by this one.
                for old in uow.session.scalars(
                    select(Case).where(
                        Case.parent_case_id == kp.case_id,
                        Case.case_type == REASSESS_PROCESS,
                        Case.closed_at.is_(None),
                    )
                ):
                    _cancel_case(ctx, old)
                end_of_month = _first_of_next_month(today) - timedelta(days=1)
                _start_child(
                    services,
                    uow,
                    kp,
                    REASSESS_PROCESS,
                    _child_data(kp, reassess_due_on=end_of_month.isoformat(), month=month),
                    now,
                    f"{kp.name} {month}月度研判",
                )
                uow.commit()
                opened += 1
        except (IntegrityError, ConflictError):
            continue
    return opened


def active_sensitive_period(uow: UnitOfWork, day: date) -> dict[str, Any] | None:
    """The sensitive period (setting sensitive_periods) that includes `day`, if any."""
    for period in get_setting(uow, "sensitive_periods") or []:
        try:
            start = date.fromisoformat(str(period["start"]))
            end = date.fromisoformat(str(period["end"]))
        except (KeyError, TypeError, ValueError):
            continue
        if start <= day <= end:
            return {"start": start, "end": end, "name": str(period.get("name") or "")}
    return None


def run_daily_reports(services: Services, now: datetime, *, batch: int = 1000) -> int:
    """In a sensitive period, open today's report for every high and medium person; close the
    reports of past days that were never filed (missed), so nothing runs after the period."""
    today = _today(now)
    done = 0
    stale = _due_ids(
        services,
        select(KeyPersonDailyReport.id)
        .where(KeyPersonDailyReport.state == "open", KeyPersonDailyReport.report_on < today)
        .limit(batch),
    )
    for report_id in stale:
        try:
            with services.uow() as uow, conflicts_as_409():
                report = _lock(uow, KeyPersonDailyReport, report_id)
                if report is None or report.state != "open":
                    continue
                report.state = "missed"
                case = uow.session.get(Case, report.case_id)
                kp = uow.session.get(KeyPerson, report.key_person_id)
                assert case is not None
                assert kp is not None
                ctx = HookContext(services, uow, SYSTEM, now)
                if case.closed_at is None:
                    _cancel_case(ctx, case)
                if kp.lead_leader_id:
                    leader = uow.session.get(User, kp.lead_leader_id)
                    enqueue(
                        uow,
                        key=f"kp-daily-missed:{report.id}",
                        template="contact_missed",
                        params={
                            "person_name": kp.name,
                            "due_on": report.report_on.isoformat(),
                            "url": _url(services, kp.case_id),
                        },
                        user=leader,
                        case_id=kp.case_id,
                        now=now,
                    )
                uow.commit()
                done += 1
        except ConflictError:
            continue
    with services.uow() as uow:
        period = active_sensitive_period(uow, today)
    if period is None:
        return done
    has_report = (
        select(KeyPersonDailyReport.id)
        .where(
            KeyPersonDailyReport.key_person_id == KeyPerson.id,
            KeyPersonDailyReport.report_on == today,
        )
        .exists()
    )
    ids = _due_ids(
        services,
        select(KeyPerson.id)
        .where(
            KeyPerson.status.in_(CONTROLLED),
            KeyPerson.risk_level.in_([RiskLevel.high.value, RiskLevel.medium.value]),
            ~has_report,
        )
        .order_by(KeyPerson.id)
        .limit(batch),
    )
    for kp_id in ids:
        try:
            with services.uow() as uow, conflicts_as_409():
                kp = _lock(uow, KeyPerson, kp_id)
                if kp is None or kp.status not in CONTROLLED:
                    continue
                case = _start_child(
                    services,
                    uow,
                    kp,
                    DAILY_PROCESS,
                    _child_data(kp, report_on=today.isoformat(), period_name=period["name"]),
                    now,
                    f"{kp.name} {today.isoformat()} 敏感节点日报",
                )
                uow.session.add(
                    KeyPersonDailyReport(
                        key_person_id=kp.id,
                        case_id=case.id,
                        report_on=today,
                        period_name=period["name"][:100],
                        state="open",
                    )
                )
                uow.session.flush()
                uow.commit()
                done += 1
        except (IntegrityError, ConflictError):
            continue
    return done


def run_stabilization_jobs(services: Services, now: datetime) -> int:
    """The scheduler's stabilization work for one tick, each step idempotent."""
    count = flag_missed_contacts(services, now)
    count += open_contact_cycles(services, now)
    count += remind_contacts(services, now)
    count += open_reassessments(services, now)
    count += run_daily_reports(services, now)
    return count


# -- KPI section ------------------------------------------------------------------------------


def kpi_section(uow: UnitOfWork, period: Period) -> dict[str, Figure]:
    """Key persons registered, under control by risk level, signed off; 包案化解率."""
    in_unit = KeyPerson.village_id.in_(
        select(Unit.id).where(Unit.path.startswith(period.unit_path)).scalar_subquery()
    )
    session = uow.session
    registered = session.scalar(
        select(func.count()).where(
            in_unit,
            KeyPerson.registered_on >= period.date_from,
            KeyPerson.registered_on <= period.date_to,
        )
    )
    # Risk level at the period's end: the latest ledger entry on or before that date.
    latest = (
        select(KeyPersonRiskEntry.risk_level)
        .where(
            KeyPersonRiskEntry.key_person_id == KeyPerson.id,
            KeyPersonRiskEntry.assessed_on <= period.date_to,
        )
        .order_by(KeyPersonRiskEntry.assessed_on.desc(), KeyPersonRiskEntry.id.desc())
        .limit(1)
        .correlate(KeyPerson)
        .scalar_subquery()
    )
    signed_before_end = (
        select(KeyPersonClosure.id)
        .where(
            KeyPersonClosure.key_person_id == KeyPerson.id,
            KeyPersonClosure.signed_off_on <= period.date_to,
            or_(
                KeyPersonClosure.reopened_on.is_(None),
                KeyPersonClosure.reopened_on > period.date_to,
            ),
        )
        .exists()
    )
    by_level: dict[str | None, int] = {
        r[0]: int(r[1])
        for r in session.execute(
            select(latest, func.count())
            .where(in_unit, KeyPerson.registered_on <= period.date_to, ~signed_before_end)
            .group_by(latest)
        )
    }
    signed = session.scalar(
        select(func.count())
        .select_from(KeyPersonClosure)
        .join(KeyPerson, KeyPerson.id == KeyPersonClosure.key_person_id)
        .where(
            in_unit,
            KeyPersonClosure.signed_off_on >= period.date_from,
            KeyPersonClosure.signed_off_on <= period.date_to,
        )
    )
    # 包案化解率: files owned by a lead leader during the period, and those signed off in it.
    owned_filter = and_(
        in_unit,
        KeyPerson.team_approved_on.is_not(None),
        KeyPerson.team_approved_on <= period.date_to,
        or_(KeyPerson.signed_off_on.is_(None), KeyPerson.signed_off_on >= period.date_from),
    )
    owned = session.scalar(select(func.count()).where(owned_filter)) or 0
    resolved = (
        session.scalar(
            select(func.count()).where(
                owned_filter,
                KeyPerson.signed_off_on.is_not(None),
                KeyPerson.signed_off_on <= period.date_to,
            )
        )
        or 0
    )
    return {
        "key_persons_registered": int(registered or 0),
        "key_persons_under_control_high": int(by_level.get("high", 0)),
        "key_persons_under_control_medium": int(by_level.get("medium", 0)),
        "key_persons_under_control_low": int(by_level.get("low", 0)),
        "key_persons_signed_off": int(signed or 0),
        "leader_ownership_resolution_rate": Ratio(int(resolved), int(owned)),
    }


def register_kpi_section() -> None:
    """Add the key-person figures to the KPI report."""
    from engine.services.reports import register_section

    register_section("key_persons", kpi_section)


register_kpi_section()

__all__ = [
    "CONTROLLED",
    "STATUSES",
    "KeyPersonFilter",
    "active_sensitive_period",
    "get_key_person",
    "list_key_persons",
    "propose_candidates",
    "register_case_types",
    "register_key_person",
    "reopen_key_person",
    "run_stabilization_jobs",
]
