"""Cases of any type: start one, write a workflow snapshot back, read a case with its timeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine.bootstrap import Services
from engine.errors import NotFoundError, ValidationError
from engine.persistence.db import UnitOfWork
from engine.persistence.models import AuditEvent, Case, Counter, Deadline, Task, Timer, Unit, User
from engine.services.access import Actor, unit_scope
from engine.services.audit import record_case_event
from engine.services.case_types import CaseType, HookContext, case_visibility
from engine.services.deadlines import note_new_case
from engine.workflow import DataKeyError, Snapshot, compact_state

CLOSED_STATUSES = frozenset({"completed", "cancelled", "terminated"})


def next_case_no(uow: UnitOfWork, prefix: str, year: int) -> str:
    """Allocate `<prefix>-<year>-<6 digits>`: never given to two cases, and gap-free (a
    rolled-back transaction gives its number back)."""
    name = f"{prefix}-{year}"
    return f"{name}-{take_numbers(uow, name, 1):06d}"


def take_numbers(uow: UnitOfWork, name: str, count: int) -> int:
    """Advance the counter `name` by `count` and return its new value (the last number taken).

    One statement: the upsert creates the counter or advances it, and holds its row lock
    until the transaction ends, so two transactions never take the same numbers."""
    insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    counters = cast(Table, Counter.__table__)
    value = uow.session.connection().scalar(
        insert(counters)
        .values(name=name, value=count)
        .on_conflict_do_update(
            index_elements=[counters.c.name], set_={"value": counters.c.value + count}
        )
        .returning(counters.c.value)
    )
    return int(value or 0)


def start_case(
    services: Services,
    uow: UnitOfWork,
    actor: Actor,
    case_type: CaseType,
    *,
    unit_id: int,
    data: Mapping[str, Any],
    title: str = "",
    now: datetime,
    parent_case_id: int | None = None,
    case_no: str | None = None,
    events: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> tuple[Case, Snapshot]:
    """Start a case on the latest version of its process and materialize its first tasks.

    `events` (action, detail) are audited right after case.started, by the same actor, and
    written with it (one update of the case's audit head instead of one per event)."""
    session = uow.session
    if session.get(Unit, unit_id) is None:
        raise ValidationError("unknown unit", {"unit_id": ["Unknown unit."]})
    deployed = services.definitions.latest(uow, case_type.process_id)
    try:
        snapshot = services.runtime.start(deployed.definition, data)
    except DataKeyError as exc:
        raise ValidationError(str(exc), {"data": [str(exc)]}) from exc
    case = Case(
        case_type=case_type.name,
        case_no=case_no or next_case_no(uow, case_type.prefix, now.year),
        title=title[:300],
        unit_id=unit_id,
        status=snapshot.status,
        definition_id=deployed.id,
        state=snapshot.state,
        version=1,
        data=dict(snapshot.data),
        error=snapshot.error,
        audit_seq=0,
        audit_hash="",
        parent_case_id=parent_case_id,
        created_by_id=actor.user_id or None,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    note_new_case(uow, case)
    record_case_event(
        uow,
        case,
        "case.started",
        actor_id=actor.user_id,
        at=now,
        detail={"case_type": case_type.name, "definition": deployed.definition.sha256[:12]},
    )
    for action, detail in events:
        record_case_event(uow, case, action, actor_id=actor.user_id, at=now, detail=dict(detail))
    ctx = HookContext(services, uow, actor, now)
    apply_snapshot(ctx, case, case_type, snapshot, loaded=NEW_CASE)
    return case, snapshot


@dataclass(frozen=True)
class LoadedRows:
    """A case's open task rows and its timer row, already read by the caller's query."""

    open_tasks: Sequence[Task]
    timer: Timer | None
    # Rows read along (a case type's detail row): held here so the session's weak identity
    # map keeps them for the hooks' session.get until the unit of work ends.
    held: tuple[Any, ...] = ()


NEW_CASE = LoadedRows(open_tasks=(), timer=None)


def apply_snapshot(
    ctx: HookContext,
    case: Case,
    case_type: CaseType,
    snapshot: Snapshot,
    *,
    loaded: LoadedRows | None = None,
) -> list[Task]:
    """Write a snapshot back: state, status, task rows and the timer row; return new tasks.

    `loaded` spares the two reads of the open tasks and the timer when the caller has them."""
    uow, now = ctx.uow, ctx.now
    session = uow.session
    case.state = snapshot.state
    previous_status = case.status
    case.status = snapshot.status
    case.error = snapshot.error
    case.data = dict(snapshot.data)
    case.updated_at = now
    if snapshot.status in CLOSED_STATUSES and case.closed_at is None:
        case.closed_at = now
    if snapshot.status == "error" and previous_status != "error":
        record_case_event(
            uow,
            case,
            "case.error",
            actor_id=ctx.actor.user_id,
            at=now,
            detail={"error": snapshot.error},
        )

    if loaded is not None:
        open_rows: Sequence[Task] = loaded.open_tasks
    elif case.id is not None:
        open_rows = session.scalars(
            select(Task).where(Task.case_id == case.id, Task.status == "open")
        ).all()
    else:
        open_rows = []
    live = {t.id for t in snapshot.tasks}
    known = {row.spiff_id for row in open_rows}
    for row in open_rows:
        # The session does not autoflush: a task completed in this transaction still comes
        # back from the query above, with its new status in memory. Leave it completed.
        if row.status == "open" and row.spiff_id not in live:
            row.status = "cancelled"
            row.completed_at = now
    created: list[Task] = []
    for human in snapshot.tasks:
        if human.id in known:
            continue
        assignee_id = _resolve_assignee(uow, human.assignee)
        row = Task(
            case_id=case.id,
            spiff_id=human.id,
            bpmn_id=human.bpmn_id,
            name=human.name or human.bpmn_id,
            role=human.candidate_roles[0] if human.candidate_roles else None,
            unit_id=human.unit_id if human.unit_id is not None else case.unit_id,
            assignee_id=assignee_id,
            status="open",
            due_at=case_type.hooks.task_due(ctx, case, human),
            created_at=now,
        )
        session.add(row)
        created.append(row)

    timer = loaded.timer if loaded is not None else session.get(Timer, case.id)
    if snapshot.next_timer_at is not None:
        if timer is None:
            session.add(Timer(case_id=case.id, fire_at=snapshot.next_timer_at))
        elif timer.fire_at != snapshot.next_timer_at:
            timer.fire_at = snapshot.next_timer_at
    elif timer is not None:
        session.delete(timer)
    if created:
        session.flush()
        from engine.services.notify import notify_tasks_opened

        notify_tasks_opened(ctx, case, created)
    return created


def _resolve_assignee(uow: UnitOfWork, assignee: str | None) -> int | None:
    """`camunda:assignee` names a user by id or username; unknown names leave it unassigned."""
    if not assignee:
        return None
    if assignee.isdigit():
        return int(assignee) if uow.session.get(User, int(assignee)) is not None else None
    return uow.session.scalar(select(User.id).where(User.username == assignee))


def get_case_row(uow: UnitOfWork, actor: Actor, case_id: int) -> Case:
    """A case inside the caller's scope, else NotFoundError (404: never reveal it exists)."""
    visible = case_visibility(actor)
    case = uow.session.scalars(
        select(Case).where(Case.id == case_id, unit_scope(actor, Case.unit_id), visible)
    ).first()
    if case is None:
        # The case may sit outside the caller's units but hold a task for one of them.
        case = uow.session.scalars(
            select(Case).where(
                Case.id == case_id,
                Case.id.in_(select(Task.case_id).where(unit_scope(actor, Task.unit_id))),
                visible,
            )
        ).first()
    if case is None:
        raise NotFoundError("case not found")
    return case


def case_timeline(uow: UnitOfWork, case_id: int) -> list[dict[str, Any]]:
    """The case's audit events, oldest first, with the actor's display name."""
    rows = uow.session.execute(
        select(AuditEvent, User.display_name)
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .where(AuditEvent.case_id == case_id)
        .order_by(AuditEvent.seq)
    ).all()
    return [
        {
            "at": ev.at,
            "action": ev.action,
            "actor": name or "系统",
            "actor_id": ev.actor_id,
            "detail": ev.detail,
        }
        for ev, name in rows
    ]


def case_view(uow: UnitOfWork, case: Case, *, with_timeline: bool = True) -> dict[str, Any]:
    """A case as the API and the case page show it."""
    session = uow.session
    tasks = session.scalars(
        select(Task).where(Task.case_id == case.id, Task.status == "open").order_by(Task.id)
    ).all()
    deadlines = session.scalars(
        select(Deadline).where(Deadline.case_id == case.id).order_by(Deadline.due_on, Deadline.id)
    ).all()
    view: dict[str, Any] = {
        "id": case.id,
        "case_type": case.case_type,
        "case_no": case.case_no,
        "title": case.title,
        "unit_id": case.unit_id,
        "status": case.status,
        "error": case.error,
        "version": case.version,
        "data": case.data,
        "created_at": case.created_at,
        "updated_at": case.updated_at,
        "closed_at": case.closed_at,
        "open_tasks": [task_summary(t) for t in tasks],
        "deadlines": [deadline_view(d) for d in deadlines],
    }
    if with_timeline:
        view["timeline"] = case_timeline(uow, case.id)
    return view


def task_summary(task: Task) -> dict[str, Any]:
    """A task row as lists show it."""
    return {
        "id": task.id,
        "case_id": task.case_id,
        "bpmn_id": task.bpmn_id,
        "name": task.name,
        "role": task.role,
        "unit_id": task.unit_id,
        "assignee_id": task.assignee_id,
        "status": task.status,
        "due_at": task.due_at,
        "created_at": task.created_at,
        "completed_at": task.completed_at,
    }


def deadline_view(d: Deadline) -> dict[str, Any]:
    """A deadline as the API shows it."""
    return {
        "kind": d.kind,
        "due_on": d.due_on,
        "state": d.state,
        "met_on": d.met_on,
        "source": d.source,
        "calendar_unverified": d.calendar_unverified,
    }


def open_case(
    services: Services,
    actor: Actor,
    *,
    case_type: str,
    unit_id: int,
    data: Mapping[str, Any],
    title: str = "",
) -> dict[str, Any]:
    """POST /cases: start a case of any deployed type on a unit the caller may act for."""
    from engine.errors import PermissionDeniedError

    now = services.clock.now()
    with services.uow() as uow:
        unit = uow.session.get(Unit, unit_id)
        if unit is None:
            raise ValidationError("unknown unit", {"unit_id": ["Unknown unit."]})
        if not actor.covers(unit.path):
            raise PermissionDeniedError("you hold no role on this unit")
        ct = services.case_types.get(case_type)
        case, _snapshot = start_case(
            services, uow, actor, ct, unit_id=unit_id, data=data, title=title, now=now
        )
        uow.commit()
        return case_view(uow, case)


def get_case(services: Services, actor: Actor, case_id: int) -> dict[str, Any]:
    """GET /cases/{id}: status, open tasks, deadlines and timeline."""
    with services.uow() as uow:
        return case_view(uow, get_case_row(uow, actor, case_id))


def list_cases(
    services: Services,
    actor: Actor,
    *,
    case_type: str | None = None,
    status: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> dict[str, Any]:
    """Cases in the caller's scope, newest first."""
    from sqlalchemy import func

    with services.uow() as uow:
        stmt = select(Case).where(unit_scope(actor, Case.unit_id), case_visibility(actor))
        if case_type:
            stmt = stmt.where(Case.case_type == case_type)
        if status:
            stmt = stmt.where(Case.status == status)
        total = uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = uow.session.scalars(
            stmt.order_by(Case.id.desc()).limit(per_page).offset((page - 1) * per_page)
        ).all()
        return {"items": [case_view(uow, c, with_timeline=False) for c in rows], "total": total}


def case_diagram(services: Services, actor: Actor, case_id: int) -> dict[str, Any]:
    """The BPMN XML a case runs on, with the ids of its completed and active elements."""
    from engine.persistence.models import ProcessDefinition

    with services.uow() as uow:
        case = get_case_row(uow, actor, case_id)
        row = uow.session.get(ProcessDefinition, case.definition_id)
        if row is None:
            raise NotFoundError("process definition not found")
        deployed = services.definitions.get(uow, case.definition_id)
        snapshot = services.runtime.load(deployed.definition, case.state)
        return {
            "case_id": case.id,
            "process_id": row.process_id,
            "version": row.version,
            "xml": row.xml,
            "completed": list(snapshot.completed),
            "active": list(snapshot.active),
        }


# Cases read and rewritten per transaction by compact_states.
COMPACT_BATCH = 200


def compact_states(services: Services, *, batch: int = COMPACT_BATCH) -> dict[str, int]:
    """Rewrite every workflow state still stored in full (with its process spec, as written
    before the compact format) in the compact form: `fengqiao db compact-states`.

    Safe beside running workers and schedulers: a row is rewritten only if its version is
    still the one read, and the version is not bumped (the instance is the same); a case
    changed meanwhile was saved compact by that change. Resumable: compact rows are skipped.
    Returns counts and the bytes of state before and after."""
    counts = {"cases": 0, "compacted": 0, "bytes_before": 0, "bytes_after": 0}
    floor = 0
    while True:
        with services.uow() as uow:
            rows = uow.session.execute(
                select(Case.id, Case.definition_id, Case.version, Case.state)
                .where(Case.id > floor, Case.state != "")
                .order_by(Case.id)
                .limit(batch)
            ).all()
            if not rows:
                return counts
            floor = rows[-1][0]
            for case_id, definition_id, version, state in rows:
                counts["cases"] += 1
                if definition_id is None:
                    continue
                definition = services.definitions.get(uow, definition_id).definition
                compact = compact_state(state, definition)
                if compact is None:
                    continue
                written = uow.session.execute(
                    update(Case)
                    .where(Case.id == case_id, Case.version == version)
                    .values(state=compact)
                    .execution_options(synchronize_session=False)
                )
                if written.rowcount == 1:  # type: ignore[attr-defined]
                    counts["compacted"] += 1
                    counts["bytes_before"] += len(state)
                    counts["bytes_after"] += len(compact)
            uow.commit()
