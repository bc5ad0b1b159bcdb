"""The annual report, the petition ledger export and the historical ledger import (issue 8)."""

from __future__ import annotations

import io
from typing import Any

import marshmallow as ma
from flask import Response, request, send_file
from flask_smorest import Blueprint
from marshmallow import fields, validate

from engine.clock import LOCAL_TZ
from engine.errors import ValidationError
from engine.services import annual_report, petition_import
from engine.services import petitions as petition_service
from engine.services.access import require_admin
from engine.services.excel import XLSX_MIME, export_petition_ledger
from web.auth import current_actor, services

report_bp = Blueprint(
    "annual_reports", __name__, url_prefix="/api/v1/reports", description="Year-end figures"
)
export_bp = Blueprint(
    "petition_exports", __name__, url_prefix="/api/v1/exports", description="Excel exports"
)
import_bp = Blueprint(
    "imports", __name__, url_prefix="/api/v1/imports", description="Ledger imports (admins)"
)
BLUEPRINTS = [report_bp, export_bp, import_bp]
SECURE: list[dict[str, list[str]]] = [{"bearer": []}]
XLSX_DOC = {"200": {"description": "An Excel workbook", "content": {XLSX_MIME: {}}}}


class AnnualArgs(ma.Schema):
    year = fields.Integer(
        required=True,
        validate=validate.Range(min=annual_report.MIN_YEAR, max=annual_report.MAX_YEAR),
    )
    unit_id = fields.Integer()
    lang = fields.String(load_default=None, validate=validate.OneOf(["zh", "en"]))


class AnnualBreakdownItem(ma.Schema):
    key = fields.String()
    label = fields.String()
    label_zh = fields.String()
    label_en = fields.String()
    value = fields.Integer()


class AnnualFigureOut(ma.Schema):
    key = fields.String()
    kind = fields.String(metadata={"description": "count | rate | breakdown"})
    label = fields.String()
    label_zh = fields.String()
    label_en = fields.String()
    definition_zh = fields.String()
    definition_en = fields.String()
    value = fields.Raw(allow_none=True, metadata={"description": "count, or rate 0..1, or null"})
    numerator = fields.Integer(allow_none=True)
    denominator = fields.Integer(allow_none=True)
    display = fields.String(metadata={"description": "as printed: '97.5%', '12' or '—'"})
    items = fields.List(fields.Nested(AnnualBreakdownItem))


class AnnualGroupOut(ma.Schema):
    key = fields.String()
    title = fields.String()
    title_zh = fields.String()
    title_en = fields.String()
    figures = fields.List(fields.Nested(AnnualFigureOut))


