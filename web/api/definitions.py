"""Process definitions and case types: deploy, list versions, migrate instances (issue 11)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from engine.services import definitions as definition_service
from engine.services.access import require_admin
from engine.services.case_type_data import list_case_types
from web.auth import current_actor, services

def_bp = Blueprint(
    "definitions",
    __name__,
    url_prefix="/api/v1/process-definitions",
    description="BPMN process definitions: deploy, versions, migration",
)
case_type_bp = Blueprint(
    "case_types", __name__, url_prefix="/api/v1/case-types", description="Case types"
)
BLUEPRINTS = [def_bp, case_type_bp]


@def_bp.before_request
def _admins_only() -> None:
    # Every route here is for admins: refuse others before a request body is parsed, so a
    # non-admin learns nothing from validation messages (403, not 422).
    require_admin(current_actor())


SECURE: list[dict[str, list[str]]] = [{"bearer": []}]


class DefinitionOut(ma.Schema):
    id = fields.Integer()
    process_id = fields.String()
    name = fields.String()
    version = fields.Integer()
    sha256 = fields.String()
    filename = fields.String()
    deployed_at = fields.DateTime()
    deployed_by_id = fields.Integer(allow_none=True)
    running_instances = fields.Integer()
    is_latest = fields.Boolean()
    case_types = fields.List(fields.String())


class DefinitionList(ma.Schema):
    items = fields.List(fields.Nested(DefinitionOut))
    total = fields.Integer()


class UserTaskOut(ma.Schema):
    id = fields.String()
    name = fields.String()
    candidate_roles = fields.List(fields.String())
    assignee = fields.String(allow_none=True)
    due_date = fields.String(allow_none=True)
    form_fields = fields.List(fields.String())


class DefinitionDetail(DefinitionOut):
    xml = fields.String()
    user_tasks = fields.List(fields.Nested(UserTaskOut))


class UploadIn(ma.Schema):
    file = fields.Raw(
        required=True,
        metadata={"type": "string", "format": "binary", "description": ".bpmn or .zip"},
    )


class CaseTypeDeployed(ma.Schema):
    name = fields.String()
    version = fields.Integer()
    sha256 = fields.String()
    process_id = fields.String()
    prefix = fields.String()
    label_zh = fields.String()
    label_en = fields.String()


class UploadOut(ma.Schema):
    definitions = fields.List(fields.Nested(DefinitionOut))
    case_types = fields.List(fields.Nested(CaseTypeDeployed))


class MigrationIn(ma.Schema):
    dry_run = fields.Boolean(load_default=True)
    case_ids = fields.List(
        fields.Integer(validate=validate.Range(min=1)),
        load_default=None,
        validate=validate.Length(max=1000),
    )


class ReasonOut(ma.Schema):
    element_id = fields.String(allow_none=True)
    message = fields.String()
    message_zh = fields.String()


class MigrationItem(ma.Schema):
    case_id = fields.Integer()
    case_no = fields.String(allow_none=True)
    from_version = fields.Integer(allow_none=True)
    movable = fields.Boolean()
    migrated = fields.Boolean()
    reopened_tasks = fields.List(fields.String())
    reasons = fields.List(fields.Nested(ReasonOut))


class MigrationOut(ma.Schema):
    definition_id = fields.Integer()
    process_id = fields.String()
    version = fields.Integer()
    dry_run = fields.Boolean()
    movable = fields.Integer()
    migrated = fields.Integer()
    items = fields.List(fields.Nested(MigrationItem))


class CaseTypeOut(ma.Schema):
    name = fields.String()
    process_id = fields.String()
    prefix = fields.String()
    label_zh = fields.String()
    label_en = fields.String()
    source = fields.String(metadata={"description": "code or data"})
    intake_form = fields.Dict(allow_none=True)
    deadlines = fields.List(fields.Dict())
    kpis = fields.List(fields.Dict())


class CaseTypeList(ma.Schema):
    items = fields.List(fields.Nested(CaseTypeOut))
    total = fields.Integer()


@def_bp.route("")
class Definitions(MethodView):
    @def_bp.response(200, DefinitionList)
    @def_bp.doc(security=SECURE)
    def get(self) -> dict[str, Any]:
        """Deployed process versions with their running-instance counts (admin)."""
        svc = services()
        require_admin(current_actor())
        with svc.uow() as uow:
            items = definition_service.list_definitions(uow)
        return {"items": items, "total": len(items)}

    @def_bp.arguments(UploadIn, location="files")
    @def_bp.response(201, UploadOut)
    @def_bp.doc(security=SECURE)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Deploy a .bpmn file or a .zip of BPMN and case-type data (422 names each element)."""
        upload = body["file"]
        content = upload.read(definition_service.MAX_UPLOAD_BYTES + 1)
        return definition_service.deploy_upload(
            services(), current_actor(), upload.filename or "upload.bpmn", content
        )


@def_bp.route("/<int:definition_id>")
@def_bp.response(200, DefinitionDetail)
@def_bp.doc(security=SECURE)
def get_definition(definition_id: int) -> dict[str, Any]:
    """One version with its BPMN XML (for the diagram) and its user tasks (admin)."""
    svc = services()
    require_admin(current_actor())
    with svc.uow() as uow:
        return definition_service.get_definition(svc, uow, definition_id)


@def_bp.route("/<int:definition_id>/migrations", methods=["POST"])
@def_bp.arguments(MigrationIn)
@def_bp.response(200, MigrationOut)
@def_bp.doc(security=SECURE)
def migrate_to(body: dict[str, Any], definition_id: int) -> dict[str, Any]:
    """Move running cases of older versions onto this one; a dry run says who could (admin)."""
    return definition_service.migrate_instances(
        services(),
        current_actor(),
        definition_id,
        dry_run=body["dry_run"],
        case_ids=body.get("case_ids"),
    )


@case_type_bp.route("")
@case_type_bp.response(200, CaseTypeList)
@case_type_bp.doc(security=SECURE)
def case_types() -> dict[str, Any]:
    """Every case type (in code or deployed as data) with its intake form, deadlines, KPIs."""
    current_actor()
    items = list_case_types(services())
    return {"items": items, "total": len(items)}
