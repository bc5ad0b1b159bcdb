"""Screening board (units × months, DOMAIN.md §5) and the monthly hazard ledger (台账)."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from engine.clock import local_today
from engine.domain.enums import DisputeType, ResolutionMethod, RiskLevel
from engine.errors import ConflictError, PermissionDeniedError, ValidationError
from engine.services import orgs
from engine.services import screening as screening_service
from web.auth import current_actor, services
from web.pages import bp, page_lang, register_nav, translate_errors
from web.pages.tasks import CASE_EXTRAS

register_nav(
    "pages.screening_board",
    _l("Screening"),
    ["supervisor", "leader", "reporter", "handler"],
    60,
    match="pages.screening_",
)

BOARD_MONTHS = 6
HAZARD_STATUS: dict[str, Any] = {
    "open": _l("Being resolved"),
    "pending_confirmation": _l("Awaiting the unit head's confirmation"),
    "pending_approval": _l("Awaiting sign-off approval"),
    "signed_off": _l("Signed off"),
}
CELL_LABELS: dict[str, Any] = {
    "reported": _l("Reported"),
    "submitted": _l("Awaiting signature"),
    "zero": _l("Zero report"),
    "late": _l("Late"),
    "missing": _l("Missing"),
    "open": _l("Not yet due"),
}


def cell_state(rnd: dict[str, Any]) -> str:
    """The board colour of a round: reported, zero report, late, missing, submitted or open."""
    if rnd["status"] == "signed":
        if rnd["late"]:
            return "late"
        return "zero" if rnd["zero_report"] else "reported"
    if rnd["status"] == "overdue":
        return "missing"
    if rnd["status"] == "submitted":
        return "submitted"
    return "open"


def _months_back(last: date, count: int) -> list[str]:
    out: list[str] = []
    year, month = last.year, last.month
    for _i in range(count):
        out.append(f"{year:04d}-{month:02d}")
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return list(reversed(out))


@bp.route("/screening")
@login_required
def screening_board() -> Any:
    """Units × months: each round's colour by its state; each cell opens that month's ledger."""
    svc = services()
    actor = current_actor()
    today = local_today(svc.clock)
    last_raw = request.args.get("to", "")
    try:
        last = screening_service.parse_month(last_raw, "to") if last_raw else today
    except ValidationError:
        last = today
    months = _months_back(last, BOARD_MONTHS)
    units: dict[int, dict[str, Any]] = {}
    counts = dict.fromkeys(CELL_LABELS, 0)
    with svc.uow() as uow:
        for month in months:
            for rnd in screening_service.list_rounds(uow, actor, month=month, today=today):
                row = units.setdefault(
                    rnd["unit_id"],
                    {
                        "unit_id": rnd["unit_id"],
                        "name": rnd["unit_name"],
                        "code": rnd["unit_code"],
                        "cells": {},
                    },
                )
                state = cell_state(rnd)
                row["cells"][month] = {**rnd, "state": state}
                if month == months[-1]:
                    counts[state] += 1
    rows = sorted(units.values(), key=lambda r: r["code"])
    return render_template(
        "screening/board.html",
        months=months,
        rows=rows,
        counts=counts,
        labels={k: str(v) for k, v in CELL_LABELS.items()},
        prev_to=months[0],
        next_to=_months_back(
            screening_service.next_month(screening_service.parse_month(months[-1])), 1
        )[0],
        current=months[-1],
    )


@bp.route("/screening/ledger")
@login_required
def screening_ledger() -> Any:
    """A month's hazard ledger for a unit (with sub-units): filters, print and XLSX download."""
    svc = services()
    actor = current_actor()
    today = local_today(svc.clock)
    month = request.args.get("month") or f"{today.year:04d}-{today.month:02d}"
    unit_raw = request.args.get("unit_id", "")
    unit_id = int(unit_raw) if unit_raw.isdigit() else None
    status = request.args.get("status") or None
    risk = request.args.get("risk_level") or None
    overdue = request.args.get("overdue") == "1"
    flt = screening_service.HazardFilter(
        status=status,
        unit_id=unit_id,
        risk_level=risk,
        month=month,
        overdue=True if overdue else None,
        per_page=screening_service.MAX_PER_PAGE,
    )
    with svc.uow() as uow:
        result = screening_service.list_hazards(uow, actor, flt, today)
        rounds = screening_service.list_rounds(
            uow, actor, month=month, unit_id=unit_id, today=today
        )
        units = [orgs.unit_view(u) for u in orgs.list_units(uow, actor)]
    unit_name = next((u["name"] for u in units if u["id"] == unit_id), None)
    for item in result["items"]:
        item["dispute_type_label"] = DisputeType(item["dispute_type"]).label(page_lang())
        item["status_label"] = str(HAZARD_STATUS.get(item["status"], item["status"]))
    for rnd in rounds:
        rnd["state"] = cell_state(rnd)
    args = {k: v for k, v in request.args.items() if v}
    export_args: dict[str, Any] = {"month": month}
    if unit_id:
        export_args["unit_id"] = unit_id
    return render_template(
        "screening/ledger.html",
        result=result,
        rounds=rounds,
        month=month,
        unit_id=unit_id,
        unit_name=unit_name,
        units=[u for u in units if u["kind"] != "district"],
        status=status,
        risk=risk,
        overdue=overdue,
        statuses={k: str(v) for k, v in HAZARD_STATUS.items()},
        risks=RiskLevel.labels(page_lang()),
        labels={k: str(v) for k, v in CELL_LABELS.items()},
        export_url=url_for("screening_exports.export_ledger", **export_args),
        args=args,
        printed_at=svc.clock.now(),
    )


