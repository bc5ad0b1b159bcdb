"""Marshmallow schemas of the JSON API; OpenAPI is generated from them."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from engine.domain.enums import Role, UnitKind


class PageArgs(ma.Schema):
    """Paging of every list."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    per_page = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class TokenRequest(ma.Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class TokenResponse(ma.Schema):
    access_token = fields.String()
    token_type = fields.String()
    expires_at = fields.DateTime()


class UnitIn(ma.Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    kind = fields.String(required=True, validate=validate.OneOf([k.value for k in UnitKind]))
    parent_id = fields.Integer(allow_none=True)
    reporting = fields.Boolean(allow_none=True)


class UnitPatch(ma.Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    reporting = fields.Boolean()
    active = fields.Boolean()


class UnitOut(ma.Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    kind = fields.String()
    parent_id = fields.Integer(allow_none=True)
    reporting = fields.Boolean()
    active = fields.Boolean()


class UnitList(ma.Schema):
    items = fields.List(fields.Nested(UnitOut))
    total = fields.Integer()


class UnitArgs(ma.Schema):
    kind = fields.String(validate=validate.OneOf([k.value for k in UnitKind]))
    parent_id = fields.Integer()


class RoleGrant(ma.Schema):
    role = fields.String(required=True, validate=validate.OneOf([r.value for r in Role]))
    unit_id = fields.Integer(allow_none=True, load_default=None)


class UserIn(ma.Schema):
    username = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.@-]{2,64}$"))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))
    display_name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    language = fields.String(load_default="zh-CN", validate=validate.OneOf(["zh-CN", "en"]))
    email = fields.Email(allow_none=True, validate=validate.Length(max=200))
    phone = fields.String(allow_none=True, validate=validate.Length(max=40))
    roles = fields.List(fields.Nested(RoleGrant), load_default=list)


class UserPatch(ma.Schema):
    display_name = fields.String(validate=validate.Length(min=1, max=100))
    language = fields.String(validate=validate.OneOf(["zh-CN", "en"]))
    email = fields.Email(allow_none=True, validate=validate.Length(max=200))
    phone = fields.String(allow_none=True, validate=validate.Length(max=40))
    active = fields.Boolean()
    password = fields.String(validate=validate.Length(min=1, max=256))
    roles = fields.List(fields.Nested(RoleGrant))


class UserOut(ma.Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()
    language = fields.String()
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    active = fields.Boolean()
    roles = fields.List(fields.Nested(RoleGrant))


class UserList(ma.Schema):
    items = fields.List(fields.Nested(UserOut))
    total = fields.Integer()


class UserArgs(PageArgs):
    q = fields.String(validate=validate.Length(max=64))


class MeOut(ma.Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()
    language = fields.String()
    roles = fields.List(fields.Nested(RoleGrant))


class TaskOut(ma.Schema):
    id = fields.Integer()
    case_id = fields.Integer()
    bpmn_id = fields.String()
    name = fields.String()
    role = fields.String(allow_none=True)
    unit_id = fields.Integer(allow_none=True)
    assignee_id = fields.Integer(allow_none=True)
    status = fields.String()
    due_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)
    case_no = fields.String()
    case_type = fields.String()
    case_title = fields.String()
    unit_name = fields.String(allow_none=True)
    overdue = fields.Boolean()


class TaskList(ma.Schema):
    items = fields.List(fields.Nested(TaskOut))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class TaskArgs(PageArgs):
    mine = fields.Boolean(load_default=False)
    role = fields.String(validate=validate.OneOf([r.value for r in Role]))
    case_id = fields.Integer()
    overdue = fields.Boolean(allow_none=True)
    due_before = fields.AwareDateTime(default_timezone=None)
    status = fields.String(
        load_default="open", validate=validate.OneOf(["open", "completed", "cancelled", "all"])
    )
    case_type = fields.String(validate=validate.Length(max=50))
    unit_id = fields.Integer()


class FormFieldOut(ma.Schema):
    id = fields.String()
    label = fields.String()
    type = fields.String()
    required = fields.Boolean()
    readonly = fields.Boolean()
    enum = fields.List(fields.Dict())
    default = fields.String(allow_none=True)
    min = fields.Float(allow_none=True)
    max = fields.Float(allow_none=True)
    minlength = fields.Integer(allow_none=True)
    maxlength = fields.Integer(allow_none=True)
    properties = fields.Dict()


class FormOut(ma.Schema):
    fields_ = fields.List(fields.Nested(FormFieldOut), data_key="fields", attribute="fields")
    json_schema = fields.Dict()


class TaskDetail(TaskOut):
    case_status = fields.String()
    case_version = fields.Integer()
    case_data = fields.Dict()
    documentation = fields.String(allow_none=True)
    can_act = fields.Boolean()
    assignee_name = fields.String(allow_none=True)
    form = fields.Nested(FormOut)


class CompleteIn(ma.Schema):
    data = fields.Dict(required=True)


class CaseRef(ma.Schema):
    id = fields.Integer()
    case_no = fields.String()
    status = fields.String()
    version = fields.Integer()


class CompleteOut(ma.Schema):
    task = fields.Nested(TaskOut)
    case = fields.Nested(CaseRef)
    next_tasks = fields.List(fields.Nested(TaskOut))


class DeadlineOut(ma.Schema):
    kind = fields.String()
    due_on = fields.Date()
    state = fields.String()
    met_on = fields.Date(allow_none=True)
    source = fields.String()
    calendar_unverified = fields.Boolean()


class TimelineEntry(ma.Schema):
    at = fields.DateTime()
    action = fields.String()
    actor = fields.String()
    actor_id = fields.Integer(allow_none=True)
    detail = fields.Dict()


class CaseIn(ma.Schema):
    case_type = fields.String(required=True, validate=validate.Length(min=1, max=50))
    unit_id = fields.Integer(required=True)
    title = fields.String(load_default="", validate=validate.Length(max=300))
    data = fields.Dict(load_default=dict)


class CaseOut(ma.Schema):
    id = fields.Integer()
    case_type = fields.String()
    case_no = fields.String()
    title = fields.String()
    unit_id = fields.Integer()
    status = fields.String()
    error = fields.String(allow_none=True)
    version = fields.Integer()
    data = fields.Dict()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)
    open_tasks = fields.List(fields.Nested(TaskOut))
    deadlines = fields.List(fields.Nested(DeadlineOut))
    timeline = fields.List(fields.Nested(TimelineEntry))


class CaseList(ma.Schema):
    items = fields.List(fields.Nested(CaseOut))
    total = fields.Integer()


class CaseArgs(PageArgs):
    case_type = fields.String(validate=validate.Length(max=50))
    status = fields.String(validate=validate.Length(max=20))


class DefinitionOut(ma.Schema):
    id = fields.Integer()
    process_id = fields.String()
    name = fields.String()
    version = fields.Integer()
    sha256 = fields.String()
    filename = fields.String()
    deployed_at = fields.DateTime()
    running_instances = fields.Integer()


class DefinitionList(ma.Schema):
    items = fields.List(fields.Nested(DefinitionOut))
    total = fields.Integer()
