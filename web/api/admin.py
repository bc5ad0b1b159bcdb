"""Settings, the holiday calendar, the deadline board and KPI figures."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from engine.clock import local_today
from engine.services import calendar as calendar_service
from engine.services import deadlines as deadline_service
from engine.services import reports
from engine.services import settings as settings_service
from engine.services.access import require_admin
from web.auth import current_actor, services

admin_bp = Blueprint("admin", __name__, url_prefix="/api/v1", description="Settings and calendar")
report_bp = Blueprint("reports", __name__, url_prefix="/api/v1/reports", description="KPI figures")
BLUEPRINTS = [admin_bp, report_bp]
SECURE: list[dict[str, list[str]]] = [{"bearer": []}]


class SettingsOut(ma.Schema):
    values = fields.Dict()
    specs = fields.List(fields.Dict())


class CalendarIn(ma.Schema):
    year = fields.Integer(required=True, validate=validate.Range(min=2000, max=2100))
    holidays = fields.List(fields.Raw(), load_default=list)
    workdays = fields.List(fields.String(), load_default=list)
    note = fields.String(validate=validate.Length(max=500))


class CalendarOut(ma.Schema):
    year = fields.Integer()
    holidays = fields.Integer()
    workdays = fields.Integer()


class BoardItem(ma.Schema):
    case_id = fields.Integer()
    case_no = fields.String()
    title = fields.String()
    case_type = fields.String()
    unit_id = fields.Integer(allow_none=True)
    unit_name = fields.String(allow_none=True)
    kind = fields.String()
    due_on = fields.Date()
    state = fields.String()
    days_left = fields.Integer()


class BoardOut(ma.Schema):
    items = fields.List(fields.Nested(BoardItem))
    total = fields.Integer()


class KpiArgs(ma.Schema):
    from_ = fields.Date(required=True, data_key="from")
    to = fields.Date(required=True)
    unit_id = fields.Integer()
    lang = fields.String(load_default="zh", validate=validate.OneOf(["zh", "en"]))


class KpiFigure(ma.Schema):
    key = fields.String()
    label = fields.String()
    definition_zh = fields.String()
    definition_en = fields.String()
    numerator = fields.Integer(allow_none=True)
    denominator = fields.Integer(allow_none=True)
    value = fields.Float(allow_none=True)
    display = fields.String()


class KpiOut(ma.Schema):
    from_ = fields.Date(data_key="from", attribute="from")
    to = fields.Date()
    unit_id = fields.Integer()
    kpis = fields.Dict(keys=fields.String(), values=fields.Nested(KpiFigure))


def _settings_view(values: dict[str, Any]) -> dict[str, Any]:
    specs = [
        {
            "key": s.key,
            "kind": s.kind,
            "default": s.default,
            "label_zh": s.label_zh,
            "label_en": s.label_en,
        }
        for s in settings_service.SPECS.values()
    ]
    return {"values": values, "specs": specs}


@admin_bp.route("/settings")
class Settings(MethodView):
    @admin_bp.response(200, SettingsOut)
    @admin_bp.doc(security=SECURE)
    def get(self) -> dict[str, Any]:
        """Every business setting with its current value (admin)."""
        require_admin(current_actor())
        svc = services()
        with svc.uow() as uow:
            return _settings_view(settings_service.all_settings(uow))

    @admin_bp.arguments(
        ma.Schema.from_dict({"values": fields.Dict(required=True)})(), as_kwargs=True
    )
    @admin_bp.response(200, SettingsOut)
    @admin_bp.doc(security=SECURE)
    def patch(self, values: dict[str, Any]) -> dict[str, Any]:
        """Change settings (admin); unknown keys and wrong types get 422."""
        svc = services()
        with svc.uow() as uow:
            result = settings_service.set_settings(uow, current_actor(), values, svc.clock.now())
            uow.commit()
            return _settings_view(result)


@admin_bp.route("/calendar", methods=["POST"])
@admin_bp.arguments(CalendarIn)
@admin_bp.response(201, CalendarOut)
@admin_bp.doc(security=SECURE)
def import_calendar(body: dict[str, Any]) -> dict[str, Any]:
    """Load a year's official holiday schedule (holidays, ranges, adjusted working days)."""
    import json

    svc = services()
    with svc.uow() as uow:
        result = calendar_service.import_schedule(
            uow, current_actor(), json.dumps(body, default=str), source="api", now=svc.clock.now()
        )
        uow.commit()
        return result


@admin_bp.route("/deadlines")
@admin_bp.response(200, BoardOut)
@admin_bp.doc(security=SECURE)
def deadline_board() -> dict[str, Any]:
    """All open deadlines in scope, earliest first (the supervisors' board)."""
    svc = services()
    with svc.uow() as uow:
        items = deadline_service.open_deadlines_board(uow, current_actor(), local_today(svc.clock))
    return {"items": items, "total": len(items)}


@report_bp.route("/kpi")
@report_bp.arguments(KpiArgs, location="query")
@report_bp.response(200, KpiOut)
@report_bp.doc(security=SECURE)
def kpi(args: dict[str, Any]) -> dict[str, Any]:
    """Each KPI of DOMAIN.md §3 with its numerator and denominator; empty denominators give null."""
    svc = services()
    with svc.uow() as uow:
        period = reports.resolve_period(
            uow, current_actor(), args["from_"], args["to"], args.get("unit_id")
        )
        return reports.kpi_report(uow, period, args["lang"])
