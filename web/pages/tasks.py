"""我的待办 (task inbox), the task page with its form, and the case page with its BPMN diagram."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from werkzeug.datastructures import MultiDict

from engine.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from engine.services import cases as case_service
from engine.services import orgs
from engine.services import tasks as task_service
from engine.services.settings import get_setting
from engine.services.tasks import TaskFilter
from web.auth import current_actor, services
from web.pages import bp, register_nav, translate_errors

register_nav("pages.inbox", _l("My tasks"), None, 10)

PER_PAGE = 50
CASE_EXTRAS: list[Any] = []
"""Capability page modules append fn(case_view) -> (template name, context) | None: the richer
sections of their case type (petitioners, reply, ledger) shown on the generic case page."""


def unit_choices(actor: Any) -> list[dict[str, Any]]:
    """Units for a form's unit pickers (fields named *unit_id), in tree order with depth."""
    svc = services()
    with svc.uow() as uow:
        return [
            {"id": u.id, "name": u.name, "depth": max(0, u.path.count("/") - 2)}
            for u in orgs.list_units(uow, actor)
            if u.active
        ]


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name, "")
    return int(raw) if raw.isdigit() else None


def badge_for(due_at: Any, overdue: bool, now: Any, warning_days: int) -> str | None:
    """Red once overdue, yellow within the warning lead time (DOMAIN.md §1 红黄牌)."""
    if overdue:
        return "red"
    if due_at is not None and due_at - now < timedelta(days=warning_days):
        return "yellow"
    return None


