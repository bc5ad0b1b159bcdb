"""The printable annual report page (issue 8): every year-end figure with its definition."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from engine.clock import local_today
from engine.errors import PermissionDeniedError
from engine.services import annual_report, orgs
from web.auth import current_actor, services
from web.pages import bp, has_role, page_lang, register_nav

register_nav("pages.annual_report", _l("Annual report"), ["supervisor", "leader"], 55)

REPORT_ROLES = ("supervisor", "leader")


@bp.route("/reports/annual", endpoint="annual_report")
@login_required
def annual_report_page() -> Any:
    """The year's figures for a unit and its sub-units, laid out to print on A4."""
    actor = current_actor()
    if not has_role(actor, *REPORT_ROLES):
        raise PermissionDeniedError("this page is for supervisors and leaders")
    svc = services()
    today = local_today(svc.clock)
    year_raw = request.args.get("year", "")
    year = int(year_raw) if year_raw.isdigit() else today.year - (1 if today.month < 4 else 0)
    unit_raw = request.args.get("unit_id", "")
    unit_id = int(unit_raw) if unit_raw.isdigit() else None
    lang = page_lang()
    report = annual_report.annual_report(svc, actor, year, unit_id, lang)
    with svc.uow() as uow:
        units = [orgs.unit_view(u) for u in orgs.list_units(uow, actor) if u.kind != "department"]
    return render_template(
        "annual_report.html",
        report=report,
        units=units,
        years=list(range(today.year, today.year - 10, -1)),
        year=year,
        unit_id=report["unit"]["id"],
        lang=lang,
        generated_at=svc.clock.now(),
    )
