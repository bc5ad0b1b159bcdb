"""The in-app notification inbox page, and the unread count shown on every page."""

from __future__ import annotations

from typing import Any

from flask import flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from engine.services import notify as notify_service
from web.auth import current_actor, services
from web.pages import bp, page_lang

PER_PAGE = 30


@bp.before_app_request
def _count_unread() -> None:
    """Count the unread notifications of a page request before its view opens a transaction.

    Counting inside the template instead would open a second unit of work while the view's
    may still be open, and on SQLite (BEGIN IMMEDIATE) the second would wait for the first.
    """
    if request.path.startswith(("/api/", "/static/")) or not current_user.is_authenticated:
        return
    with services().uow() as uow:
        g.unread_count = notify_service.unread_count(uow, current_user.actor.user_id)


@bp.app_context_processor
def _unread_count() -> dict[str, Any]:
    """`unread_count` for the badge in the top bar (one indexed COUNT per page view)."""
    return {"unread_count": g.get("unread_count", 0)}


@bp.route("/notifications")
@login_required
def notifications_page() -> Any:
    """消息通知: my in-app notifications, newest first, unread ones marked."""
    svc = services()
    actor = current_actor()
    unread_only = request.args.get("unread") == "1"
    page = max(1, request.args.get("page", 1, type=int) or 1)
    with svc.uow() as uow:
        result = notify_service.list_inbox(
            uow,
            actor.user_id,
            language="en" if page_lang() == "en" else "zh-CN",
            base_url=svc.settings.base_url,
            unread_only=unread_only,
            page=page,
            per_page=PER_PAGE,
        )
    pages = max(1, -(-result["total"] // PER_PAGE))
    return render_template(
        "notifications.html", result=result, unread_only=unread_only, page=page, pages=pages
    )


@bp.route("/notifications/<int:message_id>/read", methods=["POST"])
@login_required
def notification_read(message_id: int) -> Any:
    """Mark one notification read and open its link (or go back to the list)."""
    svc = services()
    actor = current_actor()
    with svc.uow() as uow:
        row = notify_service.mark_read(uow, actor.user_id, message_id, svc.clock.now())
        uow.commit()
        item = notify_service.inbox_item(row, actor.language, svc.settings.base_url)
    target = item["link"] if request.form.get("open") and item["link"] else None
    return redirect(target or url_for("pages.notifications_page"))


@bp.route("/notifications/read-all", methods=["POST"])
@login_required
def notifications_read_all() -> Any:
    """Mark every notification read."""
    svc = services()
    with svc.uow() as uow:
        notify_service.mark_all_read(uow, current_actor().user_id, svc.clock.now())
        uow.commit()
    flash(_("All notifications marked as read."))
    return redirect(url_for("pages.notifications_page"))
