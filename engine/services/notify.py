"""Writing notifications into the outbox, in the same transaction as their cause.

One domain event becomes one outbox row per (recipient, channel). Callers enqueue the
in-app message; `enqueue` fans it out to the recipient's other preferred channels with
idempotency keys derived from the caller's key, so a re-run of the event adds nothing. The
in-app row is the inbox entry itself (status 'sent' from the start); the other rows are
'pending' until the dispatcher (engine/services/dispatch.py) delivers them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from sqlalchemy import Integer, Select, String, Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased, lazyload

from engine.clock import LOCAL_TZ
from engine.domain.text import valid_phone
from engine.errors import NotFoundError, ValidationError
from engine.persistence.db import UnitOfWork
from engine.persistence.models import (
    Case,
    NotificationPreference,
    OutboxMessage,
    RoleAssignment,
    Task,
    Unit,
    User,
)
from notifications.message import DEFAULT_LANGUAGE, PermanentError
from notifications.templates import render

if TYPE_CHECKING:
    from engine.services.case_types import HookContext

# Channels a user may choose besides the in-app inbox, which is always on.
PREFERENCE_CHANNELS: Final = ("email", "sms", "webhook", "wecom", "dingtalk")
# E-mail is on unless the user turns it off (it only reaches users with an address); SMS
# costs money and the group robots are shared rooms, so those are opt-in.
DEFAULT_PREFERENCES: Final[Mapping[str, bool]] = {
    "email": True,
    "sms": False,
    "webhook": False,
    "wecom": False,
    "dingtalk": False,
}
# Group robots post into one shared chat: an event goes there once, however many of the
# chat's members asked for it (a per-recipient row would repeat it once per member).
GROUP_CHANNELS: Final = frozenset({"wecom", "dingtalk"})
_KEY_MAX: Final = 200  # OutboxMessage.idempotency_key length
# Query codes avoid characters read alike on a phone screen (0/O, 1/I/L).
_QUERY_CODE_ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
QUERY_CODE_LENGTH: Final = 8  # 31**8 ≈ 8.5e11 codes: not guessable by trying


def _insert(uow: UnitOfWork, values: Mapping[str, Any]) -> bool:
    """Insert an outbox row unless its idempotency key exists; True if a row was added."""
    insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    # RETURNING, not rowcount: an ORM-enabled INSERT may report rowcount -1 on PostgreSQL.
    stmt = insert(OutboxMessage).values(**values).on_conflict_do_nothing()
    return uow.session.execute(stmt.returning(OutboxMessage.id)).first() is not None


class Person(Protocol):
    """What a message needs of its recipient: a User row, or the columns of one."""

    @property
    def id(self) -> int: ...
    @property
    def display_name(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def phone(self) -> str | None: ...


@dataclass(frozen=True)
class _Recipient:
    id: int
    display_name: str
    language: str
    email: str | None
    phone: str | None


def _snapshot(user: Person) -> dict[str, Any]:
    return {
        "display_name": user.display_name,
        "language": user.language,
        "email": user.email,
        "phone": user.phone,
    }


def _row(
    *,
    key: str,
    channel: str,
    user_id: int | None,
    recipient: Mapping[str, Any],
    template: str,
    params: Mapping[str, Any],
    case_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    inapp = channel == "inapp"
    return {
        "idempotency_key": key[:_KEY_MAX],
        "channel": channel,
        "recipient_user_id": user_id,
        "recipient": dict(recipient),
        "template": template,
        "params": dict(params),
        "case_id": case_id,
        "status": "sent" if inapp else "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "sent_at": now if inapp else None,
    }


def derived_key(key: str, channel: str) -> str:
    """The idempotency key of an event's copy on another channel: '<key>#<channel>'."""
    suffix = f"#{channel}"
    return key[: _KEY_MAX - len(suffix)] + suffix


def group_key(channel: str, template: str, params: Mapping[str, Any], case_id: int | None) -> str:
    """A group robot's key: the same event (template, case, params) is posted once."""
    canonical = json.dumps(
        {"template": template, "case_id": case_id, "params": params},
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:40]
    return f"group:{channel}:{template}:{digest}"


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
    """Add one outbox message (an in-app one also fans out to the user's preferred channels).

    A message with the same idempotency key is never added twice; the fan-out happens only
    when the in-app message is new, so re-running an event never reaches a channel the user
    chose after the event.
    """
    if channel == "inapp" and user is not None and recipient is None:
        enqueue_many(uow, [(key, user)], template=template, params=params, case_id=case_id, now=now)
        return
    snapshot = dict(recipient) if recipient is not None else (_snapshot(user) if user else {})
    _insert(
        uow,
        _row(
            key=key,
            channel=channel,
            user_id=user.id if user is not None else None,
            recipient=snapshot,
            template=template,
            params=params,
            case_id=case_id,
            now=now,
        ),
    )


