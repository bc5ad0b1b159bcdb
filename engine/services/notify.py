"""Writing notifications into the outbox, in the same transaction as their cause."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine.persistence.db import UnitOfWork
from engine.persistence.models import Case, OutboxMessage, RoleAssignment, Task, Unit, User

if TYPE_CHECKING:
    from engine.services.case_types import HookContext


def enqueue(
    uow: UnitOfWork,
    *,
    key: str,
    template: str,
    params: Mapping[str, Any],
    user: User | None = None,
    channel: str = "inapp",
    recipient: Mapping[str, Any] | None = None,
    case_id: int | None = None,
    now: datetime,
) -> None:
    """Add one outbox message; a message with the same idempotency key is never added twice."""
    values = {
        "idempotency_key": key[:200],
        "channel": channel,
        "recipient_user_id": user.id if user is not None else None,
        "recipient": dict(recipient)
        if recipient is not None
        else (
            {
                "display_name": user.display_name,
                "language": user.language,
                "email": user.email,
                "phone": user.phone,
            }
            if user is not None
            else {}
        ),
        "template": template,
        "params": dict(params),
        "case_id": case_id,
        "status": "pending" if channel != "inapp" else "sent",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "sent_at": now if channel == "inapp" else None,
    }
    insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    uow.session.execute(insert(OutboxMessage).values(**values).on_conflict_do_nothing())


def users_with_role(uow: UnitOfWork, role: str, unit_id: int) -> list[User]:
    """Active users holding `role` on the unit or on one of its ancestors."""
    unit_path = select(Unit.path).where(Unit.id == unit_id).scalar_subquery()
    return list(
        uow.session.scalars(
            select(User)
            .join(RoleAssignment, RoleAssignment.user_id == User.id)
            .join(Unit, Unit.id == RoleAssignment.unit_id)
            .where(
                RoleAssignment.role == role,
                User.active.is_(True),
                unit_path.like(Unit.path + "%"),
            )
            .distinct()
        )
    )


def notify_tasks_opened(ctx: HookContext, case: Case, tasks: Iterable[Task]) -> None:
    """Tell the assignee, or every holder of the candidate role in scope, that work is waiting."""
    base = ctx.services.settings.base_url.rstrip("/")
    for task in tasks:
        params = {
            "task_name": task.name,
            "case_no": case.case_no,
            "due_on": task.due_at.date().isoformat() if task.due_at else "",
            "url": f"{base}/tasks/{task.id}",
        }
        if task.assignee_id is not None:
            user = ctx.uow.session.get(User, task.assignee_id)
            recipients = [user] if user is not None else []
            template = "task_assigned"
        elif task.role and task.unit_id is not None:
            recipients = users_with_role(ctx.uow, task.role, task.unit_id)
            template = "task_available"
        else:
            recipients = []
            template = "task_available"
        for user in recipients:
            enqueue(
                ctx.uow,
                key=f"task:{task.id}:{template}:{user.id}",
                template=template,
                params=params,
                user=user,
                case_id=case.id,
                now=ctx.now,
            )
