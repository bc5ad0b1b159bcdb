"""Petition pages: the reception desk's register form (with repeat warnings), the petition list,
the petition's sections on the case page, and the 督办 link of the deadline board."""

from __future__ import annotations

from typing import Any

import marshmallow
from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from engine.clock import local_today
from engine.domain.enums import Category, Channel, Source
from engine.errors import NotFoundError, PermissionDeniedError, ValidationError
from engine.services import orgs
from engine.services import petitions as petition_service
from engine.services import tasks as task_service
from engine.services.petition_counts import SUPERVISED_KINDS
from engine.services.tasks import TaskFilter
from web.api.petitions import PetitionIn
from web.auth import current_actor, services
from web.pages import bp, has_role, page_lang, register_nav, translate_errors
from web.pages.boards import SUPERVISE_LINKS
from web.pages.tasks import CASE_EXTRAS

register_nav("pages.petition_new", _l("Register petition"), ["intake"], 20)
register_nav(
    "pages.petition_list",
    _l("Petitions"),
    ["intake", "handler", "leader", "supervisor"],
    30,
    match="pages.petition_l",
)

PETITIONER_ROWS = 5  # 信访工作条例 Art. 18: at most five representatives


def _petitioners_from_form() -> list[dict[str, Any]]:
    people = []
    for i in range(PETITIONER_ROWS):
        person = {
            key: (request.form.get(f"p{i}_{key}") or "").strip()
            for key in ("name", "id_number", "phone", "address")
        }
        if any(person.values()):
            people.append({k: (v or None) for k, v in person.items()} | {"name": person["name"]})
    return people


def petition_body(form: Any) -> dict[str, Any]:
    """The posted form as the API's JSON body (then loaded through the API's own schema)."""
    body: dict[str, Any] = {"petitioners": _petitioners_from_form()}
    for key in (
        "channel",
        "received_on",
        "category",
        "source",
        "subject",
        "request",
        "facts",
        "reasons",
        "proxy_agent",
        "assigned_ref",
        "assigned_due_on",
    ):
        value = (form.get(key) or "").strip()
        if value:
            body[key] = value
    for key in ("headcount", "village_id"):
        value = (form.get(key) or "").strip()
        if value:
            body[key] = value
    return body


def _flatten(errors: Any, prefix: str = "") -> dict[str, list[str]]:
    """Nested schema/service errors as {'p0_name': [...], 'subject': [...]} for the form."""
    out: dict[str, list[str]] = {}
    if not isinstance(errors, dict):
        return {prefix or "_": [str(errors)]}
    for key, value in errors.items():
        name = f"{prefix}{key}"
        if key == "petitioners" and isinstance(value, dict):
            for index, inner in value.items():
                out.update(_flatten(inner, f"p{index}_"))
        elif isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = [str(v) for v in value]
        else:
            out[name] = [str(value)]
    return translate_errors(out)  # type: ignore[no-any-return]


@bp.route("/petitions/new", methods=["GET", "POST"])
@login_required
def petition_new() -> Any:
    """登记: the reception desk's fast form; warns of possible repeats as the clerk types."""
    svc = services()
    actor = current_actor()
    if not has_role(actor, "intake"):
        raise PermissionDeniedError("only the petition office registers petitions")
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = request.form.to_dict() if request.method == "POST" else {}
    if request.method == "POST":
        try:
            body = PetitionIn().load(petition_body(request.form))
            view = petition_service.register_petition(svc, actor, body)
        except marshmallow.ValidationError as exc:
            errors = _flatten(exc.messages)
        except ValidationError as exc:
            errors = _flatten(exc.errors or {"_": [exc.message]})
        else:
            if view.get("repeat_of_id"):
                flash(
                    _("Registered %(no)s. It may repeat an earlier petition.", no=view["case_no"]),
                    "error",
                )
            else:
                flash(_("Petition %(no)s registered.", no=view["case_no"]))
            return redirect(url_for("pages.case_page", case_id=view["case_id"]))
    with svc.uow() as uow:
        villages = [
            orgs.unit_view(u)
            for u in orgs.list_units(uow, actor)
            if u.kind in {"village", "community"}
        ]
    lang = page_lang()
    return render_template(
        "petitions/new.html",
        errors=errors,
        values=values,
        today=local_today(svc.clock),
        channels=Channel.labels(lang),
        categories=Category.labels(lang),
        sources=Source.labels(lang),
        villages=villages,
        rows=PETITIONER_ROWS,
        repeat_url=url_for("petitions.repeat_check"),
    ), (422 if errors else 200)


