"""Monthly dispute screening: rounds, the hazard ledger, escalation and the Excel export."""

from __future__ import annotations

import io
from typing import Any

import marshmallow as ma
from flask import Response, send_file
from flask_smorest import Blueprint
from marshmallow import fields, validate

from engine.clock import local_today
from engine.domain.enums import Category, Channel, DisputeType, ResolutionMethod, RiskLevel
from engine.services import screening
from engine.services.excel import XLSX_MIME
from engine.services.screening_export import export_screening_ledger
from web.auth import current_actor, services

screening_bp = Blueprint(
    "screening",
    __name__,
    url_prefix="/api/v1/screening",
    description="Monthly dispute screening (矛盾纠纷排查) and the hazard ledger",
)
screening_export_bp = Blueprint(
    "screening_exports", __name__, url_prefix="/api/v1/exports", description="Excel exports"
)
BLUEPRINTS = [screening_bp, screening_export_bp]
SECURE: list[dict[str, list[str]]] = [{"bearer": []}]
MONTH = validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="Use YYYY-MM.")


class RoundArgs(ma.Schema):
    month = fields.String(required=True, validate=MONTH)
    unit_id = fields.Integer()
    status = fields.String(validate=validate.OneOf(screening.ROUND_STATUSES))


class RoundOut(ma.Schema):
    id = fields.Integer()
    unit_id = fields.Integer()
    unit_name = fields.String()
    unit_code = fields.String()
    month = fields.String()
    due_on = fields.Date()
    status = fields.String()
    late = fields.Boolean()
    zero_report = fields.Boolean(allow_none=True)
    hazard_count = fields.Integer()
    carried_over_count = fields.Integer()
    submitted_on = fields.Date(allow_none=True)
    signed_on = fields.Date(allow_none=True)
    case_id = fields.Integer(allow_none=True)
    rejection_reason = fields.String(allow_none=True)


class RoundList(ma.Schema):
    items = fields.List(fields.Nested(RoundOut))
    total = fields.Integer()


class HazardIn(ma.Schema):
    dispute_type = fields.String(
        required=True, validate=validate.OneOf([d.value for d in DisputeType])
    )
    parties = fields.String(required=True, validate=validate.Length(min=1, max=500))
    involved_count = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    summary = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    risk_level = fields.String(required=True, validate=validate.OneOf([r.value for r in RiskLevel]))
    criminal_risk = fields.Boolean(load_default=False)
    measures = fields.String(load_default="", validate=validate.Length(max=4000))
    method = fields.String(
        required=True, validate=validate.OneOf([m.value for m in ResolutionMethod])
    )
    responsible_unit_id = fields.Integer(required=True, strict=True)
    responsible_person = fields.String(required=True, validate=validate.Length(min=1, max=100))
    owning_leader = fields.String(validate=validate.Length(max=100))
    source = fields.String(validate=validate.Length(max=100))
    found_on = fields.Date()
    time_limit_on = fields.Date(allow_none=True)


class HazardOut(ma.Schema):
    id = fields.Integer()
    ledger_no = fields.String()
    case_id = fields.Integer(allow_none=True)
    round_id = fields.Integer(allow_none=True)
    unit_id = fields.Integer()
    unit_name = fields.String(allow_none=True)
    month = fields.String()
    found_on = fields.Date()
    source = fields.String()
    dispute_type = fields.String()
    dispute_type_label = fields.String()
    parties = fields.String()
    involved_count = fields.Integer()
    summary = fields.String()
    risk_level = fields.String()
    criminal_risk = fields.Boolean()
    measures = fields.String()
    method = fields.String()
    responsible_unit_id = fields.Integer()
    responsible_unit_name = fields.String(allow_none=True)
    responsible_person = fields.String()
    owning_leader = fields.String()
    time_limit_on = fields.Date()
    progress = fields.String()
    status = fields.String()
    overdue = fields.Boolean()
    carried_over = fields.Boolean()
    resolution = fields.String(allow_none=True)
    evidence_refs = fields.String(allow_none=True)
    resolved_on = fields.Date(allow_none=True)
    confirmed_on = fields.Date(allow_none=True)
    signed_off_on = fields.Date(allow_none=True)
    signed_off_by_id = fields.Integer(allow_none=True)
    rejection_reason = fields.String(allow_none=True)
    escalated_to = fields.String(allow_none=True)
    escalated_case_id = fields.Integer(allow_none=True)
    escalated_case_no = fields.String(allow_none=True)


class NoteOut(ma.Schema):
    id = fields.Integer()
    noted_on = fields.Date()
    text = fields.String()
    author_id = fields.Integer(allow_none=True)


class AgreementOut(ma.Schema):
    id = fields.Integer()
    agreement_no = fields.String()
    signed_on = fields.Date()
    parties = fields.String()
    judicial_confirmation_due = fields.Date()
    judicial_confirmation_on = fields.Date(allow_none=True)


class HazardDetail(HazardOut):
    notes = fields.List(fields.Nested(NoteOut))
    agreements = fields.List(fields.Nested(AgreementOut))
    case = fields.Dict(allow_none=True)


