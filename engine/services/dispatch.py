"""The outbox dispatcher, the daily digest, and the admins' dead-letter view.

Delivery semantics
------------------
A row moves ``pending -> sending -> sent``; failures go back to ``pending`` with an
exponential backoff, or to ``dead`` (permanent error, or MAX_ATTEMPTS used up), where
admins see it and may resend it. A row for a channel this installation has not configured
becomes ``skipped``. In-app rows are ``sent`` from the start: the row is the inbox entry.

1. **Claim** (one short transaction): due rows are selected ``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` makes the whole claim a single writer), and
   marked ``sending`` with a lease: ``claimed_by`` = this run's token, ``lease_until`` =
   now + LEASE, ``attempts`` + 1. ``next_attempt_at`` is set to the lease's end too, so a
   crashed claim becomes due again by the same index range the dispatcher already scans.
   Two dispatchers never hold the same row at once.
2. **Send** with no transaction open (no lock is held across network I/O).
3. **Record** (one short transaction per message): ``UPDATE ... WHERE id = ? AND
   claimed_by = <token> AND status = 'sending'``; the fence means a dispatcher whose lease
   was taken over cannot overwrite the new owner's outcome.

A crash before (2) loses nothing: the lease expires and another run sends the row. A crash
between the provider accepting the message and (3) cannot be made exactly-once by the
sender alone: no transaction spans our database and an SMTP server. We choose
**at-least-once** (the row is sent again after the lease expires) over at-most-once (mark
sent before sending, which would silently lose a red-card warning on a crash), and make
the duplicate harmless at the receiver: every attempt of a row carries the same key —
the e-mail ``Message-ID`` is derived from the idempotency key (mail stores and clients
drop a repeated Message-ID), and webhooks and the SMS gateway get an
``X-Fengqiao-Idempotency-Key`` header (and the key in the body) to deduplicate on. Counting
attempts at claim time also stops a message that crashes the dispatcher from looping for
ever: after MAX_ATTEMPTS it is dead-lettered.

SMS quiet hours (setting ``sms_quiet_hours``) defer a text to the end of the quiet window at
claim time, without counting an attempt: held, never dropped.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ, local_midnight_utc
from engine.config import Settings
from engine.domain.text import mask_phone
from engine.errors import ConflictError, NotFoundError
from engine.persistence.db import UnitOfWork
from engine.persistence.models import Case, JobRun, OutboxMessage, Task, User
from engine.services.access import Actor, require_admin
from engine.services.audit import record_event
from engine.services.notify import enqueue, users_with_role
from engine.services.settings import get_setting
from notifications.channels import Channel, build_channels
from notifications.message import (
    DEFAULT_LANGUAGE,
    Message,
    PermanentError,
    Recipient,
    TransientError,
)
from notifications.policy import (
    DEFAULT_QUIET_HOURS,
    backoff_delay,
    is_exhausted,
    parse_quiet_hours,
    quiet_hours_release,
)
from notifications.templates import render

log = logging.getLogger(__name__)

# How long a claim lasts. It must outlast sending one batch: BATCH_SIZE messages at the
# channels' worst-case timeout (SMTP 10 s) is 200 s; a dispatcher whose lease is about to
# end stops sending and gives the rest back (LEASE_MARGIN).
LEASE: Final = timedelta(minutes=5)
LEASE_MARGIN: Final = timedelta(seconds=30)
BATCH_SIZE: Final = 20
STATUSES: Final = ("pending", "sending", "sent", "dead", "skipped")
_SETTING_NAMES: Final = (
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username",
    "smtp_password",
    "mail_from",
    "webhook_url",
    "webhook_secret",
    "wecom_webhook_url",
    "dingtalk_webhook_url",
    "dingtalk_secret",
    "sms_gateway_url",
    "sms_api_key",
    "sms_sender_id",
)


def channel_config(settings: Settings) -> dict[str, str]:
    """The flat channel settings `notifications.channels.build_channels` reads."""
    config: dict[str, str] = {}
    for name in _SETTING_NAMES:
        value = getattr(settings, name)
        if name == "smtp_port":
            value = str(value) if value else ""
        config[name] = str(value)
    return config


@dataclass(frozen=True)
class Claimed:
    """A row this dispatcher run holds, copied out of the claim transaction."""

    id: int
    channel: str
    message: Message
    lease_until: datetime
    attempts: int  # including this one


@dataclass
class DispatchReport:
    """What one dispatcher run did."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0
    deferred: int = 0
    lost_lease: int = 0
    errors: list[str] = field(default_factory=list)


