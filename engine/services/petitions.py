"""Petitions (信访件): registration, the statutory deadlines of each step, review and
re-review, repeat detection, receptions and the petition KPIs (DOMAIN.md §2, §3, §5).

A petition is a case of type ``petition`` (process ``petition``, numbers ``XF-<year>-<n>``)
plus a ``petitions`` row whose primary key is the case id. Every deadline is a row of the
``deadlines`` table computed from business dates (received, decided, delivered, requested
on), never from when someone clicked. The task hooks check each form's business date and
keep the deadlines and the petition row in step with the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    String,
    Table,
    and_,
    bindparam,
    case,
    distinct,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
    update,
)

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ, local_today
from engine.domain.calendar import DueDate
from engine.domain.deadlines import (
    PETITION_RULES,
    RuleViolation,
    check_business_date,
    compute_due,
    decision_due,
    evaluation_window_end,
    extend,
    request_window_end,
)
from engine.domain.enums import (
    AcceptanceDecision,
    Category,
    Channel,
    DeliveryMethod,
    HandlingMethod,
    Rating,
    ReceptionKind,
    ReplyOutcome,
    ReviewLevel,
    ReviewOutcome,
    Source,
)
from engine.domain.kpi import Ratio
from engine.domain.text import is_repeat_matter, matter_similarity, valid_id_number, valid_phone
from engine.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from engine.persistence.db import UnitOfWork, conflicts_as_409
from engine.persistence.models import (
    Case,
    Deadline,
    Petition,
    Petitioner,
    PetitionReview,
    PetitionSupervision,
    Reception,
    ReceptionPetition,
    RoleAssignment,
    Task,
    Unit,
    User,
)
from engine.services import pii
from engine.services.access import Actor, unit_scope
from engine.services.audit import record_case_event, record_event
from engine.services.calendar import load_calendar
from engine.services.case_types import CaseType, CaseTypeRegistry, HookContext
from engine.services.cases import (
    CLOSED_STATUSES,
    apply_snapshot,
    case_timeline,
    deadline_view,
    get_case_row,
    start_case,
    task_summary,
)
from engine.services.deadlines import (
    case_deadlines,
    deadlines_of,
    drop_deadline,
    meet_deadline,
    set_deadline,
)
from engine.services.petition_counts import (
    SETTLED_KINDS,
    SUPERVISED_KINDS,
    sqlite_deadline_counts,
)
from engine.services.reports import Figure, Period, register_section
from engine.services.settings import get_setting

if TYPE_CHECKING:
    from engine.workflow import HumanTask, Snapshot

PETITION_TYPE = "petition"
PETITION_PREFIX = "XF"  # 信访
REVIEW_TYPE = "petition_review"
REVIEW_PREFIX = "FC"  # 复查/复核
MAX_REPRESENTATIVES = 5  # 信访工作条例 Art. 18: a group visit chooses at most 5 representatives
MAX_PER_PAGE = 200
# Bounds of the process's two loops (SPIFFWORKFLOW.md trap 8: a loop grows the task tree and
# stalls at ~334 iterations): extension requests after a refusal, and returns of a draft
# reply. The BPMN loop-back flows carry the same numbers (`extension_round <= 3`,
# `reply_returns <= 20`). The law allows one approved extension (信访工作条例 Art. 34).
MAX_EXTENSION_REQUESTS = 3  # requests per petition, refused ones included
MAX_REPLY_RETURNS = 20  # returns of a draft reply before the street must coordinate

# Petition statuses with their labels (zh, en).
STATUS_LABELS: Mapping[str, tuple[str, str]] = {
    "registered": ("待受理", "Awaiting acceptance"),
    "not_accepted": ("不予受理", "Not accepted"),
    "forwarded": ("已转送", "Forwarded"),
    "handling": ("办理中", "In handling"),
    "replied": ("已答复待评价", "Replied, awaiting evaluation"),
    "evaluated": ("已评价办结", "Closed, evaluated"),
    "not_evaluated": ("未评价办结", "Closed, not evaluated"),
    "under_review": ("复查中", "Under review"),
    "reviewed": ("已复查", "Reviewed"),
    "under_re_review": ("复核中", "Under re-review"),
    "terminated": ("已终结", "Terminated"),
}
OPEN_STATUSES = ("registered", "handling", "replied", "under_review", "under_re_review")
# Windows: a right or an option that lapses (the petitioner's evaluation or appeal, the
# organ's remit objection). A lapsed window is closed quietly, without red or supervision.
WINDOW_KINDS = (
    "remit_objection",
    "evaluation_window",
    "review_request_window",
    "re_review_request_window",
)
PETITION_ROLES = ("admin", "intake", "handler", "leader", "supervisor")


def status_label(status: str, lang: str = "zh") -> str:
    """The label of a petition status in ``lang``."""
    zh, en = STATUS_LABELS.get(status, (status, status))
    return en if lang.startswith("en") else zh


def _lang(actor: Actor) -> str:
    return "en" if actor.language.startswith("en") else "zh"


def _violation(exc: RuleViolation, actor: Actor, field: str | None = None) -> ValidationError:
    message = exc.message(_lang(actor))
    return ValidationError(exc.message_en, {field or exc.field: [message]})


def _msg(actor: Actor, en: str, zh: str) -> str:
    return en if _lang(actor) == "en" else zh


def _local(now: datetime) -> date:
    return now.astimezone(LOCAL_TZ).date()


def _parse_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _business_date(
    ctx: HookContext, data: Mapping[str, Any], field: str, not_before: date | None
) -> date:
    """A form's business date: today if left empty, never in the future or before the last step."""
    today = _local(ctx.now)
    value = _parse_date(data.get(field)) or today
    try:
        check_business_date(value, today=today, not_before=not_before, field=field)
    except RuleViolation as exc:
        raise _violation(exc, ctx.actor) from exc
    return value


def _timer_at(last_day: date) -> str:
    """The instant a window ending on ``last_day`` closes: the next local midnight, ISO 8601."""
    return datetime.combine(last_day + timedelta(days=1), time(0, 0), LOCAL_TZ).isoformat()


# -- registration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    """A petitioner checked and protected, ready to store."""

    name: str
    address: str | None
    id_number: pii.Protected | None
    phone: pii.Protected | None
    is_representative: bool


def _office_for(uow: UnitOfWork, actor: Actor, unit_id: int | None, village: Unit | None) -> Unit:
    """The office registering the petition: given, the village's street, or the clerk's unit."""
    session = uow.session
    if unit_id is not None:
        unit = session.get(Unit, unit_id)
        if unit is None:
            raise ValidationError("unknown unit", {"unit_id": ["Unknown unit."]})
        return unit
    if village is not None:
        ids = [int(x) for x in village.path.strip("/").split("/") if x]
        streets = session.scalars(
            select(Unit).where(Unit.id.in_(ids), Unit.kind == "street").order_by(Unit.path.desc())
        ).first()
        if streets is not None:
            return streets
        if village.parent_id is not None:
            parent = session.get(Unit, village.parent_id)
            if parent is not None:
                return parent
        return village
    for grant in actor.grants:
        if grant.role == "intake" and grant.unit_id is not None:
            unit = session.get(Unit, grant.unit_id)
            if unit is not None:
                return unit
    street = session.scalars(select(Unit).where(Unit.kind == "street").order_by(Unit.id)).first()
    if street is None:
        raise ValidationError("no office", {"unit_id": ["Name the registering office."]})
    return street


