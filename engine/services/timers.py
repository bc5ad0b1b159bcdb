"""BPMN timers: fire those that are due, loading only the instances that are due."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from engine.bootstrap import Services
from engine.errors import ConflictError
from engine.persistence.db import conflicts_as_409
from engine.persistence.models import Case, Timer
from engine.services.access import SYSTEM
from engine.services.audit import record_case_event
from engine.services.case_types import HookContext
from engine.services.cases import apply_snapshot


def fire_due_timers(services: Services, now: datetime | None = None, *, limit: int = 10_000) -> int:
    """Fire every timer due at `now`; each case in its own transaction; returns cases advanced."""
    now = now or services.clock.now()
    fired = 0
    skipped: set[int] = set()
    while fired + len(skipped) < limit:
        with services.uow() as uow:
            stmt = select(Timer).where(Timer.fire_at <= now)
            if skipped:
                stmt = stmt.where(Timer.case_id.not_in(skipped))
            stmt = stmt.order_by(Timer.fire_at).limit(1)
            if uow.dialect == "postgresql":
                # Two schedulers never fire the same instance: each claims rows the other skips.
                stmt = stmt.with_for_update(skip_locked=True)
            timer = uow.session.scalars(stmt).first()
            if timer is None:
                return fired
            case = uow.session.get(Case, timer.case_id)
            if case is None:
                uow.session.delete(timer)
                uow.commit()
                continue
            try:
                with conflicts_as_409():
                    deployed = services.definitions.get(uow, case.definition_id)
                    snapshot = services.runtime.fire_timers(deployed.definition, case.state)
                    ctx = HookContext(services, uow, SYSTEM, now)
                    case_type = services.case_types.get(case.case_type)
                    record_case_event(
                        uow,
                        case,
                        "timer.fired",
                        actor_id=None,
                        at=now,
                        detail={"fire_at": timer.fire_at.isoformat()},
                    )
                    apply_snapshot(ctx, case, case_type, snapshot)
                    if snapshot.next_timer_at is not None and snapshot.next_timer_at <= now:
                        skipped.add(case.id)
                    uow.commit()
                    fired += 1
            except ConflictError:
                skipped.add(timer.case_id)
    return fired