class AnnualUnitOut(ma.Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    kind = fields.String()


class AnnualOut(ma.Schema):
    year = fields.Integer()
    from_ = fields.Date(data_key="from", attribute="from")
    to = fields.Date()
    complete = fields.Boolean(metadata={"description": "false while the year is still running"})
    unit = fields.Nested(AnnualUnitOut)
    groups = fields.List(fields.Nested(AnnualGroupOut))


class LedgerArgs(ma.Schema):
    status = fields.String(validate=validate.OneOf(petition_service.ENUM_CHOICES["status"]))
    village_id = fields.Integer()
    unit_id = fields.Integer()
    overdue = fields.Boolean(allow_none=True)
    q = fields.String(validate=validate.Length(min=1, max=100))
    received_from = fields.Date()
    received_to = fields.Date()


class ImportArgs(ma.Schema):
    dry_run = fields.Boolean(load_default=True)
    all_or_nothing = fields.Boolean(load_default=False)
    unit_id = fields.Integer(allow_none=True)


class ImportRowOut(ma.Schema):
    row = fields.Integer()
    status = fields.String(metadata={"description": "imported | would_import | skipped | failed"})
    case_no = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    received_on = fields.Date(allow_none=True)
    subject = fields.String(allow_none=True)
    errors = fields.List(fields.String())


class ImportOut(ma.Schema):
    file_name = fields.String()
    dry_run = fields.Boolean()
    all_or_nothing = fields.Boolean()
    committed = fields.Boolean()
    total = fields.Integer()
    imported = fields.Integer()
    would_import = fields.Integer()
    skipped = fields.Integer()
    failed = fields.Integer()
    rows = fields.List(fields.Nested(ImportRowOut))


def _lang(args: dict[str, Any]) -> str:
    if args.get("lang"):
        return str(args["lang"])
    return "en" if current_actor().language.startswith("en") else "zh"


def _xlsx(data: bytes, filename: str) -> Response:
    return send_file(
        io.BytesIO(data), mimetype=XLSX_MIME, as_attachment=True, download_name=filename
    )


@report_bp.route("/annual")
@report_bp.arguments(AnnualArgs, location="query")
@report_bp.response(200, AnnualOut)
@report_bp.doc(security=SECURE)
def annual(args: dict[str, Any]) -> dict[str, Any]:
    """Every year-end figure for a unit and its sub-units, with definitions in zh and en."""
    return annual_report.annual_report(
        services(), current_actor(), args["year"], args.get("unit_id"), _lang(args)
    )


@report_bp.route("/annual.xlsx")
@report_bp.arguments(AnnualArgs, location="query")
@report_bp.doc(security=SECURE, responses=XLSX_DOC)
def annual_xlsx(args: dict[str, Any]) -> Response:
    """The annual figures as a printable workbook."""
    svc = services()
    report = annual_report.annual_report(
        svc, current_actor(), args["year"], args.get("unit_id"), "zh"
    )
    data = annual_report.annual_report_xlsx(report, generated_at=svc.clock.now())
    return _xlsx(data, f"年度数据-{report['unit']['code']}-{report['year']}.xlsx")


@export_bp.route("/petition-ledger.xlsx")
@export_bp.arguments(LedgerArgs, location="query")
@export_bp.doc(security=SECURE, responses=XLSX_DOC)
def petition_ledger(args: dict[str, Any]) -> Response:
    """信访台账: the petitions GET /petitions would list with these filters, every page."""
    data, filename = export_petition_ledger(
        services(), current_actor(), petition_service.PetitionFilter(**args)
    )
    return _xlsx(data, filename)


@import_bp.route("/petitions/template.xlsx")
@import_bp.doc(security=SECURE, responses=XLSX_DOC)
def petition_template() -> Response:
    """The import template: the common ledger layout with an example row and explanations."""
    data = petition_import.template_xlsx(services().clock.now())
    return _xlsx(data, "信访台账导入模板.xlsx")


@import_bp.route("/petitions", methods=["POST"])
@import_bp.arguments(ImportArgs, location="query")
@import_bp.response(200, ImportOut)
@import_bp.doc(
    security=SECURE,
    requestBody={
        "content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}}}}
    },
)  # fmt: skip
def import_petitions(args: dict[str, Any]) -> dict[str, Any]:
    """Import a historical ledger (admins); dry_run (the default) only reports what would happen."""
    actor = current_actor()
    require_admin(actor)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("no file", {"file": ["Upload the ledger as 'file'."]})
    report = petition_import.import_petitions(
        services(),
        actor,
        upload.read(),
        upload.filename,
        dry_run=args["dry_run"],
        all_or_nothing=args["all_or_nothing"],
        unit_id=args.get("unit_id"),
    )
    return report.as_dict()


@import_bp.route("/petitions/report.xlsx", methods=["POST"])
@import_bp.arguments(ImportArgs, location="query")
@import_bp.doc(security=SECURE, responses=XLSX_DOC)
def import_report(args: dict[str, Any]) -> Response:
    """The same dry run or import, answered with the workbook of failed and skipped rows."""
    actor = current_actor()
    require_admin(actor)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("no file", {"file": ["Upload the ledger as 'file'."]})
    svc = services()
    report = petition_import.import_petitions(
        svc,
        actor,
        upload.read(),
        upload.filename,
        dry_run=args["dry_run"],
        all_or_nothing=args["all_or_nothing"],
        unit_id=args.get("unit_id"),
    )
    local = svc.clock.now().astimezone(LOCAL_TZ)
    return _xlsx(
        petition_import.report_xlsx(report, svc.clock.now()), f"导入结果-{local:%Y%m%d%H%M}.xlsx"
    )
