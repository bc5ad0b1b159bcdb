"""Admin pages: users and roles, units, settings (DOMAIN.md §6), holiday calendar, processes."""

from __future__ import annotations

import calendar as pycalendar
import json
from datetime import date
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from engine.clock import local_today
from engine.domain.calendar import library_years
from engine.domain.enums import Role, UnitKind
from engine.errors import ConflictError, NotFoundError, ValidationError
from engine.services import calendar as calendar_service
from engine.services import definitions as definition_service
from engine.services import orgs, users
from engine.services import settings as settings_service
from engine.services.access import require_admin
from web.auth import current_actor, services
from web.pages import bp, page_lang, register_nav, translate_errors

register_nav("pages.admin_users", _l("Administration"), ["admin"], 90, match="pages.admin_")

LANGUAGES = (("zh-CN", "中文"), ("en", "English"))
ROLE_ROWS = 3


def _admin() -> Any:
    actor = current_actor()
    require_admin(actor)
    return actor


def _units(uow: Any, actor: Any) -> list[dict[str, Any]]:
    """Units in tree order with their depth, for pickers and the unit page."""
    out = []
    for unit in orgs.list_units(uow, actor):
        view = orgs.unit_view(unit)
        view["depth"] = unit.path.count("/") - 2
        view["kind_label"] = UnitKind(unit.kind).label(page_lang())
        out.append(view)
    return out


# -- users ---------------------------------------------------------------------------------


def _roles_from_form() -> list[dict[str, Any]]:
    roles = []
    for role, unit in zip(
        request.form.getlist("role"), request.form.getlist("role_unit"), strict=False
    ):
        if not role:
            continue
        roles.append({"role": role, "unit_id": int(unit) if unit.isdigit() else None})
    return roles


@bp.route("/admin/users", methods=["GET", "POST"])
@login_required
def admin_users() -> Any:
    """Users with their roles; an admin adds a user with roles on units."""
    actor = _admin()
    svc = services()
    errors: dict[str, Any] = {}
    values: dict[str, Any] = {}
    if request.method == "POST":
        values = request.form.to_dict()
        try:
            with svc.uow() as uow:
                user = users.create_user(
                    uow,
                    actor,
                    username=request.form.get("username", "").strip(),
                    password=request.form.get("password", ""),
                    display_name=request.form.get("display_name", "").strip(),
                    language=request.form.get("language", "zh-CN"),
                    roles=_roles_from_form(),
                    email=request.form.get("email") or None,
                    phone=request.form.get("phone") or None,
                    now=svc.clock.now(),
                )
                uow.commit()
                flash(_("User %(name)s created.", name=user.username))
                return redirect(url_for("pages.admin_users"))
        except ValidationError as exc:
            errors = translate_errors(exc.errors)
        except ConflictError:
            errors = {"username": [_("This username is taken.")]}
    q = request.args.get("q", "").strip()
    page = int(request.args.get("page", "1") or 1) if request.args.get("page", "").isdigit() else 1
    with svc.uow() as uow:
        result = users.list_users(uow, actor, q=q or None, page=page, per_page=100)
        units = _units(uow, actor)
    names = {u["id"]: u["name"] for u in units}
    return render_template(
        "admin/users.html",
        result=result,
        units=units,
        unit_names=names,
        roles=Role.labels(page_lang()),
        languages=LANGUAGES,
        errors=errors,
        values=values,
        q=q,
        role_rows=ROLE_ROWS,
    ), (422 if errors else 200)


@bp.route("/admin/users/<int:user_id>", methods=["GET", "POST"])
@login_required
def admin_user_edit(user_id: int) -> Any:
    """Change a user's name, language, roles, active flag or password."""
    actor = _admin()
    svc = services()
    errors: dict[str, Any] = {}
    if request.method == "POST":
        changes: dict[str, Any] = {
            "display_name": request.form.get("display_name", "").strip(),
            "language": request.form.get("language", "zh-CN"),
            "email": request.form.get("email") or None,
            "phone": request.form.get("phone") or None,
            "active": request.form.get("active") == "on",
            "roles": _roles_from_form(),
        }
        if request.form.get("password"):
            changes["password"] = request.form["password"]
        try:
            with svc.uow() as uow:
                users.update_user(uow, actor, user_id, changes, svc.clock.now())
                uow.commit()
            flash(_("User updated."))
            return redirect(url_for("pages.admin_user_edit", user_id=user_id))
        except ValidationError as exc:
            errors = translate_errors(exc.errors)
    with svc.uow() as uow:
        found = [
            u
            for u in users.list_users(uow, actor, page=1, per_page=200)["items"]
            if u["id"] == user_id
        ]
        if not found:
            raise NotFoundError("user not found")
        units = _units(uow, actor)
    return render_template(
        "admin/user_edit.html",
        user=found[0],
        units=units,
        roles=Role.labels(page_lang()),
        languages=LANGUAGES,
        errors=errors,
        role_rows=ROLE_ROWS,
    ), (422 if errors else 200)