HAZARD_TEXT = ("parties", "summary", "measures", "responsible_person", "owning_leader", "source")


def hazard_body(form: Any) -> dict[str, Any]:
    """The posted hazard form as add_hazard expects it (same body as the API's JSON)."""
    body: dict[str, Any] = {}
    for name in (*HAZARD_TEXT, "dispute_type", "risk_level", "method", "found_on"):
        value = (form.get(name) or "").strip()
        if value:
            body[name] = value
    for name in ("involved_count", "responsible_unit_id"):
        raw = (form.get(name) or "").strip()
        if raw:
            body[name] = int(raw) if raw.isdigit() else raw
    body["criminal_risk"] = form.get("criminal_risk") == "on"
    if form.get("time_limit_on"):
        body["time_limit_on"] = form["time_limit_on"]
    return body


@bp.route("/screening/rounds/<int:round_id>/hazards", methods=["POST"])
@login_required
def screening_add_hazard(round_id: int) -> Any:
    """Enter a hazard in an open round (same service as POST /screening/rounds/{id}/hazards)."""
    case_id = request.form.get("case_id", "")
    back = url_for("pages.case_page", case_id=int(case_id)) if case_id.isdigit() else "/"
    try:
        hazard = screening_service.add_hazard(
            services(), current_actor(), round_id, hazard_body(request.form)
        )
    except ValidationError as exc:
        errors = translate_errors(exc.errors) or {}
        for field, messages in errors.items():
            label = str(HAZARD_FIELD_LABELS.get(field, field))
            flash(f"{label}: {' '.join(messages)}", "error")
        return redirect(back + "#add-hazard")
    except (ConflictError, PermissionDeniedError) as exc:
        flash(exc.message, "error")
        return redirect(back)
    flash(_("Hazard %(no)s entered in the ledger.", no=hazard["ledger_no"]))
    return redirect(back)


HAZARD_FIELD_LABELS: dict[str, Any] = {
    "dispute_type": _l("Dispute type"),
    "parties": _l("Parties"),
    "involved_count": _l("People involved"),
    "summary": _l("Summary"),
    "risk_level": _l("Risk level"),
    "method": _l("Method"),
    "responsible_unit_id": _l("Responsible unit"),
    "responsible_person": _l("Responsible person"),
    "owning_leader": _l("Owning leader"),
    "found_on": _l("Found on"),
    "time_limit_on": _l("Time limit"),
    "measures": _l("Measures"),
}


def _round_section(case: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """On a screening round's case page: its ledger entries and, while open, the entry form."""
    if case["case_type"] != screening_service.ROUND_TYPE:
        return None
    svc = services()
    actor = current_actor()
    today = local_today(svc.clock)
    with svc.uow() as uow:
        rounds = [
            r
            for month in [case["data"].get("month")]
            if month
            for r in screening_service.list_rounds(
                uow, actor, month=month, unit_id=case["unit_id"], today=today
            )
            if r["case_id"] == case["id"]
        ]
        if not rounds:
            return None
        rnd = rounds[0]
        hazards = [
            h
            for h in screening_service.list_hazards(
                uow,
                actor,
                screening_service.HazardFilter(
                    month=rnd["month"], unit_id=rnd["unit_id"], per_page=200
                ),
                today,
            )["items"]
            if h["round_id"] == rnd["id"]
        ]
        unit_rows = orgs.list_units(uow, actor)
        units = [orgs.unit_view(u) for u in unit_rows]
        path = next((u.path for u in unit_rows if u.id == rnd["unit_id"]), None)
    rnd["state"] = cell_state(rnd)
    return (
        "screening/_round_section.html",
        {
            "round": rnd,
            "hazards": hazards,
            "units": units,
            "dispute_types": DisputeType.labels(page_lang()),
            "risks": RiskLevel.labels(page_lang()),
            "methods": ResolutionMethod.labels(page_lang()),
            "labels": {k: str(v) for k, v in CELL_LABELS.items()},
            "can_add": rnd["status"] == "open"
            and actor.covers(path, ["reporter", "handler", "leader"]),
        },
    )


CASE_EXTRAS.append(_round_section)
