"""Append-only, hash-chained audit trail: one chain per case, one for everything else."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from engine.persistence.db import UnitOfWork
from engine.persistence.models import AuditEvent, AuditHead, Case

SYSTEM_STREAM = "system"


def _digest(
    prev: str,
    stream: str,
    seq: int,
    at: datetime,
    actor_id: int | None,
    action: str,
    detail: dict[str, Any],
) -> str:
    payload = json.dumps(
        [prev, stream, seq, at.isoformat(), actor_id, action, detail],
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def record_case_event(
    uow: UnitOfWork,
    case: Case,
    action: str,
    *,
    actor_id: int | None,
    at: datetime,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event to a case's chain; the case row (and its version) carries the head."""
    detail = _jsonable(detail or {})
    actor_id = actor_id or None
    seq = case.audit_seq + 1
    digest = _digest(case.audit_hash, f"case:{case.id}", seq, at, actor_id, action, detail)
    event = AuditEvent(
        stream=f"case:{case.id}",
        seq=seq,
        at=at,
        actor_id=actor_id or None,
        case_id=case.id,
        action=action,
        detail=detail,
        prev_hash=case.audit_hash,
        hash=digest,
    )
    case.audit_seq = seq
    case.audit_hash = digest
    uow.session.add(event)
    return event


def record_event(
    uow: UnitOfWork,
    action: str,
    *,
    actor_id: int | None,
    at: datetime,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an event that belongs to no case (logins, organisation and user changes)."""
    detail = _jsonable(detail or {})
    actor_id = actor_id or None
    session = uow.session
    stmt = select(AuditHead).where(AuditHead.stream == SYSTEM_STREAM)
    if uow.dialect == "postgresql":
        stmt = stmt.with_for_update()
    head = session.scalars(stmt).first()
    if head is None:
        head = AuditHead(stream=SYSTEM_STREAM, seq=0, hash="")
        session.add(head)
    seq = head.seq + 1
    digest = _digest(head.hash, SYSTEM_STREAM, seq, at, actor_id, action, detail)
    event = AuditEvent(
        stream=SYSTEM_STREAM,
        seq=seq,
        at=at,
        actor_id=actor_id or None,
        case_id=None,
        action=action,
        detail=detail,
        prev_hash=head.hash,
        hash=digest,
    )
    head.seq, head.hash = seq, digest
    session.add(event)
    return event


@dataclass(frozen=True)
class BrokenLink:
    """The first place where a chain does not verify."""

    stream: str
    seq: int
    reason: str


def verify_chains(uow: UnitOfWork) -> list[BrokenLink]:
    """Recompute every chain; report the first broken link of each broken stream."""
    session = uow.session
    heads: dict[str, tuple[int, str]] = {
        f"case:{cid}": (seq, h)
        for cid, seq, h in session.execute(select(Case.id, Case.audit_seq, Case.audit_hash))
    }
    heads.update({h.stream: (h.seq, h.hash) for h in session.scalars(select(AuditHead))})
    broken: list[BrokenLink] = []
    current: str | None = None
    prev_hash = ""
    expected = 1
    bad = False

    def close(stream: str | None) -> None:
        if stream is None or bad:
            return
        seq, h = heads.get(stream, (0, ""))
        if expected - 1 != seq or prev_hash != h:
            broken.append(BrokenLink(stream, expected, "entries missing at the end of the chain"))

    rows = session.scalars(
        select(AuditEvent).order_by(AuditEvent.stream, AuditEvent.seq)
    ).yield_per(2000)
    seen: set[str] = set()
    for ev in rows:
        if ev.stream != current:
            close(current)
            current, prev_hash, expected, bad = ev.stream, "", 1, False
            seen.add(ev.stream)
        if bad:
            continue
        if ev.seq != expected:
            broken.append(BrokenLink(ev.stream, expected, "entry deleted"))
            bad = True
            continue
        digest = _digest(prev_hash, ev.stream, ev.seq, ev.at, ev.actor_id, ev.action, ev.detail)
        if ev.prev_hash != prev_hash or ev.hash != digest:
            broken.append(BrokenLink(ev.stream, ev.seq, "entry edited"))
            bad = True
            continue
        prev_hash = ev.hash
        expected += 1
    close(current)
    for stream, (seq, _h) in heads.items():
        if seq > 0 and stream not in seen:
            broken.append(BrokenLink(stream, 1, "entries missing at the end of the chain"))
    return broken


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