# -- units ---------------------------------------------------------------------------------


@bp.route("/admin/units", methods=["GET", "POST"])
@login_required
def admin_units() -> Any:
    """The unit tree; add a unit, rename one or change whether it reports or is active."""
    actor = _admin()
    svc = services()
    errors: dict[str, Any] = {}
    values: dict[str, Any] = {}
    if request.method == "POST":
        values = request.form.to_dict()
        try:
            with svc.uow() as uow:
                if request.form.get("_action") == "update":
                    unit_id = int(request.form.get("unit_id", "0") or 0)
                    orgs.update_unit(
                        uow,
                        actor,
                        unit_id,
                        {
                            "name": request.form.get("name", "").strip(),
                            "reporting": request.form.get("reporting") == "on",
                            "active": request.form.get("active") == "on",
                        },
                        svc.clock.now(),
                    )
                    flash(_("Unit updated."))
                else:
                    parent = request.form.get("parent_id", "")
                    unit = orgs.create_unit(
                        uow,
                        actor,
                        code=request.form.get("code", "").strip(),
                        name=request.form.get("name", "").strip(),
                        kind=request.form.get("kind", ""),
                        parent_id=int(parent) if parent.isdigit() else None,
                        reporting=request.form.get("reporting") == "on",
                        now=svc.clock.now(),
                    )
                    flash(_("Unit %(name)s added.", name=unit.name))
                uow.commit()
            return redirect(url_for("pages.admin_units"))
        except ValidationError as exc:
            errors = translate_errors(exc.errors)
        except ConflictError:
            errors = {"code": [_("This code is taken.")]}
    with svc.uow() as uow:
        units = _units(uow, actor)
    return render_template(
        "admin/units.html",
        units=units,
        kinds=UnitKind.labels(page_lang()),
        errors=errors,
        values=values,
    ), (422 if errors else 200)


# -- settings ------------------------------------------------------------------------------


def _is_lines(spec: settings_service.SettingSpec) -> bool:
    """A list of plain strings (the checklists) is edited one item per line; others as JSON."""
    default = spec.default
    return spec.kind == "list" and bool(default) and all(isinstance(v, str) for v in default)


def _setting_from_form(spec: settings_service.SettingSpec, current: Any) -> Any:
    """A posted setting as its type; raises ValueError with a field message."""
    key = spec.key
    if spec.kind == "bool":
        return request.form.get(key) == "on"
    if spec.kind == "int":
        raw = request.form.get(key, "").strip()
        if not raw.lstrip("-").isdigit():
            raise ValueError(_("Not a valid whole number."))
        return int(raw)
    if spec.kind == "str":
        return request.form.get(key, "").strip()
    if spec.kind == "dict" and isinstance(current, dict):
        out: dict[str, Any] = {}
        for sub in current:
            raw = request.form.get(f"{key}.{sub}", "").strip()
            if not raw.isdigit():
                raise ValueError(_("Not a valid whole number."))
            out[sub] = int(raw)
        return out
    raw = request.form.get(key, "")
    if _is_lines(spec):
        return [line.strip() for line in raw.splitlines() if line.strip()]
    try:
        return json.loads(raw or "null")
    except json.JSONDecodeError:
        raise ValueError(_("Not valid JSON.")) from None