@bp.route("/petitions")
@login_required
def petition_list() -> Any:
    """Petitions in my scope (same service as GET /api/v1/petitions), newest first."""
    svc = services()
    actor = current_actor()
    args: dict[str, Any] = {}
    for key in ("status", "q"):
        if request.args.get(key):
            args[key] = request.args[key]
    if request.args.get("village_id", "").isdigit():
        args["village_id"] = int(request.args["village_id"])
    if request.args.get("overdue") == "1":
        args["overdue"] = True
    page = int(request.args["page"]) if request.args.get("page", "").isdigit() else 1
    result = petition_service.list_petitions(
        svc, actor, petition_service.PetitionFilter(page=page, per_page=50, **args)
    )
    with svc.uow() as uow:
        villages = [
            orgs.unit_view(u)
            for u in orgs.list_units(uow, actor)
            if u.kind in {"village", "community"}
        ]
    lang = page_lang()
    return render_template(
        "petitions/list.html",
        result=result,
        villages=villages,
        statuses={
            k: petition_service.status_label(k, lang) for k in petition_service.STATUS_LABELS
        },
        args=args,
        page=page,
    )


def _petition_section(case: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """On a petition's case page: petitioners (masked unless revealed), matter, reply, 督办."""
    if case["case_type"] != petition_service.PETITION_TYPE:
        return None
    svc = services()
    actor = current_actor()
    reveal = request.args.get("reveal") == "1"
    try:
        view = petition_service.get_petition(svc, actor, case["id"], reveal=reveal)
    except NotFoundError:
        return None
    except PermissionDeniedError:
        flash(_("Your role may not see whole ID or phone numbers."), "error")
        view = petition_service.get_petition(svc, actor, case["id"])
        reveal = False
    may_reveal = _may_reveal(case)
    return (
        "petitions/_section.html",
        {"p": view, "revealed": reveal, "may_reveal": may_reveal},
    )


def _may_reveal(case: dict[str, Any]) -> bool:
    from engine.services import pii

    svc = services()
    actor = current_actor()
    with svc.uow() as uow:
        path = next((u.path for u in orgs.list_units(uow, actor) if u.id == case["unit_id"]), None)
    return pii.may_reveal(actor, path)


def _supervision_link(item: dict[str, Any]) -> str | None:
    """督办 on a petition deadline: its open supervision task, else the petition's 督办 section."""
    if item["case_type"] != petition_service.PETITION_TYPE:
        return None
    if item["kind"] not in SUPERVISED_KINDS:
        return None
    if item["state"] != "missed" and item["days_left"] >= 0:
        return None
    svc = services()
    actor = current_actor()
    try:
        view = petition_service.get_petition(svc, actor, item["case_id"])
    except NotFoundError:
        return None
    for sup in view["supervisions"]:
        if sup["deadline_kind"] != item["kind"]:
            continue
        with svc.uow() as uow:
            tasks = task_service.list_tasks(
                uow, actor, TaskFilter(case_id=sup["case_id"]), svc.clock.now()
            )["items"]
        if tasks:
            return url_for("pages.task_page", task_id=tasks[0]["id"])
        return url_for("pages.case_page", case_id=sup["case_id"])
    return url_for("pages.case_page", case_id=item["case_id"], _anchor="supervision")


CASE_EXTRAS.append(_petition_section)
SUPERVISE_LINKS.append(_supervision_link)