def _quiet_hours(uow: UnitOfWork) -> tuple[time, time]:
    try:
        return parse_quiet_hours(str(get_setting(uow, "sms_quiet_hours")))
    except ValueError:
        log.warning("bad sms_quiet_hours setting; using the default 22:00-07:00")
        return DEFAULT_QUIET_HOURS


def _message(row: OutboxMessage) -> Message:
    info: Mapping[str, Any] = row.recipient or {}
    recipient = Recipient(
        user_id=row.recipient_user_id,
        display_name=str(info.get("display_name") or ""),
        language=str(info.get("language") or DEFAULT_LANGUAGE),
        email=info.get("email") or None,
        phone=info.get("phone") or None,
    )
    return Message(
        channel=row.channel,
        recipient=recipient,
        template=row.template,
        params=dict(row.params or {}),
        idempotency_key=row.idempotency_key,
    )


def claim_due_messages(
    services: Services, now: datetime, worker: str, limit: int = BATCH_SIZE
) -> tuple[list[Claimed], int]:
    """Lease up to `limit` due rows to `worker`; returns them and the SMS held by quiet hours."""
    claimed: list[Claimed] = []
    deferred = 0
    with services.uow() as uow:
        stmt = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status.in_(("pending", "sending")),
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        if uow.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = list(uow.session.scalars(stmt))
        quiet = _quiet_hours(uow) if any(r.channel == "sms" for r in rows) else None
        lease_until = now + LEASE
        for row in rows:
            if row.status == "sending":
                log.warning("outbox %s: lease of %s expired; sending again", row.id, row.claimed_by)
            if quiet is not None and row.channel == "sms":
                release = quiet_hours_release(now.astimezone(LOCAL_TZ), quiet)
                if release is not None:
                    # Held until the quiet hours end; not an attempt.
                    row.status = "pending"
                    row.next_attempt_at = release.astimezone(UTC)
                    row.claimed_by = None
                    row.lease_until = None
                    deferred += 1
                    continue
            if is_exhausted(row.attempts):
                # Only reached by rows whose every attempt died mid-send (lease expiry).
                row.status = "dead"
                row.claimed_by = None
                row.lease_until = None
                row.last_error = f"gave up after {row.attempts} attempts that never finished"
                continue
            row.status = "sending"
            row.claimed_by = worker
            row.lease_until = lease_until
            row.next_attempt_at = lease_until
            row.attempts += 1
            claimed.append(Claimed(row.id, row.channel, _message(row), lease_until, row.attempts))
        uow.commit()
    return claimed, deferred


def _finish(services: Services, claimed: Claimed, worker: str, values: dict[str, Any]) -> bool:
    """Record an outcome if this worker still holds the row; False if its lease was lost."""
    with services.uow() as uow:
        result = uow.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == claimed.id,
                OutboxMessage.claimed_by == worker,
                OutboxMessage.status == "sending",
            )
            .values(claimed_by=None, lease_until=None, **values)
            .execution_options(synchronize_session=False)
        )
        uow.commit()
    return bool(getattr(result, "rowcount", 0))


def _release(services: Services, worker: str, ids: list[int], now: datetime) -> None:
    """Give back claimed rows not tried (the lease was running out): no attempt is counted."""
    with services.uow() as uow:
        uow.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(ids),
                OutboxMessage.claimed_by == worker,
                OutboxMessage.status == "sending",
            )
            .values(
                status="pending",
                claimed_by=None,
                lease_until=None,
                next_attempt_at=now,
                attempts=OutboxMessage.attempts - 1,
            )
            .execution_options(synchronize_session=False)
        )
        uow.commit()