@bp.route("/admin/settings", methods=["GET", "POST"])
@login_required
def admin_settings() -> Any:
    """The business settings of DOMAIN.md §6 with their defaults."""
    actor = _admin()
    svc = services()
    errors: dict[str, Any] = {}
    with svc.uow() as uow:
        current = settings_service.all_settings(uow)
    if request.method == "POST":
        values: dict[str, Any] = {}
        for spec in settings_service.SPECS.values():
            try:
                values[spec.key] = _setting_from_form(spec, current[spec.key])
            except ValueError as exc:
                errors[spec.key] = [str(exc)]
        if not errors:
            try:
                with svc.uow() as uow:
                    settings_service.set_settings(uow, actor, values, svc.clock.now())
                    uow.commit()
                flash(_("Settings saved."))
                return redirect(url_for("pages.admin_settings"))
            except ValidationError as exc:
                errors = translate_errors(exc.errors)
        current = {**current, **{k: v for k, v in values.items() if k not in errors}}
    specs = []
    for spec in settings_service.SPECS.values():
        value = current[spec.key]
        specs.append(
            {
                "key": spec.key,
                "kind": spec.kind,
                "label": spec.label_en if page_lang() == "en" else spec.label_zh,
                "value": value,
                "default": spec.default,
                "lines": _is_lines(spec),
                "json": json.dumps(value, ensure_ascii=False, indent=1),
            }
        )
    return render_template("admin/settings.html", specs=specs, errors=errors), (
        422 if errors else 200
    )


# -- calendar ------------------------------------------------------------------------------


@bp.route("/admin/calendar", methods=["GET", "POST"])
@login_required
def admin_calendar() -> Any:
    """The working-day calendar of a year; load the State Council's schedule for a new year."""
    actor = _admin()
    svc = services()
    errors: dict[str, Any] = {}
    text = ""
    if request.method == "POST":
        upload = request.files.get("file")
        text = (
            upload.read().decode("utf-8", errors="replace")
            if upload and upload.filename
            else request.form.get("schedule", "")
        )
        try:
            with svc.uow() as uow:
                result = calendar_service.import_schedule(
                    uow, actor, text, source="admin page", now=svc.clock.now()
                )
                uow.commit()
            flash(
                _(
                    "Schedule of %(year)s loaded: %(h)s holidays, %(w)s adjusted working days.",
                    year=result["year"],
                    h=result["holidays"],
                    w=result["workdays"],
                )
            )
            return redirect(url_for("pages.admin_calendar", year=result["year"]))
        except ValidationError as exc:
            errors = {"schedule": [exc.message]}
    today = local_today(svc.clock)
    year_raw = request.args.get("year", "")
    year = int(year_raw) if year_raw.isdigit() and 1900 < int(year_raw) < 3000 else today.year
    with svc.uow() as uow:
        cal = calendar_service.load_calendar(uow)
    months = []
    for month in range(1, 13):
        weeks = []
        for week in pycalendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
            row: list[dict[str, Any] | None] = []
            for day in week:
                if day.month != month:
                    row.append(None)
                    continue
                working = cal.is_working_day(day)
                weekend = day.weekday() >= 5
                kind = (
                    "holiday"
                    if not working and not weekend
                    else "workday"
                    if working and weekend
                    else "weekend"
                    if weekend
                    else "normal"
                )
                row.append({"day": day.day, "kind": kind, "today": day == today})
            weeks.append(row)
        months.append({"month": month, "weeks": weeks})
    verified = cal.is_verified(date(year, 1, 1))
    return render_template(
        "admin/calendar.html",
        year=year,
        months=months,
        verified=verified,
        library_years=sorted(library_years()),
        loaded_years=sorted(cal.extra_years),
        errors=errors,
        text=text,
    ), (422 if errors else 200)


# -- process definitions ---------------------------------------------------------------------


@bp.route("/admin/processes", methods=["GET", "POST"])
@login_required
def admin_processes() -> Any:
    """Deployed BPMN versions with their running instances; deploy a new file."""
    actor = _admin()
    svc = services()
    errors: dict[str, Any] = {}
    if request.method == "POST":
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            errors = {"file": [_("Choose a BPMN file.")]}
        else:
            try:
                with svc.uow() as uow:
                    deployed = svc.definitions.deploy(
                        uow,
                        upload.read(),
                        filename=upload.filename,
                        at=svc.clock.now(),
                        actor_id=actor.user_id,
                    )
                    uow.commit()
                svc.definitions.forget_latest()
                flash(
                    _(
                        "Deployed: %(names)s.",
                        names=", ".join(
                            f"{d.definition.process_id} v{d.version}" for d in deployed
                        ),
                    )
                )
                return redirect(url_for("pages.admin_processes"))
            except ValidationError as exc:
                errors = {
                    "file": [
                        f"{k}: {' '.join(v) if isinstance(v, list) else v}"
                        for k, v in (exc.errors or {}).items()
                    ]
                    or [exc.message]
                }
    with svc.uow() as uow:
        items = definition_service.list_definitions(uow)
    return render_template("admin/processes.html", items=items, errors=errors), (
        422 if errors else 200
    )