def enqueue_many(
    uow: UnitOfWork,
    recipients: Sequence[tuple[str, User]],
    *,
    template: str,
    params: Mapping[str, Any],
    case_id: int | None,
    now: datetime,
) -> None:
    """One in-app message per (idempotency key, user), fanned out to preferred channels.

    A constant number of statements however many recipients: one insert of the in-app rows,
    one read of the preferences of those that were new, one insert of their other channels."""
    if not recipients:
        return
    users = {key[:_KEY_MAX]: user for key, user in recipients}
    rows = [
        _row(
            key=key,
            channel="inapp",
            user_id=user.id,
            recipient=_snapshot(user),
            template=template,
            params=params,
            case_id=case_id,
            now=now,
        )
        for key, user in users.items()
    ]
    insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    # RETURNING, not rowcount: an ORM-enabled INSERT may report rowcount -1 on PostgreSQL.
    added = (
        uow.session.execute(
            insert(OutboxMessage)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(OutboxMessage.idempotency_key)
        )
        .scalars()
        .all()
    )
    if not added:
        return
    new = {k: users[k] for k in added}
    prefs = _preferences_of(uow, [u.id for u in new.values()])
    extra: dict[str, dict[str, Any]] = {}
    for key, user in new.items():
        for row in _channel_rows(
            key, user, prefs.get(user.id, DEFAULT_PREFERENCES), template, params, case_id, now
        ):
            extra[row["idempotency_key"]] = row
    if extra:
        uow.session.execute(
            insert(OutboxMessage).values(list(extra.values())).on_conflict_do_nothing()
        )