def deliver_claimed(
    services: Services,
    claimed: Claimed,
    worker: str,
    channels: Mapping[str, Channel],
    report: DispatchReport,
) -> None:
    """Send one claimed message and record sent / retry with backoff / dead / skipped."""
    message = claimed.message
    channel = channels.get(claimed.channel)
    values: dict[str, Any]
    if channel is None:
        values = {
            "status": "skipped",
            "last_error": f"channel {claimed.channel!r} is not configured",
        }
        outcome = "skipped"
    else:
        try:
            rendered = render(
                message.template,
                message.params,
                message.recipient.language,
                services.settings.base_url,
            )
            provider_id = channel.send(message, rendered)
        except PermanentError as exc:
            values = {"status": "dead", "last_error": str(exc)[:2000]}
            outcome = "dead"
        except Exception as exc:
            # TransientError, or a bug in a channel: both deserve another try, with backoff.
            if not isinstance(exc, TransientError):
                log.exception("outbox %s: unexpected error from %s", claimed.id, claimed.channel)
            attempts = claimed.attempts
            error = f"{type(exc).__name__}: {exc}"[:2000]
            if is_exhausted(attempts):
                values = {"status": "dead", "last_error": error}
                outcome = "dead"
            else:
                delay = backoff_delay(attempts)
                retry_after = getattr(exc, "retry_after", None)
                if retry_after:
                    delay = max(delay, timedelta(seconds=float(retry_after)))
                values = {
                    "status": "pending",
                    "last_error": error,
                    "next_attempt_at": services.clock.now() + delay,
                }
                outcome = "retried"
        else:
            now = services.clock.now()
            values = {
                "status": "sent",
                "sent_at": now,
                "next_attempt_at": now,
                "provider_id": provider_id[:200] if provider_id else None,
                "last_error": None,
            }
            outcome = "sent"
    if not _finish(services, claimed, worker, values):
        # Another dispatcher took the row over after our lease ran out; it owns the outcome
        # (if we did send, the receiver drops the second copy by its idempotency key).
        report.lost_lease += 1
        log.warning("outbox %s: lease lost before recording %s", claimed.id, outcome)
        return
    setattr(report, outcome, getattr(report, outcome) + 1)
    if outcome in ("dead", "retried", "skipped"):
        report.errors.append(f"{claimed.id}: {values.get('last_error')}")


def dispatch_outbox(
    services: Services,
    now: datetime | None = None,
    *,
    channels: Mapping[str, Channel] | None = None,
    batch_size: int = BATCH_SIZE,
    max_batches: int | None = None,
) -> DispatchReport:
    """Deliver every due outbox message (the `dispatch_outbox` job); safe to run concurrently."""
    now = now or services.clock.now()
    channels = (
        channels if channels is not None else build_channels(channel_config(services.settings))
    )
    worker = f"dispatch-{secrets.token_hex(8)}"
    report = DispatchReport()
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        claimed, deferred = claim_due_messages(services, now, worker, batch_size)
        report.deferred += deferred
        if not claimed and not deferred:
            break
        for index, item in enumerate(claimed):
            if services.clock.now() >= item.lease_until - LEASE_MARGIN:
                _release(services, worker, [c.id for c in claimed[index:]], services.clock.now())
                break
            deliver_claimed(services, item, worker, channels, report)
        if len(claimed) + deferred < batch_size:
            break  # the due rows are used up (deferred ones are due later, not now)
    return report


def run_dispatch_job(services: Services, now: datetime) -> int:
    """Scheduler entry: dispatch, return how many messages were delivered."""
    return dispatch_outbox(services, now).sent


# ---------------------------------------------------------------------------- daily digest


def _digest_time(uow: UnitOfWork) -> time:
    text = str(get_setting(uow, "digest_time"))
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        log.warning("bad digest_time setting %r; using 08:30", text)
        return time(8, 30)


def _mark_job(uow: UnitOfWork, job: str, period: str, now: datetime) -> bool:
    """Insert the job's idempotency mark; False if this period was already done."""
    insert = pg_insert if uow.dialect == "postgresql" else sqlite_insert
    stmt = insert(JobRun).values(job=job, period=period, ran_at=now).on_conflict_do_nothing()
    return uow.session.execute(stmt.returning(JobRun.id)).first() is not None


def send_daily_digests(services: Services, now: datetime) -> int:
    """Once a local day after `digest_time` (08:30), queue each user's due and overdue work."""
    local = now.astimezone(LOCAL_TZ)
    today = local.date()
    with services.uow() as uow:
        if local.time() < _digest_time(uow):
            return 0
        if not _mark_job(uow, "daily_digest", today.isoformat(), now):
            return 0
        per_user = _digest_items(uow, today)
        base = services.settings.base_url.rstrip("/")
        for user_id, (due_today, overdue) in sorted(per_user.items()):
            user = uow.session.get(User, user_id)
            if user is None or not user.active:
                continue
            enqueue(
                uow,
                key=f"digest:{user.id}:{today.isoformat()}",
                template="daily_digest",
                params={
                    "display_name": user.display_name,
                    "date": today.isoformat(),
                    "due_today": due_today,
                    "overdue": overdue,
                    "url": f"{base}/tasks",
                },
                user=user,
                now=now,
            )
        uow.commit()
    return len(per_user)


