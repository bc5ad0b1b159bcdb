"""BPMN timers: fire those that are due, loading only the instances that are due."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select

from engine.bootstrap import Services
from engine.errors import ConflictError
from engine.persistence.db import conflicts_as_409
from engine.persistence.models import Case, Task, Timer
from engine.services.access import SYSTEM
from engine.services.audit import record_case_event
from engine.services.case_types import HookContext
from engine.services.cases import LoadedRows, apply_snapshot

# Cases fired per transaction: one commit (one fsync on SQLite) per batch, not per case. Each
# case runs in its own savepoint, so a lost race skips only that case.
BATCH = 50


def fire_due_timers(
    services: Services, now: datetime | None = None, *, limit: int = 10_000, batch: int = BATCH
) -> int:
    """Fire every timer due at `now`, a batch of cases per transaction; returns cases advanced."""
    now = now or services.clock.now()
    fired = 0
    skipped: set[int] = set()
    while fired + len(skipped) < limit:
        with services.uow() as uow:
            session = uow.session
            stmt = select(Timer).where(Timer.fire_at <= now)
            if skipped:
                stmt = stmt.where(Timer.case_id.not_in(skipped))
            stmt = stmt.order_by(Timer.fire_at, Timer.case_id).limit(
                min(batch, limit - fired - len(skipped))
            )
            if uow.dialect == "postgresql":
                # Two schedulers never fire the same instance: each claims rows the other skips.
                stmt = stmt.with_for_update(skip_locked=True)
            timers = list(session.scalars(stmt))
            if not timers:
                return fired
            ids = [t.case_id for t in timers]
            cases = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_(ids)))}
            open_tasks: dict[int, list[Task]] = defaultdict(list)
            for task in session.scalars(
                select(Task).where(Task.case_id.in_(ids), Task.status == "open")
            ):
                open_tasks[task.case_id].append(task)
            advanced = 0
            for timer in timers:
                case = cases.get(timer.case_id)
                if case is None:
                    session.delete(timer)
                    continue
                try:
                    with conflicts_as_409(), session.begin_nested():
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
                        apply_snapshot(
                            ctx,
                            case,
                            case_type,
                            snapshot,
                            loaded=LoadedRows(open_tasks=open_tasks[case.id], timer=timer),
                        )
                    if snapshot.next_timer_at is not None and snapshot.next_timer_at <= now:
                        skipped.add(case.id)
                    advanced += 1
                except ConflictError:
                    skipped.add(case.id)
            uow.commit()
            fired += advanced
    return fired
