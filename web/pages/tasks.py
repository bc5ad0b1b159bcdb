"""Task inbox, task page with its form, and the case page."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required

from engine.errors import ConflictError, PermissionDeniedError, ValidationError
from engine.services import cases as case_service
from engine.services import tasks as task_service
from engine.services.tasks import TaskFilter
from web.auth import current_actor, services
from web.pages import bp


@bp.route("/tasks")
@login_required
def inbox() -> Any:
    """我的待办: tasks assigned to me, or open to my roles, by due date with badges."""
    svc = services()
    actor = current_actor()
    scope = request.args.get("scope", "roles")
    overdue = request.args.get("overdue") == "1"
    flt = TaskFilter(
        mine=scope == "mine",
        overdue=True if overdue else None,
        case_type=request.args.get("case_type") or None,
        page=int(request.args.get("page", "1") or 1),
        per_page=50,
    )
    now = svc.clock.now()
    with svc.uow() as uow:
        result = task_service.list_tasks(uow, actor, flt, now)
    warn = svc.settings.warning_days
    for item in result["items"]:
        due = item["due_at"]
        item["badge"] = (
            "red"
            if item["overdue"]
            else "yellow"
            if due is not None and (due - now).days < warn
            else None
        )
    return render_template("inbox.html", result=result, scope=scope, overdue=overdue)


@bp.route("/tasks/<int:task_id>", methods=["GET", "POST"])
@login_required
def task_page(task_id: int) -> Any:
    """A task: its case summary and its form; submitting completes it through the task service."""
    svc = services()
    actor = current_actor()
    errors: dict[str, Any] = {}
    values: dict[str, Any] = {}
    if request.method == "POST":
        action = request.form.get("_action", "complete")
        try:
            if action == "claim":
                task_service.claim_task(svc, actor, task_id)
                flash(_("Task claimed."))
                return redirect(url_for("pages.task_page", task_id=task_id))
            if action == "release":
                task_service.release_task(svc, actor, task_id)
                flash(_("Task released."))
                return redirect(url_for("pages.task_page", task_id=task_id))
            with svc.uow() as uow:
                view = task_service.get_task(svc, uow, actor, task_id, svc.clock.now())
            data = _form_data(view["form"]["fields"], request.form)
            values = dict(request.form)
            result = task_service.complete_task(svc, actor, task_id, data)
            flash(_("Task completed."))
            return redirect(url_for("pages.case_page", case_id=result["case"]["id"]))
        except ValidationError as exc:
            errors = exc.errors
        except (ConflictError, PermissionDeniedError) as exc:
            flash(exc.message, "error")
    with svc.uow() as uow:
        view = task_service.get_task(svc, uow, actor, task_id, svc.clock.now())
    return render_template("task.html", task=view, errors=errors, values=values), (
        422 if errors else 200
    )


def _form_data(fields: list[dict[str, Any]], form: Any) -> dict[str, Any]:
    """Turn posted strings into the typed values the form schema expects; blanks are omitted."""
    data: dict[str, Any] = {}
    for f in fields:
        if f["readonly"]:
            continue
        raw = form.get(f["id"])
        if f["type"] == "boolean":
            data[f["id"]] = raw in {"on", "true", "1"}
            continue
        if raw is None or raw == "":
            continue
        data[f["id"]] = raw
    return data


@bp.route("/cases/<int:case_id>")
@login_required
def case_page(case_id: int) -> Any:
    """A case: summary, deadlines, open tasks and the timeline."""
    svc = services()
    case = case_service.get_case(svc, current_actor(), case_id)
    return render_template("case.html", case=case)