def _digest_items(
    uow: UnitOfWork, today: date
) -> dict[int, tuple[list[dict[str, str]], list[dict[str, str]]]]:
    """Open tasks due by the end of today, grouped by whoever should act on them."""
    rows = uow.session.execute(
        select(Task, Case.case_no)
        .join(Case, Case.id == Task.case_id)
        .where(
            Task.status == "open",
            Task.due_at.is_not(None),
            Task.due_at < local_midnight_utc(today + timedelta(days=1)),
        )
        .order_by(Task.due_at, Task.id)
    ).all()
    role_holders: dict[tuple[str, int], list[int]] = {}
    out: dict[int, tuple[list[dict[str, str]], list[dict[str, str]]]] = {}
    for task, case_no in rows:
        assert task.due_at is not None  # filtered above
        due_on = task.due_at.astimezone(LOCAL_TZ).date()
        item = {"case_no": case_no, "task_name": task.name, "due_on": due_on.isoformat()}
        if task.assignee_id is not None:
            users = [task.assignee_id]
        elif task.role and task.unit_id is not None:
            key = (task.role, task.unit_id)
            if key not in role_holders:
                role_holders[key] = [u.id for u in users_with_role(uow, task.role, task.unit_id)]
            users = role_holders[key]
        else:
            users = []
        for user_id in users:
            due_today, overdue = out.setdefault(user_id, ([], []))
            (overdue if due_on < today else due_today).append(item)
    return out


# ---------------------------------------------------------------------------- admin


def _admin_view(row: OutboxMessage) -> dict[str, Any]:
    info: Mapping[str, Any] = row.recipient or {}
    phone = info.get("phone")
    return {
        "id": row.id,
        "idempotency_key": row.idempotency_key,
        "channel": row.channel,
        "template": row.template,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "recipient_user_id": row.recipient_user_id,
        "recipient_name": info.get("display_name") or "",
        "recipient_email": info.get("email"),
        "recipient_phone": mask_phone(str(phone)) if phone else None,
        "case_id": row.case_id,
        "created_at": row.created_at,
        "next_attempt_at": row.next_attempt_at,
        "sent_at": row.sent_at,
    }


def list_outbox(
    uow: UnitOfWork, actor: Actor, *, status: str | None, page: int = 1, per_page: int = 50
) -> dict[str, Any]:
    """Outbox rows for admins (e.g. the dead letters), newest first; phones masked."""
    require_admin(actor)
    per_page = max(1, min(per_page, 200))
    page = max(1, page)
    stmt = select(OutboxMessage).where(OutboxMessage.channel != "inapp")
    if status:
        stmt = stmt.where(OutboxMessage.status == status)
    total = uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = uow.session.scalars(
        stmt.order_by(OutboxMessage.id.desc()).limit(per_page).offset((page - 1) * per_page)
    )
    return {
        "items": [_admin_view(r) for r in rows],
        "total": total,
        "page": page,
        "per_page": per_page,
    }


def resend_message(uow: UnitOfWork, actor: Actor, message_id: int, now: datetime) -> dict[str, Any]:
    """Put a dead-lettered (or skipped) message back in the queue with fresh attempts (admin)."""
    require_admin(actor)
    row = uow.session.get(OutboxMessage, message_id)
    if row is None or row.channel == "inapp":
        raise NotFoundError("outbox message not found")
    if row.status not in ("dead", "skipped"):
        raise ConflictError(f"only dead or skipped messages can be resent, not {row.status}")
    previous = row.status
    row.status = "pending"
    row.attempts = 0
    row.next_attempt_at = now
    row.claimed_by = None
    row.lease_until = None
    record_event(
        uow,
        "outbox.resent",
        actor_id=actor.user_id,
        at=now,
        detail={"message_id": row.id, "previous_status": previous, "error": row.last_error},
    )
    return _admin_view(row)
