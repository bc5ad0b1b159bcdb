"""Petitions (信访件), their review requests, and leader receptions (issue 3)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from engine.services import petitions as service
from web.api import schemas as s
from web.auth import current_actor, services

petition_bp = Blueprint(
    "petitions", __name__, url_prefix="/api/v1/petitions", description="Petitions (信访件)"
)
reception_bp = Blueprint(
    "receptions", __name__, url_prefix="/api/v1/receptions", description="Leader receptions"
)
BLUEPRINTS = [petition_bp, reception_bp]
SECURE: list[dict[str, list[str]]] = [{"bearer": []}]
CHOICES = service.ENUM_CHOICES


class PetitionerIn(ma.Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    id_number = fields.String(allow_none=True, validate=validate.Length(max=30))
    phone = fields.String(allow_none=True, validate=validate.Length(max=30))
    address = fields.String(allow_none=True, validate=validate.Length(max=300))


class PetitionIn(ma.Schema):
    channel = fields.String(required=True, validate=validate.OneOf(CHOICES["channel"]))
    received_on = fields.Date(required=True)
    petitioners = fields.List(
        fields.Nested(PetitionerIn), required=True, validate=validate.Length(min=1, max=50)
    )
    headcount = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=100_000))
    subject = fields.String(required=True, validate=validate.Length(min=1, max=300))
    request = fields.String(required=True, validate=validate.Length(min=1, max=8000))
    facts = fields.String(allow_none=True, validate=validate.Length(max=8000))
    reasons = fields.String(allow_none=True, validate=validate.Length(max=8000))
    category = fields.String(required=True, validate=validate.OneOf(CHOICES["category"]))
    village_id = fields.Integer(allow_none=True)
    source = fields.String(load_default="direct", validate=validate.OneOf(CHOICES["source"]))
    assigned_ref = fields.String(allow_none=True, validate=validate.Length(max=100))
    assigned_due_on = fields.Date(allow_none=True)
    proxy_agent = fields.String(allow_none=True, validate=validate.Length(max=100))
    reception_id = fields.Integer(allow_none=True)
    unit_id = fields.Integer(allow_none=True, metadata={"description": "registering office"})


class PetitionerOut(ma.Schema):
    id = fields.Integer()
    name = fields.String()
    id_number = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    is_representative = fields.Boolean()


class PetitionBase(ma.Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    case_no = fields.String()
    status = fields.String()
    status_label = fields.String()
    channel = fields.String()
    category = fields.String()
    source = fields.String()
    received_on = fields.Date()
    subject = fields.String()
    unit_id = fields.Integer()
    village_id = fields.Integer(allow_none=True)
    responsible_unit_id = fields.Integer(allow_none=True)
    headcount = fields.Integer()
    repeat_of_id = fields.Integer(allow_none=True)
    not_to_be_accepted_again = fields.Boolean()
    decision = fields.String(allow_none=True)
    decided_on = fields.Date(allow_none=True)
    delivered_on = fields.Date(allow_none=True)
    rating = fields.String(allow_none=True)
    evaluated_on = fields.Date(allow_none=True)
    closed_on = fields.Date(allow_none=True)
    petitioners = fields.List(fields.Nested(PetitionerOut))


class PetitionItem(PetitionBase):
    next_due_on = fields.Date(allow_none=True)
    next_due_kind = fields.String(allow_none=True)
    overdue = fields.Boolean()


class PetitionList(ma.Schema):
    items = fields.List(fields.Nested(PetitionItem))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class ReviewOut(ma.Schema):
    id = fields.Integer()
    petition_id = fields.Integer()
    case_id = fields.Integer()
    case_no = fields.String(allow_none=True)
    level = fields.String()
    requested_on = fields.Date()
    window_end = fields.Date()
    decision_due_on = fields.Date()
    review_unit_id = fields.Integer()
    outcome = fields.String(allow_none=True)
    decided_on = fields.Date(allow_none=True)
    delivered_on = fields.Date(allow_none=True)


class SupervisionOut(ma.Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    case_no = fields.String()
    case_status = fields.String()
    deadline_kind = fields.String()
    due_on = fields.Date()
    opened_on = fields.Date()
    method = fields.String(allow_none=True)
    instructed_on = fields.Date(allow_none=True)
    notes = fields.String(allow_none=True)


class PetitionOut(PetitionBase):
    case_status = fields.String()
    version = fields.Integer()
    request = fields.String()
    facts = fields.String(allow_none=True)
    reasons = fields.String(allow_none=True)
    assigned_ref = fields.String(allow_none=True)
    assigned_due_on = fields.Date(allow_none=True)
    proxy_agent = fields.String(allow_none=True)
    reception_id = fields.Integer(allow_none=True)
    decision_reason = fields.String(allow_none=True)
    forward_to = fields.String(allow_none=True)
    handling_method = fields.String(allow_none=True)
    extension_days = fields.Integer(allow_none=True)
    extension_approved_on = fields.Date(allow_none=True)
    outcome = fields.String(allow_none=True)
    reply_text = fields.String(allow_none=True)
    legal_basis = fields.String(allow_none=True)
    delivery_method = fields.String(allow_none=True)
    reply_returns = fields.Integer()
    deadlines = fields.List(fields.Nested(s.DeadlineOut))
    open_tasks = fields.List(fields.Nested(s.TaskOut))
    reviews = fields.List(fields.Nested(ReviewOut))
    supervisions = fields.List(fields.Nested(SupervisionOut))
    timeline = fields.List(fields.Nested(s.TimelineEntry))


class PetitionArgs(s.PageArgs):
    status = fields.String(validate=validate.OneOf(CHOICES["status"]))
    village_id = fields.Integer()
    unit_id = fields.Integer()
    overdue = fields.Boolean(allow_none=True)
    q = fields.String(validate=validate.Length(min=1, max=100))
    received_from = fields.Date()
    received_to = fields.Date()


class DetailArgs(ma.Schema):
    reveal = fields.Boolean(
        load_default=False,
        metadata={"description": "show whole ID and phone numbers (audited; intake/leader)"},
    )


class RepeatArgs(ma.Schema):
    name = fields.String(validate=validate.Length(max=100))
    id_number = fields.String(validate=validate.Length(max=30))
    phone = fields.String(validate=validate.Length(max=30))
    matter = fields.String(load_default="", validate=validate.Length(max=8000))


class RepeatOut(ma.Schema):
    id = fields.Integer()
    case_no = fields.String()
    subject = fields.String()
    status = fields.String()
    received_on = fields.Date()
    open = fields.Boolean()
    not_to_be_accepted_again = fields.Boolean()
    similarity = fields.Float()
    repeat = fields.Boolean()


class RepeatList(ma.Schema):
    items = fields.List(fields.Nested(RepeatOut))
    total = fields.Integer()


class ReviewRequestIn(ma.Schema):
    level = fields.String(required=True, validate=validate.OneOf(CHOICES["level"]))
    requested_on = fields.Date(load_default=None, allow_none=True)


class ReceptionIn(ma.Schema):
    kind = fields.String(required=True, validate=validate.OneOf(CHOICES["kind"]))
    held_on = fields.Date(required=True)
    leader_user_id = fields.Integer(required=True)
    person_count = fields.Integer(required=True, validate=validate.Range(min=1, max=100_000))
    notes = fields.String(allow_none=True, validate=validate.Length(max=4000))
    petition_ids = fields.List(
        fields.Integer(), load_default=list, validate=validate.Length(max=200)
    )
    unit_id = fields.Integer(allow_none=True)


class ReceptionOut(ma.Schema):
    id = fields.Integer()
    kind = fields.String()
    held_on = fields.Date()
    leader_user_id = fields.Integer()
    leader_name = fields.String(allow_none=True)
    unit_id = fields.Integer()
    person_count = fields.Integer()
    notes = fields.String(allow_none=True)
    petition_ids = fields.List(fields.Integer())


class ReceptionList(ma.Schema):
    items = fields.List(fields.Nested(ReceptionOut))
    total = fields.Integer()


class ReceptionArgs(s.PageArgs):
    kind = fields.String(validate=validate.OneOf(CHOICES["kind"]))
    held_from = fields.Date()
    held_to = fields.Date()


@petition_bp.route("")
class Petitions(MethodView):
    @petition_bp.arguments(PetitionArgs, location="query")
    @petition_bp.response(200, PetitionList)
    @petition_bp.doc(security=SECURE)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Petitions in my scope; filters status, village, overdue, q, received from/to."""
        return service.list_petitions(services(), current_actor(), service.PetitionFilter(**args))

    @petition_bp.arguments(PetitionIn)
    @petition_bp.response(201, PetitionOut)
    @petition_bp.doc(security=SECURE)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register a petition (intake); 422 with field messages on bad input."""
        return service.register_petition(services(), current_actor(), body)


@petition_bp.route("/repeat-check")
@petition_bp.arguments(RepeatArgs, location="query")
@petition_bp.response(200, RepeatList)
@petition_bp.doc(security=SECURE)
def repeat_check(args: dict[str, Any]) -> dict[str, Any]:
    """Earlier petitions of the same person (ID, or name and phone), most similar matter first."""
    items = service.possible_repeats(
        services(),
        current_actor(),
        name=args.get("name"),
        id_number=args.get("id_number"),
        phone=args.get("phone"),
        matter=args["matter"],
    )
    return {"items": items, "total": len(items)}


@petition_bp.route("/<int:petition_id>")
@petition_bp.arguments(DetailArgs, location="query")
@petition_bp.response(200, PetitionOut)
@petition_bp.doc(security=SECURE)
def get_petition(args: dict[str, Any], petition_id: int) -> dict[str, Any]:
    """A petition with deadlines, open tasks, reviews, supervisions and its timeline."""
    return service.get_petition(services(), current_actor(), petition_id, reveal=args["reveal"])


@petition_bp.route("/<int:petition_id>/review-requests", methods=["POST"])
@petition_bp.arguments(ReviewRequestIn)
@petition_bp.response(201, ReviewOut)
@petition_bp.doc(security=SECURE)
def request_review(body: dict[str, Any], petition_id: int) -> dict[str, Any]:
    """Record a review (复查) or re-review (复核) request; 422 names the window's end."""
    return service.request_review(services(), current_actor(), petition_id, body)


@reception_bp.route("")
class Receptions(MethodView):
    @reception_bp.arguments(ReceptionArgs, location="query")
    @reception_bp.response(200, ReceptionList)
    @reception_bp.doc(security=SECURE)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Leader receptions and field visits in my scope, newest first."""
        return service.list_receptions(services(), current_actor(), **args)

    @reception_bp.arguments(ReceptionIn)
    @reception_bp.response(201, ReceptionOut)
    @reception_bp.doc(security=SECURE)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Record a leader reception (接访) or field visit (下访)."""
        return service.record_reception(services(), current_actor(), body)