def _prepare_petitioners(
    cipher: pii.PiiCipher,
    items: Sequence[Mapping[str, Any]],
    headcount: int | None,
    errors: dict[str, Any],
) -> list[_Prepared]:
    if not items:
        errors["petitioners"] = ["At least one petitioner is required. 至少登记一名信访人。"]
        return []
    if len(items) > MAX_REPRESENTATIVES:
        errors["petitioners"] = [
            f"A group chooses at most {MAX_REPRESENTATIVES} representatives "
            "(信访工作条例 Art. 18); give the group size as headcount. "
            f"多人信访应推选不超过{MAX_REPRESENTATIVES}名代表。"
        ]
        return []
    if headcount is not None and headcount < len(items):
        errors["headcount"] = [
            "Headcount is smaller than the petitioners listed. 人数少于登记人数。"
        ]
    out: list[_Prepared] = []
    item_errors: dict[str, Any] = {}
    for i, item in enumerate(items):
        problems: dict[str, list[str]] = {}
        name = str(item.get("name") or "").strip()
        if not name:
            problems["name"] = ["Name is required. 请填写姓名。"]
        id_number = str(item.get("id_number") or "").strip()
        if id_number and not valid_id_number(id_number):
            problems["id_number"] = ["Not a valid resident ID number. 身份证号码无效。"]
        phone = str(item.get("phone") or "").strip()
        if phone and not (valid_phone(phone) or valid_phone(pii.normalize_phone(phone))):
            problems["phone"] = ["Not a valid phone number. 电话号码无效。"]
        if problems:
            item_errors[str(i)] = problems
            continue
        out.append(
            _Prepared(
                name=name,
                address=(str(item.get("address") or "").strip() or None),
                id_number=pii.protect_id_number(cipher, id_number) if id_number else None,
                phone=pii.protect_phone(cipher, phone) if phone else None,
                is_representative=headcount is not None and headcount > 1,
            )
        )
    if item_errors:
        errors["petitioners"] = item_errors
    return out


def _find_repeat(
    uow: UnitOfWork, people: Sequence[_Prepared], matter: str, exclude: int | None = None
) -> Petition | None:
    """An open (or barred) petition of the same person on a similar matter, newest first."""
    conditions: list[Any] = []
    id_hashes = [p.id_number.hash for p in people if p.id_number is not None]
    if id_hashes:
        conditions.append(Petitioner.id_number_hash.in_(id_hashes))
    for person in people:
        if person.phone is not None:
            conditions.append(
                and_(Petitioner.phone_hash == person.phone.hash, Petitioner.name == person.name)
            )
    if not conditions:
        return None
    stmt = (
        select(Petition)
        .where(
            Petition.case_id.in_(select(Petitioner.petition_id).where(or_(*conditions))),
            or_(Petition.status.in_(OPEN_STATUSES), Petition.not_to_be_accepted_again.is_(True)),
        )
        .order_by(Petition.received_on.desc(), Petition.case_id.desc())
        .limit(50)
    )
    if exclude is not None:
        stmt = stmt.where(Petition.case_id != exclude)
    for candidate in uow.session.scalars(stmt):
        if is_repeat_matter(matter, f"{candidate.subject} {candidate.request}"):
            return candidate
    return None


def _matter(subject: str, request: str) -> str:
    return f"{subject} {request}"


