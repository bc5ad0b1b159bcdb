"""The petition KPIs' deadline counts agree with a plain count, for every unit of the tree.

On SQLite the counts take one of three routes by scope (engine/services/petition_counts.py):
the whole tree from the deadline index alone, a small scope through the petitions it holds,
a large one as the total minus the petitions outside it. Some petitions here are registered
at the district (outside the street), some of those concern a village or a department of the
street, so every route runs with petitions on both sides. The expected numbers are counted
in Python from the rows themselves.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from sqlalchemy import select, update

from bench.seed_petitions import seed_petitions
from engine.bootstrap import Services
from engine.domain.kpi import Ratio
from engine.errors import ValidationError
from engine.persistence.models import Deadline, Petition, Unit
from engine.services import petitions
from engine.services.case_type_data import parse_case_type
from engine.services.petition_counts import SETTLED_KINDS, SUPERVISED_KINDS
from engine.services.reports import resolve_period
from tests.service.petition_support import actor

YEAR = (date(2025, 1, 1), date(2025, 12, 31))


def _mix_scopes(services: Services) -> None:
    """Move every 7th petition to the district's own register, half of them off any village."""
    with services.uow() as uow:
        session = uow.session
        district = session.scalar(select(Unit.id).where(Unit.code == "D01"))
        department = session.scalar(
            select(Unit.id).where(Unit.kind == "department").order_by(Unit.id)
        )
        ids = list(session.scalars(select(Petition.case_id).order_by(Petition.case_id)))
        for n, case_id in enumerate(ids[::7]):
            values: dict[str, object] = {"unit_id": district}
            if n % 2:
                values["village_id"] = None
            if n % 3 == 0:
                values["responsible_unit_id"] = department
            session.execute(update(Petition).where(Petition.case_id == case_id).values(**values))
        uow.commit()


def _expected(services: Services, code: str) -> dict[str, object]:
    start, end = YEAR
    with services.uow() as uow:
        session = uow.session
        path = session.scalar(select(Unit.path).where(Unit.code == code))
        assert path is not None
        inside = {
            uid for uid, p in session.execute(select(Unit.id, Unit.path)) if p.startswith(path)
        }
        in_scope = {
            row.case_id
            for row in session.execute(
                select(
                    Petition.case_id,
                    Petition.unit_id,
                    Petition.village_id,
                    Petition.responsible_unit_id,
                )
            )
            if {row.unit_id, row.village_id, row.responsible_unit_id} & inside
        }
        settled: Counter[tuple[str, bool]] = Counter()
        overdue: set[int] = set()
        for d in session.scalars(select(Deadline)):
            if d.case_id not in in_scope:
                continue
            if (
                d.kind in SETTLED_KINDS
                and start <= d.due_on <= end
                and d.state in ("met", "missed")
            ):
                settled[(d.kind, d.state == "met")] += 1
            if (
                d.kind in SUPERVISED_KINDS
                and d.due_on < end
                and (d.met_on is None or d.met_on > end)
            ):
                overdue.add(d.case_id)

    def rate(kind: str) -> Ratio:
        met = settled[(kind, True)]
        return Ratio(met, met + settled[(kind, False)])

    return {
        "accepted_on_time_rate": rate("acceptance_notice"),
        "replied_on_time_rate": rate("reply"),
        "evaluation_rate": rate("evaluation_window"),
        "overdue_open": len(overdue),
    }


def test_every_unit_gets_the_counts_of_a_plain_join(services: Services) -> None:
    seed_petitions(services, 1_400, years=(2024, 2025))
    _mix_scopes(services)
    with services.uow() as uow:
        codes = list(uow.session.scalars(select(Unit.code).order_by(Unit.path)))
    admin = actor(services, "admin")
    checked = 0
    for code in codes:
        expected = _expected(services, code)
        with services.uow() as uow:
            unit = uow.session.scalar(select(Unit.id).where(Unit.code == code))
            period = resolve_period(uow, admin, *YEAR, unit)
            got = petitions.petition_figures(uow, period)
        assert {key: got[key] for key in expected} == expected, code
        checked += int(expected["accepted_on_time_rate"].denominator > 0)  # type: ignore[attr-defined]
    # The district, the street and most villages have settled deadlines to count.
    assert checked >= 10


def test_a_data_case_type_may_not_take_a_petition_deadline_kind() -> None:
    spec = {
        "format": "fengqiao.case-type/1",
        "name": "complaint_x",
        "process": "complaint_x",
        "prefix": "CX",
        "label": {"zh": "投诉", "en": "Complaint"},
        "deadlines": [{"rule": "reply", "tasks": ["answer"]}],
    }
    with pytest.raises(ValidationError) as refused:
        parse_case_type(spec, filename="complaint_x.casetype.yaml")
    assert "reserved for petitions" in str(refused.value.errors)
