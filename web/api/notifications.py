"""The in-app inbox, channel preferences, and the admins' outbox (dead letters, resend)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from engine.errors import NotFoundError
from engine.persistence.models import User
from engine.services import dispatch
from engine.services import notify as notify_service
from web.api.schemas import PageArgs
from web.auth import current_actor, services

me_bp = Blueprint(
    "notifications", __name__, url_prefix="/api/v1/me", description="My notifications"
)
outbox_bp = Blueprint(
    "outbox", __name__, url_prefix="/api/v1/admin/outbox", description="Notification outbox"
)
BLUEPRINTS = [me_bp, outbox_bp]
SECURE: list[dict[str, list[str]]] = [{"bearer": []}]


class InboxArgs(PageArgs):
    unread = fields.Boolean(load_default=False)


class NotificationOut(ma.Schema):
    id = fields.Integer()
    template = fields.String()
    subject = fields.String()
    body = fields.String()
    link = fields.String(allow_none=True)
    case_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)
    unread = fields.Boolean()


class InboxOut(ma.Schema):
    items = fields.List(fields.Nested(NotificationOut))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class UnreadOut(ma.Schema):
    unread = fields.Integer()


class ReadAllOut(ma.Schema):
    updated = fields.Integer()
    unread = fields.Integer()


class PreferencesIn(ma.Schema):
    email = fields.Boolean()
    sms = fields.Boolean()
    webhook = fields.Boolean()
    wecom = fields.Boolean()
    dingtalk = fields.Boolean()


class PreferencesOut(PreferencesIn):
    inapp = fields.Boolean()
    email_address = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)


class OutboxArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(dispatch.STATUSES))


class OutboxItem(ma.Schema):
    id = fields.Integer()
    idempotency_key = fields.String()
    channel = fields.String()
    template = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    recipient_user_id = fields.Integer(allow_none=True)
    recipient_name = fields.String()
    recipient_email = fields.String(allow_none=True)
    recipient_phone = fields.String(allow_none=True)
    case_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    next_attempt_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)


class OutboxOut(ma.Schema):
    items = fields.List(fields.Nested(OutboxItem))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


@me_bp.route("/notifications")
@me_bp.arguments(InboxArgs, location="query")
@me_bp.response(200, InboxOut)
@me_bp.doc(security=SECURE)
def list_notifications(args: dict[str, Any]) -> dict[str, Any]:
    """My in-app notifications, newest first, in my language; `unread=true` filters."""
    actor = current_actor()
    svc = services()
    with svc.uow() as uow:
        return notify_service.list_inbox(
            uow,
            actor.user_id,
            language=actor.language,
            base_url=svc.settings.base_url,
            unread_only=args["unread"],
            page=args["page"],
            per_page=args["per_page"],
        )


@me_bp.route("/notifications/unread-count")
@me_bp.response(200, UnreadOut)
@me_bp.doc(security=SECURE)
def unread_count() -> dict[str, Any]:
    """How many of my notifications are unread (the badge in the pages)."""
    actor = current_actor()
    with services().uow() as uow:
        return {"unread": notify_service.unread_count(uow, actor.user_id)}


@me_bp.route("/notifications/<int:message_id>/read", methods=["POST"])
@me_bp.response(200, NotificationOut)
@me_bp.doc(security=SECURE)
def read_notification(message_id: int) -> dict[str, Any]:
    """Mark one of my notifications read (404 if it is not mine)."""
    actor = current_actor()
    svc = services()
    with svc.uow() as uow:
        row = notify_service.mark_read(uow, actor.user_id, message_id, svc.clock.now())
        uow.commit()
        return notify_service.inbox_item(row, actor.language, svc.settings.base_url)


@me_bp.route("/notifications/read-all", methods=["POST"])
@me_bp.response(200, ReadAllOut)
@me_bp.doc(security=SECURE)
def read_all() -> dict[str, Any]:
    """Mark all my notifications read."""
    actor = current_actor()
    svc = services()
    with svc.uow() as uow:
        updated = notify_service.mark_all_read(uow, actor.user_id, svc.clock.now())
        uow.commit()
    return {"updated": updated, "unread": 0}


def _preferences_view(user: User, prefs: dict[str, bool]) -> dict[str, Any]:
    return {**prefs, "inapp": True, "email_address": user.email, "phone": user.phone}


@me_bp.route("/notification-preferences")
class Preferences(MethodView):
    @me_bp.response(200, PreferencesOut)
    @me_bp.doc(security=SECURE)
    def get(self) -> dict[str, Any]:
        """Which channels I receive notifications on besides the in-app inbox."""
        actor = current_actor()
        with services().uow() as uow:
            user = uow.session.get(User, actor.user_id)
            if user is None:
                raise NotFoundError("user not found")
            return _preferences_view(user, notify_service.get_preferences(uow, user))

    @me_bp.arguments(PreferencesIn)
    @me_bp.response(200, PreferencesOut)
    @me_bp.doc(security=SECURE)
    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        """Choose channels; e-mail needs an address and SMS a phone number on file (422)."""
        actor = current_actor()
        svc = services()
        with svc.uow() as uow:
            user = uow.session.get(User, actor.user_id)
            if user is None:
                raise NotFoundError("user not found")
            prefs = notify_service.set_preferences(uow, user, body, svc.clock.now())
            uow.commit()
            return _preferences_view(user, prefs)


@outbox_bp.route("")
@outbox_bp.arguments(OutboxArgs, location="query")
@outbox_bp.response(200, OutboxOut)
@outbox_bp.doc(security=SECURE)
def list_outbox(args: dict[str, Any]) -> dict[str, Any]:
    """Outgoing messages by status, e.g. `status=dead` for the dead letters (admin)."""
    with services().uow() as uow:
        return dispatch.list_outbox(
            uow,
            current_actor(),
            status=args.get("status"),
            page=args["page"],
            per_page=args["per_page"],
        )


@outbox_bp.route("/<int:message_id>/resend", methods=["POST"])
@outbox_bp.response(200, OutboxItem)
@outbox_bp.doc(security=SECURE)
def resend(message_id: int) -> dict[str, Any]:
    """Queue a dead-lettered message again with fresh attempts (admin; 409 if not dead)."""
    svc = services()
    with svc.uow() as uow:
        view = dispatch.resend_message(uow, current_actor(), message_id, svc.clock.now())
        uow.commit()
        return view