@bp.route("/tasks")
@login_required
def inbox() -> Any:
    """我的待办: tasks assigned to me or open to my roles, by due date, with filters and a pane."""
    svc = services()
    actor = current_actor()
    scope = "mine" if request.args.get("scope") == "mine" else "roles"
    overdue = request.args.get("overdue") == "1"
    case_type = request.args.get("case_type") or None
    unit_id = _int_arg("unit_id")
    page = max(1, _int_arg("page") or 1)
    now = svc.clock.now()
    with svc.uow() as uow:
        result = task_service.list_tasks(
            uow,
            actor,
            TaskFilter(
                mine=scope == "mine",
                overdue=True if overdue else None,
                case_type=case_type,
                unit_id=unit_id,
                page=page,
                per_page=PER_PAGE,
            ),
            now,
        )
        warning_days = int(get_setting(uow, "warning_days"))
        units = [
            orgs.unit_view(u)
            for u in orgs.list_units(uow, actor)
            if u.kind in {"village", "community", "department", "street"}
        ]
    for item in result["items"]:
        item["badge"] = badge_for(item["due_at"], item["overdue"], now, warning_days)
    selected = None
    selected_id = _int_arg("task")
    if selected_id is not None:
        try:
            with svc.uow() as uow:
                selected = task_service.get_task(svc, uow, actor, selected_id, now)
        except NotFoundError:
            selected = None
    case_types = sorted(
        {ct.name for ct in svc.case_types.all()} | {i["case_type"] for i in result["items"]}
    )
    args = {
        k: v for k, v in request.args.items() if k not in {"task", "page"} and v not in {"", None}
    }
    return render_template(
        "inbox.html",
        result=result,
        scope=scope,
        overdue=overdue,
        case_type=case_type,
        unit_id=unit_id,
        units=units,
        case_types=case_types,
        selected=selected,
        args=args,
        page=page,
        pages=max(1, (result["total"] + PER_PAGE - 1) // PER_PAGE),
        errors={},
        values={},
        unit_choices=unit_choices(actor) if selected is not None else [],
    )


@bp.route("/tasks/<int:task_id>/claim", methods=["POST"])
@login_required
def task_claim(task_id: int) -> Any:
    """签收 from the list or the task page (same service as POST /api/v1/tasks/{id}/claim)."""
    try:
        task_service.claim_task(services(), current_actor(), task_id)
        flash(_("Task claimed."))
    except (ConflictError, PermissionDeniedError) as exc:
        flash(_conflict_message(exc), "error")
    return redirect(_back(url_for("pages.task_page", task_id=task_id)))


@bp.route("/tasks/<int:task_id>/release", methods=["POST"])
@login_required
def task_release(task_id: int) -> Any:
    """退回: give a claimed task back to its role."""
    try:
        task_service.release_task(services(), current_actor(), task_id)
        flash(_("Task released."))
    except (ConflictError, PermissionDeniedError) as exc:
        flash(_conflict_message(exc), "error")
    return redirect(_back(url_for("pages.task_page", task_id=task_id)))


def _back(default: str) -> str:
    target = request.form.get("next") or ""
    return target if target.startswith("/") and not target.startswith("//") else default


def _conflict_message(exc: ConflictError | PermissionDeniedError) -> str:
    if isinstance(exc, PermissionDeniedError):
        return str(_("You do not hold the role this task needs."))
    if "claimed" in exc.message:
        return str(_("Someone else has claimed this task."))
    if "completed" in exc.message or "no longer open" in exc.message:
        return str(_("This task is already closed."))
    return str(_("The case changed meanwhile; please reload and try again."))


@bp.route("/tasks/<int:task_id>", methods=["GET", "POST"])
@login_required
def task_page(task_id: int) -> Any:
    """A task with its case summary and its form; submitting completes it via the task service."""
    svc = services()
    actor = current_actor()
    errors: dict[str, Any] = {}
    values: dict[str, Any] = {}
    if request.method == "POST":
        with svc.uow() as uow:
            view = task_service.get_task(svc, uow, actor, task_id, svc.clock.now())
        values = request.form.to_dict()
        try:
            result = task_service.complete_task(
                svc, actor, task_id, form_data(view["form"]["fields"], request.form)
            )
        except ValidationError as exc:
            errors = translate_errors(exc.errors) or {"_": [exc.message]}
        except (ConflictError, PermissionDeniedError) as exc:
            flash(_conflict_message(exc), "error")
        else:
            flash(_("Task completed."))
            nxt = [t for t in result["next_tasks"] if t["assignee_id"] == actor.user_id]
            if request.form.get("next", "").startswith("/tasks"):
                return redirect(_back(url_for("pages.inbox")))
            if nxt:
                return redirect(url_for("pages.task_page", task_id=nxt[0]["id"]))
            return redirect(url_for("pages.case_page", case_id=result["case"]["id"]))
    with svc.uow() as uow:
        view = task_service.get_task(svc, uow, actor, task_id, svc.clock.now())
    field_ids = {f["id"] for f in view["form"]["fields"]}
    form_errors = {k: v for k, v in errors.items() if k not in field_ids}
    return render_template(
        "task.html",
        task=view,
        errors=errors,
        form_errors=form_errors,
        values=values,
        unit_choices=unit_choices(actor),
    ), (422 if errors else 200)


def form_data(fields: list[dict[str, Any]], form: MultiDict[str, str]) -> dict[str, Any]:
    """Posted strings as the form schema expects them; blanks are left out, booleans kept."""
    data: dict[str, Any] = {}
    for f in fields:
        if f["readonly"]:
            continue
        raw = form.get(f["id"])
        if f["type"] == "boolean":
            data[f["id"]] = raw in {"on", "true", "1"}
            continue
        if raw is None or raw.strip() == "":
            continue
        data[f["id"]] = raw.strip() if f["type"] != "string" else raw
    return data


@bp.route("/cases/<int:case_id>")
@login_required
def case_page(case_id: int) -> Any:
    """A case: summary, its type's own sections, deadlines, open tasks, diagram and timeline."""
    svc = services()
    actor = current_actor()
    case = case_service.get_case(svc, actor, case_id)
    now = svc.clock.now()
    with svc.uow() as uow:
        warning_days = int(get_setting(uow, "warning_days"))
        unit_name = next(
            (u.name for u in orgs.list_units(uow, actor) if u.id == case["unit_id"]), None
        )
    for t in case["open_tasks"]:
        overdue = t["due_at"] is not None and t["due_at"] < now
        t["badge"] = badge_for(t["due_at"], overdue, now, warning_days)
    extras = []
    for extra in CASE_EXTRAS:
        section = extra(case)
        if section is not None:
            extras.append(section)
    return render_template(
        "case.html",
        case=case,
        unit_name=unit_name,
        extras=extras,
        timeline=[_timeline_entry(e) for e in case["timeline"]],
    )


TIMELINE_ACTIONS: dict[str, Any] = {
    "case.started": _l("Case opened"),
    "case.error": _l("Workflow error"),
    "task.claimed": _l("Task claimed"),
    "task.released": _l("Task released"),
    "task.completed": _l("Task completed"),
    "timer.fired": _l("Timer fired"),
    "case.cancelled": _l("Case cancelled"),
    "case.linked": _l("Linked case opened"),
    "case.migrated": _l("Moved to a new process version"),
    "petition.registered": _l("Petition registered"),
    "petition.extension_approved": _l("Extension approved"),
    "petition.extension_refused": _l("Extension refused"),
    "petition.not_evaluated": _l("Closed without evaluation"),
    "petition.review_decided": _l("Review decided"),
    "petition.supervision_opened": _l("Supervision (督办) opened"),
    "petition.supervised": _l("Supervised (督办)"),
    "petition.terminated": _l("Petition terminated"),
    "pii.revealed": _l("Whole ID/phone numbers viewed"),
    "screening.hazard_added": _l("Hazard entered in the ledger"),
    "hazard.progress": _l("Hazard progress noted"),
    "hazard.escalated": _l("Hazard escalated"),
    "key_person.registered": _l("Key person registered"),
    "key_person.reassessed": _l("Risk reassessed"),
    "key_person.contact_missed": _l("Contact missed"),
    "key_person.urgent_signal": _l("Urgent risk signal"),
    "reception.recorded": _l("Reception recorded"),
}


def _timeline_entry(event: dict[str, Any]) -> dict[str, Any]:
    label = TIMELINE_ACTIONS.get(event["action"])
    detail = event["detail"] or {}
    return {
        "at": event["at"],
        "actor": event["actor"],
        "action": str(label) if label is not None else event["action"],
        "name": detail.get("name") or detail.get("task_name") or "",
        "note": detail.get("comment") or detail.get("note") or "",
    }


@bp.route("/cases/<int:case_id>/diagram.json")
@login_required
def case_diagram(case_id: int) -> Any:
    """The case's BPMN XML with completed and active element ids (for the bpmn-js viewer)."""
    return jsonify(case_service.case_diagram(services(), current_actor(), case_id))