def register_petition(services: Services, actor: Actor, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST /petitions: register a petition of any channel and set its first deadlines."""
    now = services.clock.now()
    today = local_today(services.clock)
    cipher = pii.cipher_for(services.settings)
    with services.uow() as uow, conflicts_as_409():
        session = uow.session
        errors: dict[str, Any] = {}
        received_on = _parse_date(body.get("received_on")) or today
        if received_on > today:
            errors["received_on"] = [
                _msg(
                    actor,
                    f"{received_on} is in the future (today is {today}).",
                    f"收到日期 {received_on} 晚于今天（{today}）。",
                )
            ]
        village: Unit | None = None
        if body.get("village_id") is not None:
            village = session.get(Unit, int(body["village_id"]))
            if village is None or village.kind not in ("village", "community"):
                errors["village_id"] = ["Not a village or community. 不是村（社区）。"]
                village = None
        office = _office_for(uow, actor, body.get("unit_id"), village)
        if not actor.covers(office.path, ["intake"]):
            raise PermissionDeniedError("only the petition office (intake) may register petitions")
        if village is not None and not village.path.startswith(office.path):
            errors["village_id"] = [
                "The village is not under the registering office. 村不在本单位辖区内。"
            ]
        source = str(body.get("source") or Source.direct.value)
        assigned_due = _parse_date(body.get("assigned_due_on"))
        if assigned_due is not None and assigned_due < received_on:
            errors["assigned_due_on"] = [
                "The district's due date is before receipt. 交办期限早于收到日期。"
            ]
        if assigned_due is not None and source != Source.assigned.value:
            errors["assigned_due_on"] = [
                "Only petitions assigned from above carry one. 仅上级交办件填写。"
            ]
        reception_id = body.get("reception_id")
        if reception_id is not None and session.get(Reception, int(reception_id)) is None:
            errors["reception_id"] = ["Unknown reception. 接访记录不存在。"]
        headcount = body.get("headcount")
        people = _prepare_petitioners(cipher, body.get("petitioners") or [], headcount, errors)
        if errors:
            raise ValidationError("the petition has errors", errors)

        calendar = load_calendar(uow)
        acceptance = compute_due(PETITION_RULES["acceptance_notice"], received_on, calendar)
        remit = compute_due(PETITION_RULES["remit_objection"], received_on, calendar)
        subject = str(body["subject"]).strip()
        request = str(body["request"]).strip()
        data = {
            "unit_id": office.id,
            "received_on": received_on.isoformat(),
            "channel": body["channel"],
            "category": body["category"],
            "source": source,
            "village_id": village.id if village else None,
            "acceptance_due_on": acceptance.due_on.isoformat(),
            "remit_objection_due_on": remit.due_on.isoformat(),
        }
        case_type = services.case_types.get(PETITION_TYPE)
        repeat = _find_repeat(uow, people, _matter(subject, request))
        registered = {
            "channel": body["channel"],
            "received_on": received_on.isoformat(),
            "petitioners": len(people),
            "repeat_of": repeat.case_id if repeat else None,
            "repeat_of_barred": bool(repeat and repeat.not_to_be_accepted_again),
        }
        # The registration's event goes in right after case.started, written with it.
        case, _snapshot = start_case(
            services,
            uow,
            actor,
            case_type,
            unit_id=office.id,
            data=data,
            title=subject,
            now=now,
            events=[("petition.registered", registered)],
        )
        petition = Petition(
            case_id=case.id,
            unit_id=office.id,
            channel=body["channel"],
            received_on=received_on,
            category=body["category"],
            source=source,
            assigned_ref=body.get("assigned_ref"),
            assigned_due_on=assigned_due,
            proxy_agent=body.get("proxy_agent"),
            reception_id=reception_id,
            subject=subject,
            request=request,
            facts=body.get("facts"),
            reasons=body.get("reasons"),
            village_id=village.id if village else None,
            headcount=max(headcount or 1, len(people)),
            status="registered",
            repeat_of_id=repeat.case_id if repeat else None,
            not_to_be_accepted_again=False,
            reply_returns=0,
            created_at=now,
        )
        session.add(petition)
        session.flush()
        petitioners = []
        for position, person in enumerate(people):
            petitioners.append(
                Petitioner(
                    petition_id=case.id,
                    position=position,
                    name=person.name,
                    address=person.address,
                    id_number_enc=person.id_number.enc if person.id_number else None,
                    id_number_hash=person.id_number.hash if person.id_number else None,
                    id_number_masked=person.id_number.masked if person.id_number else None,
                    phone_enc=person.phone.enc if person.phone else None,
                    phone_hash=person.phone.hash if person.phone else None,
                    phone_masked=person.phone.masked if person.phone else None,
                    is_representative=person.is_representative,
                )
            )
        session.add_all(petitioners)
        if reception_id is not None:
            session.add(ReceptionPetition(reception_id=int(reception_id), petition_id=case.id))
        set_deadline(
            uow,
            case,
            "acceptance_notice",
            acceptance,
            source=PETITION_RULES["acceptance_notice"].source,
        )
        set_deadline(
            uow, case, "remit_objection", remit, source=PETITION_RULES["remit_objection"].source
        )
        if assigned_due is not None:
            verified = load_calendar(uow).is_verified(assigned_due)
            set_deadline(
                uow,
                case,
                "assigned",
                DueDate(assigned_due, not verified),
                source=PETITION_RULES["assigned"].source,
            )
        session.flush()
        # Everything is written (flushed): the view reads this transaction's own rows.
        view = petition_view(
            uow, petition, case, actor, with_timeline=False, registered=petitioners
        )
        uow.commit()
        return view


def possible_repeats(
    services: Services,
    actor: Actor,
    *,
    name: str | None,
    id_number: str | None,
    phone: str | None,
    matter: str,
) -> list[dict[str, Any]]:
    """Petitions in scope of the same person, most similar matter first (the desk's warning)."""
    cipher = pii.cipher_for(services.settings)
    conditions: list[Any] = []
    if id_number and valid_id_number(id_number):
        conditions.append(Petitioner.id_number_hash == pii.id_number_hash(cipher, id_number))
    if phone and valid_phone(phone) and name:
        conditions.append(
            and_(
                Petitioner.phone_hash == pii.phone_hash(cipher, phone),
                Petitioner.name == name.strip(),
            )
        )
    if not conditions:
        return []
    with services.uow() as uow:
        rows = uow.session.execute(
            select(Petition, Case.case_no)
            .join(Case, Case.id == Petition.case_id)
            .where(
                Petition.case_id.in_(select(Petitioner.petition_id).where(or_(*conditions))),
                _scope(actor),
            )
            .order_by(Petition.received_on.desc())
            .limit(50)
        ).all()
        out = []
        for p, case_no in rows:
            score = matter_similarity(matter, _matter(p.subject, p.request)) if matter else 0.0
            out.append(
                {
                    "id": p.case_id,
                    "case_no": case_no,
                    "subject": p.subject,
                    "status": p.status,
                    "received_on": p.received_on,
                    "open": p.status in OPEN_STATUSES,
                    "not_to_be_accepted_again": p.not_to_be_accepted_again,
                    "similarity": round(score, 3),
                    "repeat": bool(matter)
                    and is_repeat_matter(matter, _matter(p.subject, p.request)),
                }
            )
        out.sort(key=lambda r: -float(str(r["similarity"])))
        return out


# -- the petition's task hooks ----------------------------------------------------------------


def _petition(uow: UnitOfWork, case: Case) -> Petition:
    row = uow.session.get(Petition, case.id)
    if row is None:
        raise NotFoundError("petition not found")
    return row


class PetitionHooks:
    """Business dates, deadlines and the petition row around each task of `petition`."""

    def before_complete(
        self, ctx: HookContext, case: Case, task: Task, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Check the form's business rules, move deadlines and return data for the workflow."""
        petition = _petition(ctx.uow, case)
        handler = getattr(self, f"_{task.bpmn_id}", None)
        if handler is None:
            return {}
        extra: dict[str, Any] = handler(ctx, case, petition, data)
        ctx.uow.session.flush()
        return extra

    def after_complete(
        self,
        ctx: HookContext,
        case: Case,
        task: Task,
        data: Mapping[str, Any],
        snapshot: Snapshot,
    ) -> None:
        """Close the petition when a past delivery date already ended the evaluation window."""
        if task.bpmn_id == "deliver_reply" and snapshot.status == "completed":
            close_unevaluated(ctx.uow, case, _petition(ctx.uow, case), ctx.now)

    def task_due(self, ctx: HookContext, case: Case, task: HumanTask) -> datetime | None:
        """The BPMN's camunda:dueDate, which reads the due dates the hooks put in the data."""
        return task.due_at

    def on_deadline_missed(self, ctx: HookContext, case: Case, deadline: Deadline) -> None:
        """A missed office deadline opens supervision (督办) at the registering street."""
        from engine.services.supervision import open_supervision

        if deadline.kind in SUPERVISED_KINDS:
            open_supervision(ctx, case, _petition(ctx.uow, case), deadline)

    # one method per user task ------------------------------------------------------------

    def _decide_acceptance(
        self, ctx: HookContext, case: Case, p: Petition, data: dict[str, Any]
    ) -> dict[str, Any]:
        uow, actor = ctx.uow, ctx.actor
        decided_on = _business_date(ctx, data, "decided_on", p.received_on)
        decision = AcceptanceDecision(data["decision"])
        errors: dict[str, list[str]] = {}
        responsible: Unit | None = None
        if decision is AcceptanceDecision.accept:
            rid = data.get("responsible_unit_id")
            wanted = {p.unit_id} if rid is None else {p.unit_id, int(rid)}
            units = {u.id: u for u in uow.session.scalars(select(Unit).where(Unit.id.in_(wanted)))}
            office = units.get(p.unit_id)
            responsible = units.get(int(rid)) if rid is not None else None
            if rid is None:
                errors["responsible_unit_id"] = [
                    _msg(actor, "Name the responsible unit.", "受理时须指定责任单位。")
                ]
            elif responsible is None or not responsible.active:
                errors["responsible_unit_id"] = [_msg(actor, "Unknown unit.", "单位不存在。")]
            elif office is not None and not responsible.path.startswith(office.path):
                errors["responsible_unit_id"] = [
                    _msg(
                        actor,
                        "The responsible unit must be the office or a unit under it.",
                        "责任单位须为本单位或其下属单位。",
                    )
                ]
        elif not str(data.get("reason") or "").strip():
            errors["reason"] = [
                _msg(actor, "Give the reason for the decision.", "不予受理或转送须说明理由。")
            ]
        if decision is AcceptanceDecision.forward and not str(data.get("forward_to") or "").strip():
            errors["forward_to"] = [_msg(actor, "Name the organ forwarded to.", "请填写转送机关。")]
        if errors:
            raise ValidationError("the acceptance decision has errors", errors)

        p.decision = decision.value
        p.decided_on = decided_on
        p.decision_reason = data.get("reason")
        p.forward_to = data.get("forward_to")
        meet_deadline(uow, case, "acceptance_notice", decided_on)
        if decision is AcceptanceDecision.forward:
            meet_deadline(uow, case, "remit_objection", decided_on)
        else:
            drop_deadline(uow, case, "remit_objection")
        extra: dict[str, Any] = {"decided_on": decided_on.isoformat()}
        if responsible is not None:
            rule = PETITION_RULES["reply"]
            reply = compute_due(rule, decided_on, load_calendar(uow))
            set_deadline(uow, case, "reply", reply, source=rule.source, unit_id=responsible.id)
            p.responsible_unit_id = responsible.id
            p.status = "handling"
            extra.update(responsible_unit_id=responsible.id, reply_due_on=reply.due_on.isoformat())
        else:
            meet_deadline(uow, case, "assigned", decided_on)
            p.status = "forwarded" if decision is AcceptanceDecision.forward else "not_accepted"
            p.closed_on = decided_on
        return extra

    def _handle(
        self, ctx: HookContext, case: Case, p: Petition, data: dict[str, Any]
    ) -> dict[str, Any]:
        uow, actor = ctx.uow, ctx.actor
        requested = bool(data.get("request_extension"))
        p.handling_method = HandlingMethod(data["method"]).value
        if not requested:
            return {"request_extension": False}
        errors: dict[str, list[str]] = {}
        days = data.get("extension_days")
        reason = str(data.get("extension_reason") or "").strip()
        if days is None:
            errors["extension_days"] = [
                _msg(actor, "Give the extension in days.", "请填写延期天数。")
            ]
        if not reason:
            errors["extension_reason"] = [
                _msg(actor, "Give the reason for the extension.", "请填写延期理由。")
            ]
        if errors:
            raise ValidationError("the extension request has errors", errors)
        reply = deadlines_of(uow, case.id).get("reply")
        if reply is None:
            raise ConflictError("the petition has no reply deadline")
        rounds = int(case.data.get("extension_round") or 0) + 1
        if rounds > MAX_EXTENSION_REQUESTS:
            raise ValidationError(
                "too many extension requests",
                {
                    "request_extension": [
                        _msg(
                            actor,
                            f"At most {MAX_EXTENSION_REQUESTS} extension requests per petition: "
                            "too many requests; reply within the deadline or escalate to the "
                            "street for coordination.",
                            f"每件最多申请延期{MAX_EXTENSION_REQUESTS}次，申请次数已达上限，"
                            "请在期限内办结或报街道协调。",
                        )
                    ]
                },
            )
        try:
            extend(
                reply.due_on,
                int(days or 0),
                load_calendar(uow),
                previous_extensions=1 if p.extension_approved_on is not None else 0,
            )
        except RuleViolation as exc:
            field = "request_extension" if exc.field == "extension" else "extension_days"
            raise _violation(exc, actor, field) from exc
        p.extension_days = int(days or 0)
        p.extension_reason = reason
        return {"request_extension": True, "extension_round": rounds}

    def _approve_extension(
        self, ctx: HookContext, case: Case, p: Petition, data: dict[str, Any]
    ) -> dict[str, Any]:
        uow, actor = ctx.uow, ctx.actor
        approved_on = _business_date(ctx, data, "approved_on", p.decided_on)
        extra: dict[str, Any] = {"approved_on": approved_on.isoformat(), "request_extension": False}
        reply = deadlines_of(uow, case.id).get("reply")
        if reply is None or p.extension_days is None:
            raise ConflictError("there is no extension request to decide")
        if not data["approve"]:
            record_case_event(
                uow,
                case,
                "petition.extension_refused",
                actor_id=actor.user_id,
                at=ctx.now,
                detail={"days": p.extension_days},
            )
            p.extension_days = None
            return extra
        if approved_on > reply.due_on:
            raise ValidationError(
                "an extension must be approved before the reply deadline",
                {
                    "approved_on": [
                        _msg(
                            actor,
                            f"The reply was due on {reply.due_on}; an extension must be approved "
                            "before the deadline (信访工作条例 Art. 34).",
                            f"答复期限为 {reply.due_on}，延期须在期限届满前批准"
                            "（《信访工作条例》第三十四条）。",
                        )
                    ]
                },
            )
        try:
            moved = extend(
                reply.due_on,
                p.extension_days,
                load_calendar(uow),
                previous_extensions=1 if p.extension_approved_on is not None else 0,
            )
        except RuleViolation as exc:
            raise _violation(exc, actor, "approve") from exc
        original = reply.due_on
        set_deadline(
            uow,
            case,
            "reply",
            moved,
            source="信访工作条例 Art. 34 (延期 extension approved)",
            unit_id=p.responsible_unit_id,
        )
        p.extension_approved_on = approved_on
        record_case_event(
            uow,
            case,
            "petition.extension_approved",
            actor_id=actor.user_id,
            at=ctx.now,
            detail={
                "days": p.extension_days,
                "from": original.isoformat(),
                "to": moved.due_on.isoformat(),
            },
        )
        extra["reply_due_on"] = moved.due_on.isoformat()
        return extra

    def _draft_reply(
        self, ctx: HookContext, case: Case, p: Petition, data: dict[str, Any]
    ) -> dict[str, Any]:
        p.outcome = ReplyOutcome(data["outcome"]).value
        p.reply_text = data.get("reply_text")
        p.legal_basis = data.get("legal_basis")
        return {}

    def _approve_reply(
        self, ctx: HookContext, case: Case, p: Petition, data: dict[str, Any]
    ) -> dict[str, Any]:
        if not data["approve"]:
            if (p.reply_returns or 0) >= MAX_REPLY_RETURNS:
                raise ValidationError(
                    "too many returns",
                    {
                        "approve": [
                            _msg(
                                ctx.actor,
                                f"The reply was already returned {MAX_REPLY_RETURNS} times "
                                "(the limit): too many returns; escalate to the street for "
                                "coordination.",
                                f"处理意见已退回{MAX_REPLY_RETURNS}次，退回次数已达上限，"
                                "请报街道协调。",
                            )
                        ]
                    },
                )
            p.reply_returns = (p.reply_returns or 0) + 1
        return {"approve": bool(data["approve"]), "reply_returns": p.reply_returns or 0}

    def _deliver_reply(
        self, ctx: HookContext, case: Case, p: Petition, data: dict[str, Any]
    ) -> dict[str, Any]:
        uow = ctx.uow
        delivered_on = _business_date(
            ctx, data, "delivered_on", p.extension_approved_on or p.decided_on
        )
        p.delivered_on = delivered_on
        p.delivery_method = DeliveryMethod(data["delivery_method"]).value
        meet_deadline(uow, case, "reply", delivered_on)
        meet_deadline(uow, case, "assigned", delivered_on)
        calendar = load_calendar(uow)
        window = evaluation_window_end(
            delivered_on, calendar, int(get_setting(uow, "evaluation_window_days"))
        )
        set_deadline(
            uow,
            case,
            "evaluation_window",
            window,
            source=PETITION_RULES["evaluation_window"].source,
            unit_id=p.unit_id,
        )
        review = request_window_end(delivered_on, calendar, ReviewLevel.review)
        set_deadline(
            uow,
            case,
            "review_request_window",
            review,
            source=PETITION_RULES["review_request_window"].source,
            unit_id=p.unit_id,
        )
        p.status = "replied"
        return {
            "delivered_on": delivered_on.isoformat(),
            "evaluation_due_on": window.due_on.isoformat(),
            "evaluation_timer_at": _timer_at(window.due_on),
        }

    def _record_evaluation(
        self, ctx: HookContext, case: Case, p: Petition, data: dict[str, Any]
    ) -> dict[str, Any]:
        uow, actor = ctx.uow, ctx.actor
        evaluated_on = _business_date(ctx, data, "evaluated_on", p.delivered_on)
        window = deadlines_of(uow, case.id).get("evaluation_window")
        if window is not None and evaluated_on > window.due_on:
            raise ValidationError(
                "the evaluation window had ended",
                {
                    "evaluated_on": [
                        _msg(
                            actor,
                            f"The evaluation window ended on {window.due_on}.",
                            f"评价期限已于 {window.due_on} 届满。",
                        )
                    ]
                },
            )
        meet_deadline(uow, case, "evaluation_window", evaluated_on)
        p.rating = Rating(data["rating"]).value
        p.evaluated_on = evaluated_on
        if p.status == "replied":
            p.status = "evaluated"
            p.closed_on = evaluated_on
        return {"evaluated_on": evaluated_on.isoformat()}


def close_unevaluated(uow: UnitOfWork, case: Case, petition: Petition, now: datetime) -> None:
    """The evaluation window passed without an evaluation: the petition closes as not evaluated."""
    window = deadlines_of(uow, case.id).get("evaluation_window")
    if window is not None and window.met_on is None:
        window.state = "missed"
    if petition.status == "replied":
        petition.status = "not_evaluated"
        petition.closed_on = window.due_on if window is not None else _local(now)
        record_case_event(
            uow,
            case,
            "petition.not_evaluated",
            actor_id=None,
            at=now,
            detail={"window_end": window.due_on.isoformat() if window else None},
        )


# Lapsed windows closed per transaction.
WINDOW_BATCH = 500


def close_lapsed_windows(services: Services, now: datetime | None = None) -> int:
    """Close petition windows that lapsed unused, before the red warnings run (no 督办 for them).

    Set-based: one UPDATE marks a batch of lapsed windows missed (and returns only the rows it
    changed, so a concurrent scheduler never closes a window twice); petitions still awaiting
    an evaluation whose window lapsed then close as not evaluated, as `close_unevaluated` does.
    """
    now = now or services.clock.now()
    today = _local(now)
    lapsed = and_(
        Deadline.kind.in_(WINDOW_KINDS),
        Deadline.state == "pending",
        Deadline.due_on < today,
        Case.case_type == PETITION_TYPE,
    )
    closed = 0
    floor: int | None = None
    while True:
        with services.uow() as uow:
            # The ids first, from the (kind, due_on, state) index: ordering by id in the same
            # query makes SQLite walk every deadline in id order (issue 10, 1M deadlines).
            # A later round takes the windows added meanwhile, as paging by id did.
            found = select(Deadline.id).join(Case, Case.id == Deadline.case_id).where(lapsed)
            if floor is not None:
                found = found.where(Deadline.id > floor)
            ids = sorted(uow.session.scalars(found))
        if not ids:
            return closed
        floor = ids[-1] if floor is None else max(floor, ids[-1])
        for start in range(0, len(ids), WINDOW_BATCH):
            closed += _close_windows(services, ids[start : start + WINDOW_BATCH], today, now)


def _close_windows(services: Services, ids: Sequence[int], today: date, now: datetime) -> int:
    """Mark these windows missed if still pending and lapsed, in one transaction; how many."""
    with services.uow() as uow:
        changed = uow.session.execute(
            update(Deadline)
            .where(
                Deadline.id.in_(ids),
                Deadline.kind.in_(WINDOW_KINDS),
                Deadline.state == "pending",
                Deadline.due_on < today,
            )
            .values(state="missed")
            .returning(Deadline.case_id, Deadline.kind, Deadline.due_on)
            .execution_options(synchronize_session=False)
        ).all()
        window_ends = {cid: due for cid, kind, due in changed if kind == "evaluation_window"}
        if window_ends:
            _close_unevaluated_many(uow, window_ends, now)
        uow.commit()
    return len(changed)


def _close_unevaluated_many(
    uow: UnitOfWork, window_ends: Mapping[int, date], now: datetime
) -> None:
    """`close_unevaluated` for many petitions whose evaluation window (ending on the date given
    per case id) was just marked missed: each closes with its audit event, in a few statements.

    Rows are read and written with Core, a statement per table for the whole batch (ORM rows
    would be loaded whole and the versioned case rows updated one by one); each case row is
    still written only if its version is the one read, as the ORM does."""
    session = uow.session
    heads = {
        cid: Case(id=cid, version=version, audit_seq=seq, audit_hash=digest)
        for cid, version, seq, digest in session.execute(
            select(Case.id, Case.version, Case.audit_seq, Case.audit_hash)
            .join(Petition, Petition.case_id == Case.id)
            .where(Case.id.in_(list(window_ends)), Petition.status == "replied")
            .order_by(Case.id)
        )
    }
    if not heads:
        return
    closing: list[dict[str, Any]] = []
    written: list[dict[str, Any]] = []
    for cid, head in heads.items():  # detached copies of the audit heads: never flushed
        window_end = window_ends[cid]
        record_case_event(
            uow,
            head,
            "petition.not_evaluated",
            actor_id=None,
            at=now,
            detail={"window_end": window_end.isoformat()},
        )
        closing.append({"b_id": cid, "b_closed_on": window_end})
        written.append(
            {
                "b_id": cid,
                "b_version": head.version,
                "b_seq": head.audit_seq,
                "b_hash": head.audit_hash,
            }
        )
    petitions = cast(Table, Petition.__table__)
    cases = cast(Table, Case.__table__)
    conn = session.connection()
    moved = conn.execute(
        update(petitions)
        .where(petitions.c.case_id == bindparam("b_id"), petitions.c.status == "replied")
        .values(status="not_evaluated", closed_on=bindparam("b_closed_on")),
        closing,
    ).rowcount
    bumped = conn.execute(
        update(cases)
        .where(cases.c.id == bindparam("b_id"), cases.c.version == bindparam("b_version"))
        .values(
            audit_seq=bindparam("b_seq"),
            audit_hash=bindparam("b_hash"),
            version=cases.c.version + 1,
        ),
        written,
    ).rowcount
    if moved != len(closing) or bumped != len(written):
        raise ConflictError("a petition changed meanwhile; its window closes on the next run")


# -- review and re-review ---------------------------------------------------------------------


def _parent_unit(uow: UnitOfWork, unit_id: int | None) -> Unit | None:
    if unit_id is None:
        return None
    unit = uow.session.get(Unit, unit_id)
    if unit is None:
        return None
    if unit.parent_id is None:
        return unit
    return uow.session.get(Unit, unit.parent_id) or unit


def request_review(
    services: Services, actor: Actor, petition_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    """POST /petitions/{id}/review-requests: a review (Art. 35) or re-review (Art. 36) request."""
    now = services.clock.now()
    today = local_today(services.clock)
    level = ReviewLevel(body["level"])
    requested_on = _parse_date(body.get("requested_on")) or today
    with services.uow() as uow, conflicts_as_409():
        case = get_case_row(uow, actor, petition_id)
        p = uow.session.get(Petition, case.id)
        if p is None:
            raise NotFoundError("petition not found")
        office = uow.session.get(Unit, p.unit_id)
        if not actor.covers(office.path if office else None, ["intake", "leader"]):
            raise PermissionDeniedError("only the petition office records review requests")
        if p.not_to_be_accepted_again or p.status == "terminated":
            raise ConflictError(
                "the petition was terminated after re-review (信访工作条例 Art. 36)"
            )
        existing = {
            r.level: r
            for r in uow.session.scalars(
                select(PetitionReview).where(PetitionReview.petition_id == p.case_id)
            )
        }
        if level.value in existing:
            raise ConflictError(f"a {level.value} was already requested for this petition")
        if level is ReviewLevel.review:
            if p.delivered_on is None:
                raise ConflictError("no reply has been delivered yet; nothing to review")
            start = p.delivered_on
            review_unit = _parent_unit(uow, p.responsible_unit_id or p.unit_id)
            window_kind, decision_kind = "review_request_window", "review_decision"
        else:
            previous = existing.get(ReviewLevel.review.value)
            if previous is None or previous.delivered_on is None:
                raise ConflictError(
                    "no review opinion has been delivered yet; nothing to re-review"
                )
            start = previous.delivered_on
            review_unit = _parent_unit(uow, previous.review_unit_id)
            window_kind, decision_kind = "re_review_request_window", "re_review_decision"
        assert review_unit is not None
        try:
            check_business_date(requested_on, today=today, not_before=start, field="requested_on")
        except RuleViolation as exc:
            raise _violation(exc, actor) from exc
        calendar = load_calendar(uow)
        window = deadlines_of(uow, case.id).get(window_kind)
        window_end = (
            window.due_on
            if window is not None
            else request_window_end(start, calendar, level).due_on
        )
        if requested_on > window_end:
            article = "35" if level is ReviewLevel.review else "36"
            raise ValidationError(
                f"the {level.value} request window ended on {window_end}",
                {
                    "requested_on": [
                        _msg(
                            actor,
                            f"The {level.label('en').lower()} request window ended on "
                            f"{window_end} (30 days, 信访工作条例 Art. {article}).",
                            f"{level.label('zh')}申请期限已于 {window_end} 届满"
                            f"（30日，《信访工作条例》第三十{'五' if article == '35' else '六'}"
                            "条）。",
                        )
                    ],
                    "window_end": [window_end.isoformat()],
                },
            )
        meet_deadline(uow, case, window_kind, requested_on)
        due = decision_due(requested_on, calendar, level)
        set_deadline(
            uow,
            case,
            decision_kind,
            due,
            source=PETITION_RULES[decision_kind].source,
            unit_id=review_unit.id,
        )
        review_type = services.case_types.get(REVIEW_TYPE)
        child, _snap = start_case(
            services,
            uow,
            actor,
            review_type,
            unit_id=review_unit.id,
            data={
                "petition_id": p.case_id,
                "petition_case_no": case.case_no,
                "level": level.value,
                "requested_on": requested_on.isoformat(),
                "review_unit_id": review_unit.id,
                "decision_due_on": due.due_on.isoformat(),
            },
            title=f"{level.label('zh')}：{case.case_no} {p.subject}",
            now=now,
            parent_case_id=case.id,
        )
        review = PetitionReview(
            petition_id=p.case_id,
            case_id=child.id,
            level=level.value,
            requested_on=requested_on,
            window_end=window_end,
            decision_due_on=due.due_on,
            review_unit_id=review_unit.id,
            created_at=now,
        )
        uow.session.add(review)
        p.status = "under_review" if level is ReviewLevel.review else "under_re_review"
        record_case_event(
            uow,
            case,
            f"petition.{level.value}_requested",
            actor_id=actor.user_id,
            at=now,
            detail={
                "requested_on": requested_on.isoformat(),
                "decision_due_on": due.due_on.isoformat(),
                "review_case_id": child.id,
                "review_case_no": child.case_no,
            },
        )
        uow.session.flush()
        uow.commit()
        return review_view(review, child.case_no)


def review_view(review: PetitionReview, case_no: str | None = None) -> dict[str, Any]:
    """A review or re-review as the API shows it."""
    return {
        "id": review.id,
        "petition_id": review.petition_id,
        "case_id": review.case_id,
        "case_no": case_no,
        "level": review.level,
        "requested_on": review.requested_on,
        "window_end": review.window_end,
        "decision_due_on": review.decision_due_on,
        "review_unit_id": review.review_unit_id,
        "outcome": review.outcome,
        "decided_on": review.decided_on,
        "delivered_on": review.delivered_on,
    }


class ReviewHooks:
    """`decide_review`: the decision's dates, the petition's deadlines, termination after 复核."""

    def before_complete(
        self, ctx: HookContext, case: Case, task: Task, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Record the review opinion on the petition; a re-review terminates it (Art. 36)."""
        uow = ctx.uow
        review = uow.session.scalars(
            select(PetitionReview).where(PetitionReview.case_id == case.id)
        ).first()
        if review is None or task.bpmn_id != "decide_review":
            return {}
        decided_on = _business_date(ctx, data, "decided_on", review.requested_on)
        delivered_on = _business_date(ctx, data, "delivered_on", decided_on)
        review.outcome = ReviewOutcome(data["outcome"]).value
        review.decided_on = decided_on
        review.delivered_on = delivered_on
        petition_case = uow.session.get(Case, review.petition_id)
        petition = uow.session.get(Petition, review.petition_id)
        if petition_case is None or petition is None:
            raise NotFoundError("petition not found")
        if review.level == ReviewLevel.review.value:
            meet_deadline(uow, petition_case, "review_decision", decided_on)
            window = request_window_end(delivered_on, load_calendar(uow), ReviewLevel.re_review)
            set_deadline(
                uow,
                petition_case,
                "re_review_request_window",
                window,
                source=PETITION_RULES["re_review_request_window"].source,
                unit_id=petition.unit_id,
            )
            if petition.status == "under_review":
                petition.status = "reviewed"
            record_case_event(
                uow,
                petition_case,
                "petition.review_decided",
                actor_id=ctx.actor.user_id,
                at=ctx.now,
                detail={
                    "outcome": review.outcome,
                    "decided_on": decided_on.isoformat(),
                    "delivered_on": delivered_on.isoformat(),
                    "re_review_window_end": window.due_on.isoformat(),
                },
            )
        else:
            meet_deadline(uow, petition_case, "re_review_decision", decided_on)
            terminate_petition(ctx, petition_case, petition, review, decided_on)
        uow.session.flush()
        return {"decided_on": decided_on.isoformat(), "delivered_on": delivered_on.isoformat()}

    def after_complete(
        self,
        ctx: HookContext,
        case: Case,
        task: Task,
        data: Mapping[str, Any],
        snapshot: Snapshot,
    ) -> None:
        """Nothing more: the petition was updated before the workflow moved."""

    def task_due(self, ctx: HookContext, case: Case, task: HumanTask) -> datetime | None:
        """The decision's due date from the workflow data (Art. 35/36: 30 days)."""
        return task.due_at


def terminate_petition(
    ctx: HookContext, case: Case, petition: Petition, review: PetitionReview, decided_on: date
) -> None:
    """After the re-review decision the petition ends; its facts are not accepted again."""
    uow = ctx.uow
    if case.status not in CLOSED_STATUSES:
        deployed = ctx.services.definitions.get(uow, case.definition_id)
        snapshot = ctx.services.runtime.cancel(deployed.definition, case.state)
        apply_snapshot(ctx, case, ctx.services.case_types.get(PETITION_TYPE), snapshot)
    case.status = "terminated"
    case.closed_at = case.closed_at or ctx.now
    petition.status = "terminated"
    petition.not_to_be_accepted_again = True
    petition.closed_on = decided_on
    record_case_event(
        uow,
        case,
        "petition.terminated",
        actor_id=ctx.actor.user_id,
        at=ctx.now,
        detail={
            "outcome": review.outcome,
            "decided_on": decided_on.isoformat(),
            "rule": "信访工作条例 Art. 36: same facts and reasons not accepted again",
        },
    )


# -- reading ----------------------------------------------------------------------------------


def _scope(actor: Actor) -> Any:
    """Petitions registered at, handled by or about a unit where the actor holds a role."""
    return or_(
        unit_scope(actor, Petition.unit_id, PETITION_ROLES),
        unit_scope(actor, Petition.responsible_unit_id, PETITION_ROLES),
        unit_scope(actor, Petition.village_id, PETITION_ROLES),
    )


def _petitioner_view(row: Petitioner, whole: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "id_number": (whole or {}).get("id_number", row.id_number_masked),
        "phone": (whole or {}).get("phone", row.phone_masked),
        "address": row.address,
        "is_representative": row.is_representative,
    }


def _base_view(p: Petition, case_no: str, lang: str) -> dict[str, Any]:
    return {
        "id": p.case_id,
        "case_id": p.case_id,
        "case_no": case_no,
        "status": p.status,
        "status_label": status_label(p.status, lang),
        "channel": p.channel,
        "category": p.category,
        "source": p.source,
        "received_on": p.received_on,
        "subject": p.subject,
        "unit_id": p.unit_id,
        "village_id": p.village_id,
        "responsible_unit_id": p.responsible_unit_id,
        "headcount": p.headcount,
        "repeat_of_id": p.repeat_of_id,
        "not_to_be_accepted_again": p.not_to_be_accepted_again,
        "decision": p.decision,
        "decided_on": p.decided_on,
        "delivered_on": p.delivered_on,
        "rating": p.rating,
        "evaluated_on": p.evaluated_on,
        "closed_on": p.closed_on,
    }


def petition_view(
    uow: UnitOfWork,
    p: Petition,
    case: Case,
    actor: Actor,
    *,
    with_timeline: bool = True,
    whole: Mapping[int, Mapping[str, str]] | None = None,
    registered: Sequence[Petitioner] | None = None,
) -> dict[str, Any]:
    """A petition with petitioners (masked unless revealed), deadlines, tasks and reviews.

    `registered`: the petition was registered in this transaction, with these petitioner
    rows (flushed); it has no reviews or supervisions yet, and its deadlines are the rows
    this transaction set."""
    session = uow.session
    view = _base_view(p, case.case_no, _lang(actor))
    if registered is not None:
        people: Sequence[Petitioner] = sorted(registered, key=lambda r: r.position)
    else:
        people = session.scalars(
            select(Petitioner)
            .where(Petitioner.petition_id == p.case_id)
            .order_by(Petitioner.position)
        ).all()
    tasks = session.scalars(
        select(Task).where(Task.case_id == p.case_id, Task.status == "open").order_by(Task.id)
    ).all()
    reviews: Sequence[Any] = []
    supervisions: Sequence[Any] = []
    if registered is not None:
        deadlines: Sequence[Deadline] = case_deadlines(uow, case)
    else:
        deadlines = session.scalars(
            select(Deadline)
            .where(Deadline.case_id == p.case_id)
            .order_by(Deadline.due_on, Deadline.id)
        ).all()
        reviews = session.execute(
            select(PetitionReview, Case.case_no)
            .join(Case, Case.id == PetitionReview.case_id)
            .where(PetitionReview.petition_id == p.case_id)
            .order_by(PetitionReview.id)
        ).all()
        supervisions = session.execute(
            select(PetitionSupervision, Case.case_no, Case.status)
            .join(Case, Case.id == PetitionSupervision.case_id)
            .where(PetitionSupervision.petition_id == p.case_id)
            .order_by(PetitionSupervision.id)
        ).all()
    view.update(
        case_status=case.status,
        version=case.version,
        request=p.request,
        facts=p.facts,
        reasons=p.reasons,
        assigned_ref=p.assigned_ref,
        assigned_due_on=p.assigned_due_on,
        proxy_agent=p.proxy_agent,
        reception_id=p.reception_id,
        decision_reason=p.decision_reason,
        forward_to=p.forward_to,
        handling_method=p.handling_method,
        extension_days=p.extension_days if p.extension_approved_on else None,
        extension_approved_on=p.extension_approved_on,
        outcome=p.outcome,
        reply_text=p.reply_text,
        legal_basis=p.legal_basis,
        delivery_method=p.delivery_method,
        reply_returns=p.reply_returns,
        petitioners=[_petitioner_view(r, (whole or {}).get(r.id)) for r in people],
        deadlines=[deadline_view(d) for d in deadlines],
        open_tasks=[task_summary(t) for t in tasks],
        reviews=[review_view(r, no) for r, no in reviews],
        supervisions=[
            {
                "id": s.id,
                "case_id": s.case_id,
                "case_no": no,
                "case_status": st,
                "deadline_kind": s.deadline_kind,
                "due_on": s.due_on,
                "opened_on": s.opened_on,
                "method": s.method,
                "instructed_on": s.instructed_on,
                "notes": s.notes,
            }
            for s, no, st in supervisions
        ],
    )
    if with_timeline:
        view["timeline"] = case_timeline(uow, p.case_id)
    return view


def get_petition(
    services: Services, actor: Actor, petition_id: int, *, reveal: bool = False
) -> dict[str, Any]:
    """GET /petitions/{id}: the petition with its timeline; whole ID/phone only if allowed."""
    now = services.clock.now()
    # A reveal writes its audit event, even on GET.
    with services.uow(write=reveal) as uow, conflicts_as_409():
        row = uow.session.execute(
            select(Petition, Case, Unit.path)
            .join(Case, Case.id == Petition.case_id)
            .join(Unit, Unit.id == Petition.unit_id)
            .where(Petition.case_id == petition_id, _scope(actor))
        ).first()
        if row is None:
            raise NotFoundError("petition not found")
        p, case, path = row
        whole: dict[int, dict[str, str]] = {}
        if reveal:
            if not pii.may_reveal(actor, path):
                raise PermissionDeniedError("your role may not see whole ID or phone numbers")
            cipher = pii.cipher_for(services.settings)
            people = uow.session.scalars(
                select(Petitioner).where(Petitioner.petition_id == p.case_id)
            ).all()
            for person in people:
                values: dict[str, str] = {}
                if person.id_number_enc:
                    values["id_number"] = cipher.decrypt(person.id_number_enc)
                if person.phone_enc:
                    values["phone"] = cipher.decrypt(person.phone_enc)
                whole[person.id] = values
            pii.record_reveal(
                uow,
                case,
                actor,
                petitioner_ids=sorted(whole),
                fields=["id_number", "phone"],
                now=now,
            )
            uow.commit()
        return petition_view(uow, p, case, actor, whole=whole)


@dataclass(frozen=True)
class PetitionFilter:
    """Filters of GET /petitions."""

    status: str | None = None
    village_id: int | None = None
    overdue: bool | None = None
    q: str | None = None
    received_from: date | None = None
    received_to: date | None = None
    unit_id: int | None = None
    page: int = 1
    per_page: int = 50


def _overdue(today: date) -> Any:
    return exists().where(
        Deadline.case_id == Petition.case_id,
        Deadline.kind.in_(SUPERVISED_KINDS),
        Deadline.met_on.is_(None),
        Deadline.due_on < today,
    )


def list_petitions(services: Services, actor: Actor, flt: PetitionFilter) -> dict[str, Any]:
    """Petitions in scope, newest received first, with masked petitioners and next due date."""
    today = local_today(services.clock)
    per_page = max(1, min(flt.per_page, MAX_PER_PAGE))
    page = max(1, flt.page)
    lang = _lang(actor)
    with services.uow() as uow:
        stmt = (
            select(Petition, Case.case_no)
            .join(Case, Case.id == Petition.case_id)
            .where(_scope(actor))
        )
        if flt.status:
            stmt = stmt.where(Petition.status == flt.status)
        if flt.village_id is not None:
            stmt = stmt.where(Petition.village_id == flt.village_id)
        if flt.unit_id is not None:
            sub = select(Unit.id).where(
                Unit.path.startswith(
                    select(Unit.path).where(Unit.id == flt.unit_id).scalar_subquery()
                )
            )
            stmt = stmt.where(
                or_(
                    Petition.unit_id.in_(sub),
                    Petition.village_id.in_(sub),
                    Petition.responsible_unit_id.in_(sub),
                )
            )
        if flt.received_from is not None:
            stmt = stmt.where(Petition.received_on >= flt.received_from)
        if flt.received_to is not None:
            stmt = stmt.where(Petition.received_on <= flt.received_to)
        if flt.overdue is True:
            stmt = stmt.where(_overdue(today))
        elif flt.overdue is False:
            stmt = stmt.where(~_overdue(today))
        if flt.q:
            text = flt.q.strip()
            stmt = stmt.where(
                or_(
                    Petition.subject.contains(text, autoescape=True),
                    Case.case_no.contains(text, autoescape=True),
                    Petition.case_id.in_(
                        select(Petitioner.petition_id).where(Petitioner.name == text)
                    ),
                )
            )
        total = uow.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
        rows = uow.session.execute(
            stmt.order_by(Petition.received_on.desc(), Petition.case_id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        ids = [p.case_id for p, _no in rows]
        people: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        next_due: dict[int, tuple[date, str]] = {}
        overdue_ids: set[int] = set()
        if ids:
            for person in uow.session.scalars(
                select(Petitioner)
                .where(Petitioner.petition_id.in_(ids))
                .order_by(Petitioner.petition_id, Petitioner.position)
            ):
                people[person.petition_id].append(_petitioner_view(person))
            for d in uow.session.scalars(
                select(Deadline)
                .where(
                    Deadline.case_id.in_(ids),
                    Deadline.kind.in_(SUPERVISED_KINDS),
                    Deadline.met_on.is_(None),
                )
                .order_by(Deadline.due_on)
            ):
                next_due.setdefault(d.case_id, (d.due_on, d.kind))
                if d.due_on < today:
                    overdue_ids.add(d.case_id)
        items = []
        for p, case_no in rows:
            item = _base_view(p, case_no, lang)
            due = next_due.get(p.case_id)
            item.update(
                petitioners=people.get(p.case_id, []),
                next_due_on=due[0] if due else None,
                next_due_kind=due[1] if due else None,
                overdue=p.case_id in overdue_ids,
            )
            items.append(item)
        return {"items": items, "total": int(total or 0), "page": page, "per_page": per_page}


# -- receptions -------------------------------------------------------------------------------


def record_reception(services: Services, actor: Actor, body: Mapping[str, Any]) -> dict[str, Any]:
    """POST /receptions: a leader reception day or field visit, with the petitions it met."""
    now = services.clock.now()
    today = local_today(services.clock)
    with services.uow() as uow:
        session = uow.session
        errors: dict[str, list[str]] = {}
        kind = ReceptionKind(body["kind"])
        held_on = _parse_date(body.get("held_on")) or today
        if held_on > today:
            errors["held_on"] = [
                _msg(actor, f"{held_on} is in the future.", f"{held_on} 晚于今天。")
            ]
        unit = _office_for(uow, actor, body.get("unit_id"), None)
        if not actor.covers(unit.path, ["intake", "leader"]):
            raise PermissionDeniedError("only the petition office or a leader records receptions")
        leader_id = int(body["leader_user_id"])
        leader = session.get(User, leader_id)
        holds_leader = session.scalar(
            select(func.count())
            .select_from(RoleAssignment)
            .where(RoleAssignment.user_id == leader_id, RoleAssignment.role == "leader")
        )
        if leader is None or not holds_leader:
            errors["leader_user_id"] = [_msg(actor, "Not a leader.", "该用户不是领导。")]
        petition_ids = sorted({int(x) for x in body.get("petition_ids") or []})
        if petition_ids:
            found = set(
                session.scalars(
                    select(Petition.case_id).where(
                        Petition.case_id.in_(petition_ids), _scope(actor)
                    )
                )
            )
            missing = [i for i in petition_ids if i not in found]
            if missing:
                errors["petition_ids"] = [
                    _msg(actor, f"Unknown petitions: {missing}.", f"信访件不存在：{missing}。")
                ]
        if errors:
            raise ValidationError("the reception has errors", errors)
        reception = Reception(
            kind=kind.value,
            held_on=held_on,
            leader_user_id=leader_id,
            unit_id=unit.id,
            person_count=int(body["person_count"]),
            notes=body.get("notes"),
            created_by_id=actor.user_id or None,
            created_at=now,
        )
        session.add(reception)
        session.flush()
        for pid in petition_ids:
            session.add(ReceptionPetition(reception_id=reception.id, petition_id=pid))
        record_event(
            uow,
            "reception.recorded",
            actor_id=actor.user_id,
            at=now,
            detail={
                "reception_id": reception.id,
                "kind": kind.value,
                "held_on": held_on.isoformat(),
                "person_count": reception.person_count,
            },
        )
        session.flush()
        uow.commit()
        return reception_view(reception, petition_ids, leader.display_name if leader else None)


def reception_view(
    r: Reception, petition_ids: Sequence[int], leader_name: str | None
) -> dict[str, Any]:
    """A reception as the API shows it."""
    return {
        "id": r.id,
        "kind": r.kind,
        "held_on": r.held_on,
        "leader_user_id": r.leader_user_id,
        "leader_name": leader_name,
        "unit_id": r.unit_id,
        "person_count": r.person_count,
        "notes": r.notes,
        "petition_ids": list(petition_ids),
    }


def list_receptions(
    services: Services,
    actor: Actor,
    *,
    kind: str | None = None,
    held_from: date | None = None,
    held_to: date | None = None,
    page: int = 1,
    per_page: int = 50,
) -> dict[str, Any]:
    """Receptions and field visits in scope, newest first."""
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    with services.uow() as uow:
        stmt = (
            select(Reception, User.display_name)
            .join(User, User.id == Reception.leader_user_id)
            .where(unit_scope(actor, Reception.unit_id, PETITION_ROLES))
        )
        if kind:
            stmt = stmt.where(Reception.kind == kind)
        if held_from is not None:
            stmt = stmt.where(Reception.held_on >= held_from)
        if held_to is not None:
            stmt = stmt.where(Reception.held_on <= held_to)
        total = uow.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
        rows = uow.session.execute(
            stmt.order_by(Reception.held_on.desc(), Reception.id.desc())
            .limit(per_page)
            .offset((max(1, page) - 1) * per_page)
        ).all()
        ids = [r.id for r, _n in rows]
        links: dict[int, list[int]] = {i: [] for i in ids}
        if ids:
            for link in uow.session.scalars(
                select(ReceptionPetition).where(ReceptionPetition.reception_id.in_(ids))
            ):
                links[link.reception_id].append(link.petition_id)
        return {
            "items": [reception_view(r, sorted(links[r.id]), name) for r, name in rows],
            "total": int(total or 0),
        }


# -- KPIs (DOMAIN.md §3) ----------------------------------------------------------------------


def _scope_units(uow: UnitOfWork, period: Period) -> tuple[list[int], list[int]]:
    """The ids of the units under the period's unit, and of all the others."""
    rows = uow.session.execute(select(Unit.id, Unit.path)).all()
    inside = [uid for uid, path in rows if path.startswith(period.unit_path)]
    outside = [uid for uid, path in rows if not path.startswith(period.unit_path)]
    return inside, outside


def _in_period_scope(uow: UnitOfWork, period: Period) -> Any:
    """Petitions of the period's unit, as disjoint conditions each index can serve.

    A petition is in scope when its registering office (``unit_id``), its village or its
    responsible unit lies under the period's unit. Written as an OR of three ``IN`` columns
    it defeats every index, so the unit ids are resolved first (a few rows) and the scope is
    split on the registering office: office under the unit (one indexed column — the whole
    street or district), or office elsewhere and village or responsible unit under the unit
    (a village or department asking about the petitions it handles). Same rows, no overlap.
    """
    inside, outside = _scope_units(uow, period)
    own_office = Petition.unit_id.in_(inside)
    if not outside:
        return own_office
    return or_(
        own_office,
        and_(
            Petition.unit_id.in_(outside),
            or_(Petition.village_id.in_(inside), Petition.responsible_unit_id.in_(inside)),
        ),
    )


def petition_figures(uow: UnitOfWork, period: Period) -> dict[str, Figure]:
    """The petition KPIs of a period and unit, all SQL aggregates over indexed row sources."""
    session = uow.session
    scope = _in_period_scope(uow, period)
    start, end = period.date_from, period.date_to

    received, repeats = session.execute(
        select(
            func.count(),
            func.count(Petition.repeat_of_id),
        ).where(scope, Petition.received_on.between(start, end))
    ).one()

    satisfied_values = [Rating.satisfied.value]
    if bool(get_setting(uow, "basic_satisfied_counts")):
        satisfied_values.append(Rating.basically_satisfied.value)
    satisfied, evaluated = session.execute(
        select(
            func.count(case((Petition.rating.in_(satisfied_values), 1))),
            func.count(),
        ).where(scope, Petition.rating.is_not(None), Petition.evaluated_on.between(start, end))
    ).one()

    # Three disjoint row sources, each an index-only range:
    # - a deadline counts once it is settled: met (on time) or missed (late or lapsed);
    # - supervised: petitions with a supervision (督办) opened in the period;
    # - overdue at period end: a supervised deadline due before the end and not met by then
    #   (unmet and met-after-the-end are disjoint ranges of ix_deadlines_met_kind).
    overdue_due = (Deadline.kind.in_(SUPERVISED_KINDS), Deadline.due_on < end)
    late = union_all(
        select(Deadline.case_id).where(Deadline.met_on.is_(None), *overdue_due),
        select(Deadline.case_id).where(Deadline.met_on > end, *overdue_due),
    ).subquery()
    sources = (
        select(
            Deadline.case_id.label("petition_id"),
            Deadline.kind.label("part"),
            case((Deadline.state == "met", 1), else_=0).label("met"),
        ).where(
            Deadline.kind.in_(SETTLED_KINDS),
            Deadline.due_on.between(start, end),
            Deadline.state.in_(("met", "missed")),
        ),
        select(
            PetitionSupervision.petition_id.label("petition_id"),
            literal("supervised", String).label("part"),
            literal(0).label("met"),
        )
        .where(PetitionSupervision.opened_on.between(start, end))
        .distinct(),
        select(
            late.c.case_id.label("petition_id"),
            literal("overdue", String).label("part"),
            literal(0).label("met"),
        ).distinct(),
    )
    counts: dict[tuple[str, int], int] = {}
    if uow.dialect == "postgresql":
        # One hash of the in-scope petitions for all three sources.
        rows = union_all(*sources).subquery()
        grouped = [
            select(rows.c.part, rows.c.met, func.count())
            .join(Petition, Petition.case_id == rows.c.petition_id)
            .where(scope)
            .group_by(rows.c.part, rows.c.met)
        ]
    else:
        # SQLite nests loops: the deadline counts are split by scope (petition_counts), and the
        # supervisions of the period (a few rows) are joined plainly.
        counts.update(sqlite_deadline_counts(session, *_scope_units(uow, period), start, end))
        grouped = [
            select(
                literal("supervised", String), literal(0), func.count(distinct(Petition.case_id))
            )
            .join(PetitionSupervision, PetitionSupervision.petition_id == Petition.case_id)
            .where(scope, PetitionSupervision.opened_on.between(start, end)),
        ]
    for stmt in grouped:
        for part, met, n in session.execute(stmt):
            counts[(str(part), int(met))] = int(n)

    def settled(kind: str) -> Ratio:
        met = counts.get((kind, 1), 0)
        return Ratio(met, met + counts.get((kind, 0), 0))

    return {
        "received": int(received or 0),
        "accepted_on_time_rate": settled("acceptance_notice"),
        "replied_on_time_rate": settled("reply"),
        "evaluation_rate": settled("evaluation_window"),
        "satisfaction_rate": Ratio(int(satisfied or 0), int(evaluated or 0)),
        "repeat_petitions": int(repeats or 0),
        "supervised": counts.get(("supervised", 0), 0),
        "overdue_open": counts.get(("overdue", 0), 0),
    }


# -- registration -----------------------------------------------------------------------------

ENUM_CHOICES: Mapping[str, list[str]] = {
    "channel": [c.value for c in Channel],
    "category": [c.value for c in Category],
    "source": [s.value for s in Source],
    "status": list(STATUS_LABELS),
    "level": [level.value for level in ReviewLevel],
    "kind": [k.value for k in ReceptionKind],
}


def register_case_types(registry: CaseTypeRegistry) -> None:
    """Register `petition`, `petition_review` and `petition_supervision`, and the KPI section."""
    from engine.services.supervision import SUPERVISION_PREFIX, SUPERVISION_TYPE, SupervisionHooks

    registry.register(
        CaseType(
            name=PETITION_TYPE,
            process_id=PETITION_TYPE,
            prefix=PETITION_PREFIX,
            label_zh="信访件",
            label_en="Petition",
            hooks=PetitionHooks(),
            detail=Petition,
        )
    )
    registry.register(
        CaseType(
            name=REVIEW_TYPE,
            process_id=REVIEW_TYPE,
            prefix=REVIEW_PREFIX,
            label_zh="复查复核",
            label_en="Petition review",
            hooks=ReviewHooks(),
        )
    )
    registry.register(
        CaseType(
            name=SUPERVISION_TYPE,
            process_id=SUPERVISION_TYPE,
            prefix=SUPERVISION_PREFIX,
            label_zh="信访督办",
            label_en="Petition supervision",
            hooks=SupervisionHooks(),
        )
    )
    register_section("petitions", petition_figures)
