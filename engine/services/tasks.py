"""Human tasks: list, read with the form, claim and complete (DESIGN.md §2, §7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import marshmallow
from sqlalchemy import (
    Integer,
    and_,
    bindparam,
    false,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.sql.elements import True_
from sqlalchemy.sql.util import ClauseAdapter

from engine.bootstrap import Services
from engine.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from engine.persistence.db import UnitOfWork, conflicts_as_409
from engine.persistence.models import Case, Task, Timer, Unit, User
from engine.services.access import Actor, path_under
from engine.services.audit import record_case_event
from engine.services.case_types import HookContext, case_visibility, is_restricted
from engine.services.cases import LoadedRows, apply_snapshot, task_summary
from engine.workflow import DataKeyError, TaskNotReadyError, form_schema, json_schema

MAX_PER_PAGE = 200


@dataclass(frozen=True)
class TaskFilter:
    """Filters of GET /api/v1/tasks."""

    mine: bool = False
    role: str | None = None
    case_id: int | None = None
    overdue: bool | None = None
    due_before: datetime | None = None
    status: str = "open"
    bpmn_id: str | None = None
    case_type: str | None = None
    unit_id: int | None = None
    page: int = 1
    per_page: int = 50


# Up to this many units in a grant's scope are passed to the task query as a list of ids.
SCOPE_LIST_MAX = 2000


def _units_under(uow: UnitOfWork, path: str) -> Any:
    """The units under `path`: their ids when few (the planner then reads only their open
    tasks through the (status, unit_id, role) index), else the subquery for a large scope."""
    under = select(Unit.id).where(path_under(path))
    ids = list(uow.session.scalars(under.limit(SCOPE_LIST_MAX + 1)))
    return ids if len(ids) <= SCOPE_LIST_MAX else under


def _visible(uow: UnitOfWork, actor: Actor) -> Any:
    """Tasks the actor may see: assigned to them, or open to a role they hold on a covering unit."""
    if actor.is_admin:
        return and_(True)
    conditions: list[Any] = [Task.assignee_id == actor.user_id]
    scopes: dict[str, Any] = {}
    for grant in actor.grants:
        if grant.unit_path is None:
            conditions.append(Task.role == grant.role)
        else:
            if grant.unit_path not in scopes:
                scopes[grant.unit_path] = _units_under(uow, grant.unit_path)
            under = scopes[grant.unit_path]
            conditions.append(and_(Task.role == grant.role, Task.unit_id.in_(under)))
    return or_(*conditions) if conditions else false()


@lru_cache(maxsize=1024)
def _case_visible(actor: Actor) -> Any:
    """`case_visibility`, evaluated per listed task on its own alias of cases.

    Joined to the listed tasks' cases directly, its key-person subqueries make PostgreSQL
    scan every case; as a per-task EXISTS it reads one case by primary key per task.
    Cached per actor (an immutable value): adapting the clause costs more than the query."""
    condition = case_visibility(actor)
    if condition is true() or isinstance(condition, True_):
        return condition
    own = Case.__table__.alias("visible_case")
    adapted = ClauseAdapter(own).traverse(condition)
    # A scalar subquery, not EXISTS: PostgreSQL may turn an EXISTS into a hash over every
    # case (it did at 100k cases); a correlated scalar subquery is read per listed task.
    return select(adapted.label("visible")).where(own.c.id == Task.case_id).scalar_subquery()


def list_tasks(uow: UnitOfWork, actor: Actor, flt: TaskFilter, now: datetime) -> dict[str, Any]:
    """My tasks or my roles' tasks, sorted by due date (earliest first, undated last)."""
    per_page = max(1, min(flt.per_page, MAX_PER_PAGE))
    page = max(1, flt.page)
    stmt = (
        select(Task, Case.case_no, Case.case_type, Case.title, Unit.name)
        .join(Case, Case.id == Task.case_id)
        .outerjoin(Unit, Unit.id == Task.unit_id)
        .where(_visible(uow, actor), or_(Task.assignee_id == actor.user_id, _case_visible(actor)))
    )
    if flt.status != "all":
        stmt = stmt.where(Task.status == flt.status)
    if flt.mine:
        stmt = stmt.where(Task.assignee_id == actor.user_id)
    if flt.role:
        stmt = stmt.where(Task.role == flt.role)
    if flt.case_id is not None:
        stmt = stmt.where(Task.case_id == flt.case_id)
    if flt.bpmn_id:
        stmt = stmt.where(Task.bpmn_id == flt.bpmn_id)
    if flt.case_type:
        stmt = stmt.where(Case.case_type == flt.case_type)
    if flt.unit_id is not None:
        sub = select(Unit.path).where(Unit.id == flt.unit_id).scalar_subquery()
        stmt = stmt.where(Task.unit_id.in_(select(Unit.id).where(Unit.path.startswith(sub))))
    if flt.overdue is True:
        stmt = stmt.where(Task.due_at.is_not(None), Task.due_at < now)
    elif flt.overdue is False:
        stmt = stmt.where(or_(Task.due_at.is_(None), Task.due_at >= now))
    if flt.due_before is not None:
        stmt = stmt.where(Task.due_at.is_not(None), Task.due_at < flt.due_before)
    total = (
        uow.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    )
    rows = uow.session.execute(
        stmt.order_by(Task.due_at.is_(None), Task.due_at, Task.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    items = []
    for task, case_no, case_type, title, unit_name in rows:
        item = task_summary(task)
        item.update(
            case_no=case_no,
            case_type=case_type,
            case_title=title,
            unit_name=unit_name,
            overdue=bool(task.status == "open" and task.due_at is not None and task.due_at < now),
        )
        items.append(item)
    return {"items": items, "total": total, "page": page, "per_page": per_page}


def _load(
    uow: UnitOfWork, actor: Actor, task_id: int, *, lock: bool = False
) -> tuple[Task, str | None]:
    """A task the actor may see (else 404), with its unit's path."""
    stmt = (
        select(Task, Unit.path, Case.case_type)
        .join(Case, Case.id == Task.case_id)
        .outerjoin(Unit, Unit.id == Task.unit_id)
        .where(Task.id == task_id)
    )
    row = uow.session.execute(stmt).first()
    if row is None:
        raise NotFoundError("task not found")
    task, path, case_type = row
    _check_visible(uow, actor, task, path, case_type)
    return task, path


def _check_visible(
    uow: UnitOfWork, actor: Actor, task: Task, path: str | None, case_type: str
) -> None:
    """404 unless the task is the actor's, or open to them in scope (and its case visible)."""
    if task.assignee_id == actor.user_id:
        return
    if not (actor.is_admin or actor.covers(path)):
        raise NotFoundError("task not found")
    if is_restricted(case_type) and not uow.session.scalar(
        select(Case.id).where(Case.id == task.case_id, case_visibility(actor))
    ):
        raise NotFoundError("task not found")


@lru_cache(maxsize=8)
def _completion_rows(details: tuple[Any, ...] = ()) -> Any:
    """The statement of `_load_for_completion`, built once per set of detail classes
    (building it costs more than running it). Each detail row is outer-joined on the case
    id: it lands in the session's identity map, where the hooks' session.get finds it."""
    task_id = bindparam("task_id", type_=Integer)
    case_of = select(Task.case_id).where(Task.id == task_id).scalar_subquery()
    stmt = (
        select(Task, Unit.path, Case, Timer, *details)
        .join(Case, Case.id == Task.case_id)
        .outerjoin(Unit, Unit.id == Task.unit_id)
        .outerjoin(Timer, Timer.case_id == Task.case_id)
    )
    for detail in details:
        stmt = stmt.outerjoin(detail, detail.case_id == Case.id)
    return stmt.where(Task.case_id == case_of, or_(Task.id == task_id, Task.status == "open"))


def _load_for_completion(
    uow: UnitOfWork, actor: Actor, task_id: int, details: tuple[Any, ...] = ()
) -> tuple[Task, str | None, Case, LoadedRows]:
    """The task as `_load` checks it, with its case, the case's open tasks and its timer row,
    and the case's detail row if its type has one (`details`: CaseTypeRegistry.details()).

    One query instead of five: the hot path of every completion."""
    rows = uow.session.execute(_completion_rows(details), {"task_id": task_id}).all()
    mine = next((r for r in rows if r[0].id == task_id), None)
    if mine is None:
        raise NotFoundError("task not found")
    task, path, case, timer = mine[:4]
    _check_visible(uow, actor, task, path, case.case_type)
    open_tasks = [r[0] for r in rows if r[0].status == "open"]
    held = tuple(row for row in mine[4:] if row is not None)
    return task, path, case, LoadedRows(open_tasks=open_tasks, timer=timer, held=held)


def _may_act(actor: Actor, task: Task, path: str | None) -> bool:
    if task.assignee_id is not None:
        return task.assignee_id == actor.user_id
    return task.role is not None and actor.covers(path, [task.role])


def get_task(
    services: Services, uow: UnitOfWork, actor: Actor, task_id: int, now: datetime
) -> dict[str, Any]:
    """A task with its case summary and its form, as fields and as JSON Schema."""
    task, path = _load(uow, actor, task_id)
    case = uow.session.get(Case, task.case_id)
    assert case is not None
    deployed = services.definitions.get(uow, case.definition_id)
    spec = deployed.definition.user_tasks.get(task.bpmn_id)
    fields = list(spec.form) if spec is not None else []
    view = task_summary(task)
    view.update(
        case_no=case.case_no,
        case_type=case.case_type,
        case_title=case.title,
        case_status=case.status,
        case_version=case.version,
        case_data=case.data,
        documentation=spec.documentation if spec is not None else None,
        overdue=bool(task.status == "open" and task.due_at is not None and task.due_at < now),
        can_act=task.status == "open" and _may_act(actor, task, path),
        form={"fields": [_field_view(f) for f in fields], "json_schema": json_schema(fields)},
    )
    if task.assignee_id is not None:
        assignee = uow.session.get(User, task.assignee_id)
        view["assignee_name"] = assignee.display_name if assignee else None
    return view


def _field_view(field: Any) -> dict[str, Any]:
    return {
        "id": field.id,
        "label": field.label,
        "type": field.type,
        "required": field.required,
        "readonly": field.readonly,
        "enum": [{"id": v, "label": label} for v, label in field.enum],
        "default": field.default,
        "min": field.min,
        "max": field.max,
        "minlength": field.minlength,
        "maxlength": field.maxlength,
        "properties": dict(field.properties),
    }


def claim_task(services: Services, actor: Actor, task_id: int) -> dict[str, Any]:
    """Take a task: only a holder of its candidate role in scope; 409 if someone else holds it."""
    now = services.clock.now()
    with services.uow() as uow, conflicts_as_409():
        task, path = _load(uow, actor, task_id)
        if task.status != "open":
            raise ConflictError("task is no longer open")
        if task.assignee_id == actor.user_id:
            return task_summary(task)
        if task.assignee_id is not None:
            raise ConflictError("task is already claimed by someone else")
        if task.role is None or not actor.covers(path, [task.role]):
            raise PermissionDeniedError("you do not hold the role this task needs")
        updated = uow.session.execute(
            update(Task)
            .where(Task.id == task.id, Task.assignee_id.is_(None), Task.status == "open")
            .values(assignee_id=actor.user_id)
            .execution_options(synchronize_session=False)
        )
        if updated.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError("task is already claimed by someone else")
        case = uow.session.get(Case, task.case_id)
        assert case is not None
        record_case_event(
            uow,
            case,
            "task.claimed",
            actor_id=actor.user_id,
            at=now,
            detail={"task_id": task.id, "task": task.bpmn_id},
        )
        case.updated_at = now
        uow.commit()
        task.assignee_id = actor.user_id
        return task_summary(task)


def release_task(services: Services, actor: Actor, task_id: int) -> dict[str, Any]:
    """Give a claimed task back to its candidate role."""
    now = services.clock.now()
    with services.uow() as uow, conflicts_as_409():
        task, _path = _load(uow, actor, task_id)
        if task.status != "open":
            raise ConflictError("task is no longer open")
        if task.assignee_id != actor.user_id and not actor.is_admin:
            raise PermissionDeniedError("only the assignee can release this task")
        task.assignee_id = None
        case = uow.session.get(Case, task.case_id)
        assert case is not None
        record_case_event(
            uow, case, "task.released", actor_id=actor.user_id, at=now, detail={"task_id": task.id}
        )
        uow.commit()
        return task_summary(task)


def complete_task(
    services: Services, actor: Actor, task_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    """Validate the form, run the workflow on, and write everything back in one transaction."""
    now = services.clock.now()
    with services.uow() as uow, conflicts_as_409():
        task, path, case, loaded = _load_for_completion(
            uow, actor, task_id, services.case_types.details()
        )
        if task.status != "open":
            raise ConflictError("task is already completed")
        if not _may_act(actor, task, path):
            if task.assignee_id is not None and actor.covers(path, [task.role or ""]):
                raise ConflictError("task is claimed by someone else")
            raise PermissionDeniedError("you do not hold the role this task needs")
        case_type = services.case_types.get(case.case_type)
        deployed = services.definitions.get(uow, case.definition_id)
        spec = deployed.definition.user_tasks.get(task.bpmn_id)
        fields = spec.form if spec is not None else ()
        try:
            clean: dict[str, Any] = form_schema(fields)().load(data)
        except marshmallow.ValidationError as exc:
            errors = exc.messages if isinstance(exc.messages, dict) else {"data": exc.messages}
            raise ValidationError("the form has errors", errors) from exc
        ctx = HookContext(services, uow, actor, now)
        clean.update(case_type.hooks.before_complete(ctx, case, task, clean))
        try:
            snapshot = services.runtime.complete(
                deployed.definition, case.state, task.spiff_id, clean
            )
        except TaskNotReadyError as exc:
            raise ConflictError("task is not ready in the workflow") from exc
        except DataKeyError as exc:
            raise ValidationError(str(exc), {"data": [str(exc)]}) from exc
        task.status = "completed"
        task.completed_at = now
        task.completed_by_id = actor.user_id
        if task.assignee_id is None:
            task.assignee_id = actor.user_id
        record_case_event(
            uow,
            case,
            "task.completed",
            actor_id=actor.user_id,
            at=now,
            detail={"task_id": task.id, "task": task.bpmn_id, "name": task.name, "data": clean},
        )
        created = apply_snapshot(ctx, case, case_type, snapshot, loaded=loaded)
        case_type.hooks.after_complete(ctx, case, task, clean, snapshot)
        uow.commit()
        if len(created) == len(snapshot.tasks):
            open_now = created  # the usual case: every open task was just created
        else:
            open_now = list(
                uow.session.scalars(
                    select(Task)
                    .where(Task.case_id == case.id, Task.status == "open")
                    .order_by(Task.id)
                )
            )
        return {
            "task": task_summary(task),
            "case": {
                "id": case.id,
                "case_no": case.case_no,
                "status": case.status,
                "version": case.version,
            },
            "next_tasks": [task_summary(t) for t in open_now],
        }
