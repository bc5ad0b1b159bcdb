"""Supervision (督办) of petitions whose deadline was missed: one short `petition_supervision`
case per miss, linked to the petition as its parent, shown on the petition's timeline."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from engine.clock import LOCAL_TZ
from engine.domain.deadlines import ALL_RULES
from engine.domain.enums import SupervisionMethod
from engine.persistence.models import Case, Deadline, Petition, PetitionSupervision, Task
from engine.services.access import SYSTEM
from engine.services.audit import record_case_event
from engine.services.case_types import HookContext
from engine.services.cases import start_case

if TYPE_CHECKING:
    from engine.workflow import HumanTask, Snapshot

SUPERVISION_TYPE = "petition_supervision"
SUPERVISION_PREFIX = "DB"  # 督办


def open_supervision(
    ctx: HookContext, case: Case, petition: Petition, deadline: Deadline
) -> PetitionSupervision | None:
    """Open `supervise` for a missed petition deadline, once per deadline and due date."""
    uow = ctx.uow
    existing = uow.session.scalars(
        select(PetitionSupervision).where(
            PetitionSupervision.petition_id == petition.case_id,
            PetitionSupervision.deadline_kind == deadline.kind,
            PetitionSupervision.due_on == deadline.due_on,
        )
    ).first()
    if existing is not None:
        return None
    rule = ALL_RULES.get(deadline.kind)
    label = rule.label_zh if rule else deadline.kind
    opened_on = ctx.now.astimezone(LOCAL_TZ).date()
    child, _snapshot = start_case(
        ctx.services,
        uow,
        SYSTEM,
        ctx.services.case_types.get(SUPERVISION_TYPE),
        unit_id=petition.unit_id,
        data={
            "unit_id": petition.unit_id,
            "petition_id": petition.case_id,
            "petition_case_no": case.case_no,
            "deadline_kind": deadline.kind,
            "due_on": deadline.due_on.isoformat(),
            "opened_on": opened_on.isoformat(),
        },
        title=f"督办：{case.case_no} {label}逾期",
        now=ctx.now,
        parent_case_id=case.id,
    )
    row = PetitionSupervision(
        petition_id=petition.case_id,
        case_id=child.id,
        deadline_kind=deadline.kind,
        due_on=deadline.due_on,
        opened_on=opened_on,
        unit_id=petition.unit_id,
        created_at=ctx.now,
    )
    uow.session.add(row)
    record_case_event(
        uow,
        case,
        "petition.supervision_opened",
        actor_id=None,
        at=ctx.now,
        detail={
            "deadline": deadline.kind,
            "due_on": deadline.due_on.isoformat(),
            "supervision_case_id": child.id,
            "supervision_case_no": child.case_no,
        },
    )
    uow.session.flush()
    return row


class SupervisionHooks:
    """`supervise`: the intervention's date and form, recorded on the petition's timeline."""

    def before_complete(
        self, ctx: HookContext, case: Case, task: Task, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Check the instruction date and record the intervention on the petition."""
        from engine.services.petitions import _business_date

        uow = ctx.uow
        row = uow.session.scalars(
            select(PetitionSupervision).where(PetitionSupervision.case_id == case.id)
        ).first()
        if row is None or task.bpmn_id != "supervise":
            return {}
        instructed_on = _business_date(ctx, data, "instructed_on", row.opened_on)
        row.method = SupervisionMethod(data["method"]).value
        row.notes = data.get("notes")
        row.instructed_on = instructed_on
        petition_case = uow.session.get(Case, row.petition_id)
        if petition_case is not None:
            record_case_event(
                uow,
                petition_case,
                "petition.supervised",
                actor_id=ctx.actor.user_id,
                at=ctx.now,
                detail={
                    "deadline": row.deadline_kind,
                    "method": row.method,
                    "instructed_on": instructed_on.isoformat(),
                    "notes": row.notes,
                    "supervision_case_id": case.id,
                },
            )
        uow.session.flush()
        return {"instructed_on": instructed_on.isoformat()}

    def after_complete(
        self,
        ctx: HookContext,
        case: Case,
        task: Task,
        data: Mapping[str, Any],
        snapshot: Snapshot,
    ) -> None:
        """Nothing more to update."""

    def task_due(self, ctx: HookContext, case: Case, task: HumanTask) -> datetime | None:
        """Supervision has no statutory due date."""
        return task.due_at