class HazardList(ma.Schema):
    items = fields.List(fields.Nested(HazardOut))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class HazardArgs(ma.Schema):
    status = fields.String(validate=validate.OneOf(screening.HAZARD_STATUSES))
    unit_id = fields.Integer()
    risk_level = fields.String(validate=validate.OneOf([r.value for r in RiskLevel]))
    month = fields.String(validate=MONTH)
    overdue = fields.Boolean()
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class NoteIn(ma.Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    noted_on = fields.Date()


class PartyIn(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    id_number = fields.String(allow_none=True, validate=validate.Length(max=40))
    phone = fields.String(allow_none=True, validate=validate.Length(max=40))
    address = fields.String(allow_none=True, validate=validate.Length(max=300))


class EscalateIn(ma.Schema):
    """Escalation target; every other field is optional and defaults from the ledger entry."""

    target = fields.String(required=True, validate=validate.OneOf(screening.ESCALATION_TARGETS))
    note = fields.String(load_default="", validate=validate.Length(max=1000))
    # petition
    channel = fields.String(validate=validate.OneOf([c.value for c in Channel]))
    category = fields.String(validate=validate.OneOf([c.value for c in Category]))
    subject = fields.String(validate=validate.Length(min=1, max=300))
    request = fields.String(validate=validate.Length(min=1, max=8000))
    petitioners = fields.List(fields.Nested(PartyIn), validate=validate.Length(min=1, max=5))
    received_on = fields.Date()
    # key-person file
    name = fields.String(validate=validate.Length(min=1, max=100))
    core_demand = fields.String(validate=validate.Length(min=1, max=4000))
    id_number = fields.String(validate=validate.Length(max=40))
    phone = fields.String(validate=validate.Length(max=40))


class ExportArgs(ma.Schema):
    month = fields.String(required=True, validate=MONTH)
    unit_id = fields.Integer()


@screening_bp.route("/rounds")
@screening_bp.arguments(RoundArgs, location="query")
@screening_bp.response(200, RoundList)
@screening_bp.doc(security=SECURE)
def list_rounds(args: dict[str, Any]) -> dict[str, Any]:
    """A month's rounds in my scope: status open|submitted|signed|overdue, zero report, counts."""
    svc = services()
    with svc.uow() as uow:
        items = screening.list_rounds(
            uow,
            current_actor(),
            month=args["month"],
            unit_id=args.get("unit_id"),
            status=args.get("status"),
            today=local_today(svc.clock),
        )
    return {"items": items, "total": len(items)}


@screening_bp.route("/rounds/<int:round_id>/hazards", methods=["POST"])
@screening_bp.arguments(HazardIn)
@screening_bp.response(201, HazardOut)
@screening_bp.doc(security=SECURE)
def add_hazard(body: dict[str, Any], round_id: int) -> dict[str, Any]:
    """Enter a hazard in the round's ledger; answers with its ledger number JF-<year>-<n>."""
    return screening.add_hazard(services(), current_actor(), round_id, body)


@screening_bp.route("/hazards")
@screening_bp.arguments(HazardArgs, location="query")
@screening_bp.response(200, HazardList)
@screening_bp.doc(security=SECURE)
def list_hazards(args: dict[str, Any]) -> dict[str, Any]:
    """Ledger entries in my scope; `month` lists that month's ledger with carried-over entries."""
    svc = services()
    with svc.uow() as uow:
        return screening.list_hazards(
            uow, current_actor(), screening.HazardFilter(**args), local_today(svc.clock)
        )


@screening_bp.route("/hazards/<int:hazard_id>")
@screening_bp.response(200, HazardDetail)
@screening_bp.doc(security=SECURE)
def get_hazard(hazard_id: int) -> dict[str, Any]:
    """One ledger entry with its progress notes, agreements, tasks, deadlines and timeline."""
    svc = services()
    with svc.uow() as uow:
        return screening.get_hazard(uow, current_actor(), hazard_id, local_today(svc.clock))


@screening_bp.route("/hazards/<int:hazard_id>/notes", methods=["POST"])
@screening_bp.arguments(NoteIn)
@screening_bp.response(201, NoteOut)
@screening_bp.doc(security=SECURE)
def add_note(body: dict[str, Any], hazard_id: int) -> dict[str, Any]:
    """Record a progress note (化解进展) while the hazard is being resolved."""
    return screening.add_hazard_note(
        services(), current_actor(), hazard_id, body["text"], body.get("noted_on")
    )


@screening_bp.route("/hazards/<int:hazard_id>/escalate", methods=["POST"])
@screening_bp.arguments(EscalateIn)
@screening_bp.response(201, HazardOut)
@screening_bp.doc(security=SECURE)
def escalate(body: dict[str, Any], hazard_id: int) -> dict[str, Any]:
    """Escalate into a petition case or a key-person file; the two stay linked."""
    details = {k: v for k, v in body.items() if k not in {"target", "note"}}
    if "received_on" in details:
        details["received_on"] = details["received_on"].isoformat()
    return screening.escalate_hazard(
        services(), current_actor(), hazard_id, body["target"], details
    )


@screening_export_bp.route("/screening-ledger.xlsx")
@screening_export_bp.arguments(ExportArgs, location="query")
@screening_export_bp.doc(
    security=SECURE,
    responses={"200": {"description": "The ledger workbook", "content": {XLSX_MIME: {}}}},
)
def export_ledger(args: dict[str, Any]) -> Response:
    """The month's screening ledger: a summary sheet and one sheet per unit (A4 landscape)."""
    data, filename = export_screening_ledger(
        services(), current_actor(), args["month"], args.get("unit_id")
    )
    return send_file(
        io.BytesIO(data), mimetype=XLSX_MIME, as_attachment=True, download_name=filename
    )
