"""Supervisors' pages: the deadline board (红黄牌, 督办) and the KPI dashboard (DOMAIN.md §3)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from flask import render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from engine.clock import local_today
from engine.domain.kpi import KPI_DEFINITIONS
from engine.errors import PermissionDeniedError, ValidationError
from engine.services import deadlines as deadline_service
from engine.services import orgs, reports
from engine.services.reports import Period
from engine.services.settings import get_setting
from web.auth import current_actor, services
from web.pages import bp, has_role, page_lang, register_nav

register_nav("pages.deadline_board", _l("Deadline board"), ["supervisor", "leader"], 40)
register_nav("pages.kpi_dashboard", _l("KPI dashboard"), ["supervisor", "leader"], 50)

SUPERVISE_LINKS: list[Callable[[dict[str, Any]], str | None]] = []
"""Capability page modules add fn(board item) -> URL of its 督办 action (or None)."""

BOARD_ROLES = ("supervisor", "leader")
MAX_TREND_MONTHS = 24
COMPARE_KINDS = frozenset({"village", "community"})


def _require(*roles: str) -> None:
    if not has_role(current_actor(), *roles):
        raise PermissionDeniedError("this page is for supervisors and leaders")


def card_level(days_left: int, state: str, warning_days: int) -> str | None:
    """红牌 once missed, 黄牌 within the warning lead time (the rule of the warnings job)."""
    if state == "missed" or days_left < 0:
        return "red"
    if days_left <= warning_days:
        return "yellow"
    return None


@bp.route("/deadlines")
@login_required
def deadline_board() -> Any:
    """All open deadlines in scope, earliest first, grouped by unit with red and yellow counts."""
    _require(*BOARD_ROLES)
    svc = services()
    actor = current_actor()
    only = request.args.get("only") or ""
    with svc.uow() as uow:
        items = deadline_service.open_deadlines_board(uow, actor, local_today(svc.clock))
        warning_days = int(get_setting(uow, "warning_days"))
    groups: dict[str, dict[str, Any]] = {}
    totals = {"red": 0, "yellow": 0, "all": 0}
    for item in items:
        item["card"] = card_level(item["days_left"], item["state"], warning_days)
        item["supervise_url"] = next(
            (url for url in (link(item) for link in SUPERVISE_LINKS) if url), None
        )
        totals["all"] += 1
        if item["card"]:
            totals[item["card"]] += 1
        if only in {"red", "yellow"} and item["card"] != only:
            continue
        name = item["unit_name"] or _("No unit")
        group = groups.setdefault(name, {"unit": name, "items": [], "red": 0, "yellow": 0})
        group["items"].append(item)
        if item["card"]:
            group[item["card"]] += 1
    ordered = sorted(
        groups.values(), key=lambda g: (-g["red"], -g["yellow"], g["items"][0]["due_on"])
    )
    return render_template(
        "deadline_board.html",
        groups=ordered,
        totals=totals,
        only=only,
        warning_days=warning_days,
    )


def _month_starts(date_from: date, date_to: date) -> list[date]:
    out: list[date] = []
    cursor = date_from.replace(day=1)
    while cursor <= date_to and len(out) < MAX_TREND_MONTHS:
        out.append(cursor)
        cursor = (cursor + timedelta(days=32)).replace(day=1)
    return out


def _parse_date(raw: str | None, default: date, field: str) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        message = "Not a valid date; use YYYY-MM-DD."
        raise ValidationError("invalid date", {field: [message]}) from None


@bp.route("/kpi")
@login_required
def kpi_dashboard() -> Any:
    """KPI figures for a period and unit, with a monthly trend and a per-village comparison."""
    _require(*BOARD_ROLES)
    svc = services()
    actor = current_actor()
    lang = page_lang()
    today = local_today(svc.clock)
    date_from = _parse_date(request.args.get("from"), today.replace(month=1, day=1), "from")
    date_to = _parse_date(request.args.get("to"), today, "to")
    unit_raw = request.args.get("unit_id", "")
    unit_id = int(unit_raw) if unit_raw.isdigit() else None
    with svc.uow() as uow:
        period = reports.resolve_period(uow, actor, date_from, date_to, unit_id)
        report = reports.kpi_report(uow, period, lang)
        rows = [u for u in orgs.list_units(uow, actor) if u.kind != "department"]
        units = [orgs.unit_view(u) for u in rows]
        trend = []
        for start in _month_starts(period.date_from, period.date_to):
            end = min((start + timedelta(days=32)).replace(day=1) - timedelta(days=1), date_to)
            month = Period(max(start, date_from), end, period.unit_id, period.unit_path)
            trend.append({"month": start.strftime("%Y-%m"), **reports.kpi_report(uow, month, lang)})
        children = [
            u
            for u in rows
            if u.parent_id == period.unit_id and u.kind in COMPARE_KINDS and u.active
        ]
        comparison = [
            {
                "unit": u.name,
                **reports.kpi_report(uow, Period(date_from, date_to, u.id, u.path), lang),
            }
            for u in children
        ]
    kpis = report["kpis"]
    # The figures of DOMAIN.md §3 first, in their order; capabilities' extra figures after.
    main_keys = [k for k in KPI_DEFINITIONS if k in kpis]
    rate_keys = [k for k in main_keys if kpis[k].get("denominator") is not None]
    count_keys = [k for k in main_keys if k not in rate_keys]
    extra_keys = [k for k in kpis if k not in KPI_DEFINITIONS]
    for key in extra_keys:
        kpis[key].setdefault("label", key.replace("_", " "))
    chart = {
        "trend": {
            "labels": [t["month"] for t in trend],
            "series": [
                {
                    "label": kpis[k].get("label", k),
                    "data": [_percent(t["kpis"].get(k)) for t in trend],
                }
                for k in rate_keys
            ],
        },
        "compare": {
            "labels": [c["unit"] for c in comparison],
            "series": [
                {
                    "label": kpis[k].get("label", k),
                    "data": [_percent(c["kpis"].get(k)) for c in comparison],
                }
                for k in rate_keys
            ],
        },
        "percent": _("Rate (%)"),
    }
    return render_template(
        "kpi.html",
        report=report,
        kpis=kpis,
        rate_keys=rate_keys,
        count_keys=count_keys,
        extra_keys=extra_keys,
        trend=trend,
        comparison=comparison,
        units=units,
        unit_id=period.unit_id,
        date_from=date_from,
        date_to=date_to,
        chart=chart,
        lang=lang,
    )


def _percent(figure: dict[str, Any] | None) -> float | None:
    if not figure or figure.get("value") is None:
        return None
    return round(float(figure["value"]) * 100, 1)
