"""Key petitioners (重点信访人员): files, candidates, reopening and the risk-ledger export."""

from __future__ import annotations

import io
from typing import Any

import marshmallow as ma
from flask import Response, send_file
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from engine.domain.enums import KeyPersonSource, RiskLevel
from engine.services import stabilization
from engine.services.excel import XLSX_MIME
from engine.services.stabilization import STATUSES, KeyPersonFilter
from engine.services.stabilization_export import export_key_person_ledger
from web.api.schemas import TaskOut
from web.auth import current_actor, services

key_person_bp = Blueprint(
    "key_persons",
    __name__,
    url_prefix="/api/v1/key-persons",
    description="Key petitioners: one person, one special team, one plan (一人一专班、一人一对策)",
)
key_person_export_bp = Blueprint(
    "key_person_exports", __name__, url_prefix="/api/v1/exports", description="Excel exports"
)
BLUEPRINTS = [key_person_bp, key_person_export_bp]
SECURE: list[dict[str, list[str]]] = [{"bearer": []}]


class KeyPersonIn(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    id_number = fields.String(allow_none=True, validate=validate.Length(max=40))
    phone = fields.String(allow_none=True, validate=validate.Length(max=40))
    village_id = fields.Integer(required=True)
    source = fields.String(
        required=True, validate=validate.OneOf([s.value for s in KeyPersonSource])
    )
    assigned_ref = fields.String(allow_none=True, validate=validate.Length(max=100))
    core_demand = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    petition_ids = fields.List(fields.Integer(), load_default=list)


class KeyPersonArgs(ma.Schema):
    risk_level = fields.String(validate=validate.OneOf([r.value for r in RiskLevel]))
    village_id = fields.Integer()
    status = fields.String(validate=validate.OneOf(STATUSES))
    overdue_contact = fields.Boolean()
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class ExportArgs(ma.Schema):
    risk_level = fields.String(validate=validate.OneOf([r.value for r in RiskLevel]))
    village_id = fields.Integer()
    status = fields.String(validate=validate.OneOf(STATUSES))
    overdue_contact = fields.Boolean()


class ReadArgs(ma.Schema):
    reveal = fields.Boolean(
        load_default=False,
        metadata={"description": "Show whole ID and phone numbers (the read is audited)."},
    )


class ReopenIn(ma.Schema):
    reason = fields.String(required=True, validate=validate.Length(max=2000))


class KeyPersonSummary(ma.Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    name = fields.String()
    id_number_masked = fields.String(allow_none=True)
    phone_masked = fields.String(allow_none=True)
    village_id = fields.Integer()
    village_name = fields.String(allow_none=True)
    source = fields.String()
    assigned_ref = fields.String(allow_none=True)
    core_demand = fields.String()
    status = fields.String()
    status_label = fields.String()
    risk_level = fields.String(allow_none=True)
    risk_label = fields.String(allow_none=True)
    cadence_days = fields.Integer(allow_none=True)
    lead_leader_id = fields.Integer(allow_none=True)
    lead_leader_name = fields.String(allow_none=True)
    responsible_unit_id = fields.Integer(allow_none=True)
    responsible_unit_name = fields.String(allow_none=True)
    registered_on = fields.Date()
    last_contact_on = fields.Date(allow_none=True)
    next_contact_on = fields.Date(allow_none=True)
    contact_overdue = fields.Boolean()
    contact_overdue_since = fields.Date(allow_none=True)
    signed_off_on = fields.Date(allow_none=True)


class KeyPersonList(ma.Schema):
    items = fields.List(fields.Nested(KeyPersonSummary))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class MemberOut(ma.Schema):
    user_id = fields.Integer(allow_none=True)
    name = fields.String()
    role = fields.String()


class TeamOut(ma.Schema):
    lead_leader_id = fields.Integer(allow_none=True)
    lead_leader_name = fields.String(allow_none=True)
    responsible_unit_id = fields.Integer(allow_none=True)
    responsible_unit_name = fields.String(allow_none=True)
    approved_on = fields.Date(allow_none=True)
    members = fields.List(fields.Nested(MemberOut))


class PlanOut(ma.Schema):
    plan = fields.String(allow_none=True)
    plan_due_on = fields.Date(allow_none=True)
    assessment = fields.String(allow_none=True)
    measures = fields.String(allow_none=True)
    sensitive_plan = fields.String(allow_none=True)


class EscalationsOut(ma.Schema):
    province = fields.Integer()
    capital = fields.Integer()


class RiskEntryOut(ma.Schema):
    id = fields.Integer()
    kind = fields.String()
    assessed_on = fields.Date()
    risk_level = fields.String()
    previous_level = fields.String(allow_none=True)
    assessment = fields.String()
    measures = fields.String()
    checklists = fields.Dict()
    by = fields.String(allow_none=True)


class ContactOut(ma.Schema):
    id = fields.Integer()
    cycle_no = fields.Integer()
    opened_on = fields.Date()
    due_on = fields.Date()
    state = fields.String()
    contacted_on = fields.Date(allow_none=True)
    method = fields.String(allow_none=True)
    situation = fields.String(allow_none=True)
    risk_signal = fields.String(allow_none=True)
    recorded_by = fields.String(allow_none=True)


class DailyReportOut(ma.Schema):
    report_on = fields.Date()
    period_name = fields.String()
    state = fields.String()
    all_calm = fields.Boolean(allow_none=True)
    situation = fields.String(allow_none=True)
    risk_signal = fields.String(allow_none=True)


class PetitionRefOut(ma.Schema):
    id = fields.Integer()
    case_no = fields.String()
    received_on = fields.Date()
    subject = fields.String()
    status = fields.String()


class ClosureOut(ma.Schema):
    id = fields.Integer()
    status = fields.String()
    evidence_kind = fields.String()
    evidence_ref = fields.String()
    return_visit_on = fields.Date()
    summary = fields.String()
    proposed_by = fields.String(allow_none=True)
    proposed_at = fields.DateTime()
    approved_by = fields.String(allow_none=True)
    approved_on = fields.Date(allow_none=True)
    verified_by = fields.String(allow_none=True)
    verified_on = fields.Date(allow_none=True)
    rejected_by = fields.String(allow_none=True)
    rejected_step = fields.String(allow_none=True)
    rejection_reason = fields.String(allow_none=True)
    signed_off_on = fields.Date(allow_none=True)
    reopened_on = fields.Date(allow_none=True)
    reopened_by = fields.String(allow_none=True)
    reopen_reason = fields.String(allow_none=True)


class KeyPersonOut(KeyPersonSummary):
    unit_id = fields.Integer()
    unit_name = fields.String(allow_none=True)
    id_number = fields.String(metadata={"description": "Only with ?reveal=true (audited)."})
    phone = fields.String(metadata={"description": "Only with ?reveal=true (audited)."})
    team = fields.Nested(TeamOut)
    plan = fields.Nested(PlanOut)
    escalations = fields.Nested(EscalationsOut)
    risk_history = fields.List(fields.Nested(RiskEntryOut))
    contacts = fields.List(fields.Nested(ContactOut))
    contacts_total = fields.Integer()
    daily_reports = fields.List(fields.Nested(DailyReportOut))
    petitions = fields.List(fields.Nested(PetitionRefOut))
    closures = fields.List(fields.Nested(ClosureOut))
    open_tasks = fields.List(fields.Nested(TaskOut))
    reopened_count = fields.Integer()


class CandidateOut(ma.Schema):
    name = fields.String()
    id_number_masked = fields.String(allow_none=True)
    phone_masked = fields.String(allow_none=True)
    village_id = fields.Integer(allow_none=True)
    petitions_in_12_months = fields.Integer()
    has_re_review = fields.Boolean()
    reasons = fields.List(fields.String())
    petition_ids = fields.List(fields.Integer())
    latest_subject = fields.String()
    suggested_source = fields.String()


class CandidateList(ma.Schema):
    items = fields.List(fields.Nested(CandidateOut))
    total = fields.Integer()


def _filter(args: dict[str, Any]) -> KeyPersonFilter:
    return KeyPersonFilter(**args)


@key_person_bp.route("")
class KeyPersons(MethodView):
    @key_person_bp.arguments(KeyPersonArgs, location="query")
    @key_person_bp.response(200, KeyPersonList)
    @key_person_bp.doc(security=SECURE)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Files I may see (team, petition office, supervisors), by risk, village, status."""
        return stabilization.list_key_persons(services(), current_actor(), _filter(args))

    @key_person_bp.arguments(KeyPersonIn)
    @key_person_bp.response(201, KeyPersonOut)
    @key_person_bp.doc(security=SECURE)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register a key person; the street leader forms the special team next."""
        return stabilization.register_key_person(services(), current_actor(), body)


@key_person_bp.route("/candidates")
@key_person_bp.response(200, CandidateList)
@key_person_bp.doc(security=SECURE)
def candidates() -> dict[str, Any]:
    """People with 3+ petitions in 12 months or any re-review, without an open file."""
    return stabilization.propose_candidates(services(), current_actor())


@key_person_bp.route("/<int:key_person_id>")
@key_person_bp.arguments(ReadArgs, location="query")
@key_person_bp.response(200, KeyPersonOut)
@key_person_bp.doc(security=SECURE)
def get_key_person(args: dict[str, Any], key_person_id: int) -> dict[str, Any]:
    """The file: team, plan, risk history, contacts, petitions, closures and status."""
    return stabilization.get_key_person(
        services(), current_actor(), key_person_id, reveal=bool(args.get("reveal"))
    )


@key_person_bp.route("/<int:key_person_id>/reopen", methods=["POST"])
@key_person_bp.arguments(ReopenIn)
@key_person_bp.response(200, KeyPersonOut)
@key_person_bp.doc(security=SECURE)
def reopen(body: dict[str, Any], key_person_id: int) -> dict[str, Any]:
    """Reopen a signed-off file with a reason (409 unless signed off)."""
    return stabilization.reopen_key_person(
        services(), current_actor(), key_person_id, body["reason"]
    )


@key_person_export_bp.route("/key-person-ledger.xlsx")
@key_person_export_bp.arguments(ExportArgs, location="query")
@key_person_export_bp.doc(
    security=SECURE,
    responses={"200": {"description": "The ledger workbook", "content": {XLSX_MIME: {}}}},
)
def export_ledger(args: dict[str, Any]) -> Response:
    """管控风险研判台账: one row per person with the latest assessment (A4 landscape)."""
    data, filename = export_key_person_ledger(services(), current_actor(), _filter(args))
    return send_file(
        io.BytesIO(data), mimetype=XLSX_MIME, as_attachment=True, download_name=filename
    )