def _channel_rows(
    key: str,
    user: Person,
    prefs: Mapping[str, bool],
    template: str,
    params: Mapping[str, Any],
    case_id: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The outbox rows of one in-app message's copies on the user's other chosen channels."""
    rows = []
    for channel, wanted in prefs.items():
        if not wanted or not _reachable(user, channel):
            continue
        if channel in GROUP_CHANNELS:
            rows.append(
                _row(
                    key=group_key(channel, template, params, case_id),
                    channel=channel,
                    user_id=None,
                    recipient={"display_name": "", "language": DEFAULT_LANGUAGE},
                    template=template,
                    params=params,
                    case_id=case_id,
                    now=now,
                )
            )
        else:
            rows.append(
                _row(
                    key=derived_key(key, channel),
                    channel=channel,
                    user_id=user.id,
                    recipient=_snapshot(user),
                    template=template,
                    params=params,
                    case_id=case_id,
                    now=now,
                )
            )
    return rows


def _preferences_of(uow: UnitOfWork, user_ids: Sequence[int]) -> dict[int, dict[str, bool]]:
    """Channel choices of several users in one query (defaults where none were set)."""
    out: dict[int, dict[str, bool]] = {uid: dict(DEFAULT_PREFERENCES) for uid in user_ids}
    for row in uow.session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id.in_(list(user_ids)))
    ):
        if row.channel in out[row.user_id]:
            out[row.user_id][row.channel] = row.enabled
    return out


def _reachable(user: Person, channel: str) -> bool:
    if channel == "email":
        return bool(user.email and user.email.strip())
    if channel == "sms":
        return bool(user.phone and user.phone.strip())
    return True


# ---------------------------------------------------------------------------- preferences


def get_preferences(uow: UnitOfWork, user: User) -> dict[str, bool]:
    """The user's channel choices (in-app is always on and not listed)."""
    return _preferences_of(uow, [user.id])[user.id]


def set_preferences(
    uow: UnitOfWork, user: User, values: Mapping[str, Any], now: datetime
) -> dict[str, bool]:
    """Change the user's channel choices; unknown channels and unreachable ones get 422."""
    errors: dict[str, list[str]] = {}
    for channel, value in values.items():
        if channel not in DEFAULT_PREFERENCES:
            errors[channel] = ["Unknown channel."]
        elif not isinstance(value, bool):
            errors[channel] = ["Must be true or false."]
        elif value and channel == "email" and not _reachable(user, "email"):
            errors[channel] = ["No e-mail address on file."]
        elif value and channel == "sms" and not _reachable(user, "sms"):
            errors[channel] = ["No phone number on file."]
    if errors:
        raise ValidationError("invalid notification preferences", errors)
    existing = {
        row.channel: row
        for row in uow.session.scalars(
            select(NotificationPreference).where(NotificationPreference.user_id == user.id)
        )
    }
    for channel, value in values.items():
        row = existing.get(channel)
        if row is None:
            uow.session.add(
                NotificationPreference(
                    user_id=user.id, channel=channel, enabled=value, updated_at=now
                )
            )
        else:
            row.enabled = value
            row.updated_at = now
    uow.session.flush()
    return get_preferences(uow, user)


# ---------------------------------------------------------------------------- in-app inbox


def _inbox(user_id: int) -> Any:
    return (OutboxMessage.recipient_user_id == user_id) & (OutboxMessage.channel == "inapp")


def inbox_item(row: OutboxMessage, language: str, base_url: str | None) -> dict[str, Any]:
    """An inbox entry rendered in the reader's language."""
    try:
        rendered = render(row.template, row.params, language, base_url)
        subject, body, link = rendered.subject, rendered.body, rendered.link
    except PermanentError:
        subject, body, link = row.template, "", None
    return {
        "id": row.id,
        "template": row.template,
        "subject": subject,
        "body": body,
        "link": link,
        "case_id": row.case_id,
        "created_at": row.created_at,
        "read_at": row.read_at,
        "unread": row.read_at is None,
    }


def list_inbox(
    uow: UnitOfWork,
    user_id: int,
    *,
    language: str,
    base_url: str | None,
    unread_only: bool = False,
    page: int = 1,
    per_page: int = 50,
) -> dict[str, Any]:
    """The user's in-app notifications, newest first, paged."""
    per_page = max(1, min(per_page, 200))
    page = max(1, page)
    cond = _inbox(user_id)
    if unread_only:
        cond = cond & OutboxMessage.read_at.is_(None)
    total = uow.session.scalar(select(func.count()).select_from(OutboxMessage).where(cond)) or 0
    rows = uow.session.scalars(
        select(OutboxMessage)
        .where(cond)
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return {
        "items": [inbox_item(r, language, base_url) for r in rows],
        "total": total,
        "page": page,
        "per_page": per_page,
    }


def unread_count(uow: UnitOfWork, user_id: int) -> int:
    """How many in-app notifications the user has not read."""
    stmt = (
        select(func.count())
        .select_from(OutboxMessage)
        .where(_inbox(user_id), OutboxMessage.read_at.is_(None))
    )
    return int(uow.session.scalar(stmt) or 0)


def mark_read(uow: UnitOfWork, user_id: int, message_id: int, now: datetime) -> OutboxMessage:
    """Mark one of the user's notifications read (404 if it is not theirs)."""
    row = uow.session.get(OutboxMessage, message_id)
    if row is None or row.channel != "inapp" or row.recipient_user_id != user_id:
        raise NotFoundError("notification not found")
    if row.read_at is None:
        row.read_at = now
    return row


def mark_all_read(uow: UnitOfWork, user_id: int, now: datetime) -> int:
    """Mark every unread notification of the user read; returns how many changed."""
    result = uow.session.execute(
        update(OutboxMessage)
        .where(_inbox(user_id), OutboxMessage.read_at.is_(None))
        .values(read_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


# ---------------------------------------------------------------------------- petitioners


def new_query_code() -> str:
    """A random query code a petitioner uses to follow their case (8 unambiguous characters)."""
    return "".join(secrets.choice(_QUERY_CODE_ALPHABET) for _ in range(QUERY_CODE_LENGTH))


def notify_petitioner_sms(
    uow: UnitOfWork,
    phone: str,
    case_no: str,
    query_code: str,
    evaluation_url: str,
    now: datetime,
) -> None:
    """Queue the SMS telling a petitioner the reply was delivered (query code + evaluation link).

    Once per case: the key is the case number, so delivering the reply again (a correction)
    does not text the petitioner twice. SMS quiet hours hold it until morning.
    """
    if not valid_phone(phone):
        raise ValidationError("invalid phone", {"phone": ["Not a valid phone number."]})
    enqueue(
        uow,
        key=f"petitioner:reply_delivered:{case_no}",
        template="reply_delivered_sms",
        params={"case_no": case_no, "query_code": query_code, "evaluation_url": evaluation_url},
        channel="sms",
        recipient={"display_name": "", "language": DEFAULT_LANGUAGE, "phone": phone.strip()},
        now=now,
    )


# ---------------------------------------------------------------------------- recipients


def _ancestors_statement() -> Select[tuple[int]]:
    up = aliased(Unit)
    chain = (
        select(Unit.id, Unit.parent_id)
        .where(Unit.id == bindparam("ancestors_of", type_=Integer))
        .cte("unit_chain", recursive=True)
    )
    chain = chain.union_all(select(up.id, up.parent_id).where(up.id == chain.c.parent_id))
    return select(chain.c.id)


# Built once: constructing a recursive CTE costs more Python time than running it.
_ANCESTORS = _ancestors_statement()


def unit_and_ancestors(unit_id: int) -> Any:
    """Ids of the unit and of every unit above it, walking the parent links by primary key.

    Flat however many units exist (matching every unit's path against this one's would read
    them all)."""
    return _ANCESTORS.params(ancestors_of=unit_id)


def users_with_role(uow: UnitOfWork, role: str, unit_id: int) -> list[User]:
    """Active users holding `role` on the unit or on one of its ancestors."""
    return list(
        uow.session.scalars(
            select(User)
            .options(lazyload(User.roles))
            .join(RoleAssignment, RoleAssignment.user_id == User.id)
            .where(
                RoleAssignment.role == role,
                User.active.is_(True),
                RoleAssignment.unit_id.in_(unit_and_ancestors(unit_id)),
            )
            .distinct()
        )
    )


def _recipients_statement(*, by_role: bool) -> Any:
    """Users with their channel choices: holders of a role on a unit or its ancestors
    (params role, ancestors_of), or one user (param user_id)."""
    stmt = select(
        User.id,
        User.display_name,
        User.language,
        User.email,
        User.phone,
        NotificationPreference.channel,
        NotificationPreference.enabled,
    )
    if by_role:
        stmt = stmt.join(RoleAssignment, RoleAssignment.user_id == User.id).where(
            RoleAssignment.role == bindparam("role", type_=String),
            User.active.is_(True),
            RoleAssignment.unit_id.in_(_ANCESTORS),
        )
    else:
        stmt = stmt.where(User.id == bindparam("user_id", type_=Integer))
    return stmt.outerjoin(NotificationPreference, NotificationPreference.user_id == User.id)


# Built once: a task opens on every completion, and building these costs more than running them.
_ROLE_HOLDERS = _recipients_statement(by_role=True)
_ONE_USER = _recipients_statement(by_role=False)
# On the table, not the mapped class: a Core executemany, without the ORM's bulk machinery.
_OUTBOX_TABLE = cast(Table, OutboxMessage.__table__)
_NEW_OUTBOX_ROWS = {
    "postgresql": pg_insert(_OUTBOX_TABLE).on_conflict_do_nothing(),
    "sqlite": sqlite_insert(_OUTBOX_TABLE).on_conflict_do_nothing(),
}


def _with_preferences(
    uow: UnitOfWork, stmt: Any, params: Mapping[str, Any]
) -> list[tuple[_Recipient, dict[str, bool]]]:
    """The recipients `stmt` finds, each with their channel choices, in one query."""
    out: dict[int, tuple[_Recipient, dict[str, bool]]] = {}
    rows = uow.session.connection().execute(stmt, params)  # plain columns: no ORM needed
    for uid, name, language, email, phone, channel, enabled in rows:
        if uid not in out:
            out[uid] = (_Recipient(uid, name, language, email, phone), dict(DEFAULT_PREFERENCES))
        if channel in DEFAULT_PREFERENCES:
            out[uid][1][channel] = bool(enabled)
    return list(out.values())


def notify_tasks_opened(ctx: HookContext, case: Case, tasks: Iterable[Task]) -> None:
    """Tell the assignee, or every holder of the candidate role in scope, that work is waiting.

    The tasks were just created, so none of their messages can exist yet: one read of the
    recipients with their channel choices per task, and one insert of every row."""
    base = ctx.services.settings.base_url.rstrip("/")
    rows: dict[str, dict[str, Any]] = {}
    for task in tasks:
        params = {
            "task_name": task.name,
            "case_no": case.case_no,
            "due_on": task.due_at.astimezone(LOCAL_TZ).date().isoformat() if task.due_at else "",
            "url": f"{base}/tasks/{task.id}",
        }
        if task.assignee_id is not None:
            recipients = _with_preferences(ctx.uow, _ONE_USER, {"user_id": task.assignee_id})
            template = "task_assigned"
        elif task.role and task.unit_id is not None:
            recipients = _with_preferences(
                ctx.uow, _ROLE_HOLDERS, {"role": task.role, "ancestors_of": task.unit_id}
            )
            template = "task_available"
        else:
            continue
        for user, prefs in recipients:
            key = f"task:{task.id}:{template}:{user.id}"
            inapp = _row(
                key=key,
                channel="inapp",
                user_id=user.id,
                recipient=_snapshot(user),
                template=template,
                params=params,
                case_id=case.id,
                now=ctx.now,
            )
            rows[inapp["idempotency_key"]] = inapp
            for row in _channel_rows(key, user, prefs, template, params, case.id, ctx.now):
                rows[row["idempotency_key"]] = row
    if rows:
        # executemany of one cached statement (not a VALUES list compiled anew each time).
        ctx.uow.session.connection().execute(_NEW_OUTBOX_ROWS[ctx.uow.dialect], list(rows.values()))
