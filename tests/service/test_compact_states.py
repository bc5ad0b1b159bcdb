"""`fengqiao db compact-states`: states stored in full by older releases lose their spec.

A state written before the compact format embeds its process spec; it still loads, and the
maintenance run rewrites it compact without changing the case's version or its behaviour.
"""

from __future__ import annotations

import json

from sqlalchemy import select, update

from engine.bootstrap import Services
from engine.persistence.models import Case, Task
from engine.services.cases import compact_states
from engine.workflow import full_state
from tests.service.petition_support import accept, register


def _row(services: Services, case_id: int) -> tuple[str, int]:
    with services.uow() as uow:
        state, version = uow.session.execute(
            select(Case.state, Case.version).where(Case.id == case_id)
        ).one()
    return str(state), int(version)


def _store_in_full(services: Services, case_id: int) -> str:
    """Rewrite the case's state as an older release stored it (spec embedded)."""
    with services.uow() as uow:
        case = uow.session.get(Case, case_id)
        assert case is not None and case.definition_id is not None
        definition = services.definitions.get(uow, case.definition_id).definition
        whole = full_state(case.state, definition)
        uow.session.execute(
            update(Case)
            .where(Case.id == case_id)
            .values(state=whole)
            .execution_options(synchronize_session=False)
        )
        uow.commit()
    return whole


def test_full_states_are_compacted_once_and_the_case_runs_on(services: Services) -> None:
    old = register(services)["id"]
    new = register(services, subject="另一件信访事项")["id"]
    written_compact, _ = _row(services, new)
    whole = _store_in_full(services, old)
    _, version = _row(services, old)
    assert json.loads(whole)["spec"]["name"] == "petition"

    counts = compact_states(services, batch=1)
    assert counts["compacted"] == 1
    assert counts["cases"] >= 2
    assert counts["bytes_before"] == len(whole)
    assert counts["bytes_after"] < len(whole) / 2
    state, version_after = _row(services, old)
    assert version_after == version  # the same instance: no conflict for a concurrent writer
    assert json.loads(state)["spec"] == json.loads(written_compact)["spec"]
    assert _row(services, new)[0] == written_compact  # already compact: untouched

    # A second run finds nothing to do; the compacted case still moves on.
    assert compact_states(services)["compacted"] == 0
    accept(services, old, "2026-03-02")
    with services.uow() as uow:
        open_tasks = uow.session.scalars(
            select(Task.bpmn_id).where(Task.case_id == old, Task.status == "open")
        ).all()
    assert open_tasks == ["handle"]
