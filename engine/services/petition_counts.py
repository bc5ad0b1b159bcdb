"""Deadline counts of the petition KPIs on SQLite, without joining every deadline of a year.

The on-time rates count a year's settled deadlines (some 700,000 rows at a province's scale)
of the petitions in a unit's scope, and "overdue at period end" counts petitions with an
unmet supervised deadline. PostgreSQL hashes the in-scope petitions once and joins; SQLite
can only nest loops, and probing a petition index for each of 700,000 deadlines costs seconds.
So on SQLite the counts are split by scope, which partitions the petitions:

- the total over every petition comes from the deadline index alone (the kinds counted here
  are petition kinds that no other case type may use — see `RESERVED_KINDS`);
- when the unit's subtree holds every unit, that total is the answer;
- otherwise the smaller side is counted through a join driven by the petitions (CROSS JOIN
  fixes SQLite's join order): the petitions in scope directly, or those out of scope, which
  are then subtracted from the total.

Every path returns the same numbers as the plain join; tests/service/test_annual_report.py
checks them against each other on hand-built data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

# Deadlines the offices must meet: missing one raises red and opens supervision (督办).
SUPERVISED_KINDS = (
    "acceptance_notice",
    "reply",
    "assigned",
    "review_decision",
    "re_review_decision",
)
# Deadlines whose settling the on-time and evaluation rates count.
SETTLED_KINDS = ("acceptance_notice", "reply", "evaluation_window")
# Only petition cases may carry these kinds: a data case type naming one is refused
# (engine.services.case_type_data), so the counts need not check the case type.
RESERVED_KINDS = frozenset(SUPERVISED_KINDS + SETTLED_KINDS)

_IN_SCOPE = (
    "(p.unit_id IN {inside} OR (p.unit_id IN {outside}"
    " AND (p.village_id IN {inside} OR p.responsible_unit_id IN {inside})))"
)
_OUT_OF_SCOPE = (
    "(p.unit_id IN {outside}"
    " AND (p.village_id IS NULL OR p.village_id NOT IN {inside})"
    " AND (p.responsible_unit_id IS NULL OR p.responsible_unit_id NOT IN {inside}))"
)
_SETTLED = (
    "SELECT d.kind, CASE WHEN d.state = 'met' THEN 1 ELSE 0 END AS met, count(*) FROM {source}"
    " WHERE {scope} d.kind IN {settled} AND d.due_on BETWEEN :start AND :end"
    " AND d.state IN ('met', 'missed') GROUP BY d.kind, met"
)
# One equality on `kind` per branch: SQLite 3.40 returns wrong rows for
# `met_on IS NULL AND kind IN (...) AND due_on < ?` over ix_deadlines_met_kind.
_OVERDUE_TOTAL = "SELECT count(DISTINCT case_id) FROM ({branches})"
_OVERDUE_BRANCH = (
    "SELECT case_id FROM deadlines WHERE met_on IS NULL AND kind = '{kind}' AND due_on < :end"
    " UNION ALL"
    " SELECT case_id FROM deadlines WHERE met_on > :end AND kind = '{kind}' AND due_on < :end"
)
_OVERDUE_SCOPED = (
    "SELECT count(DISTINCT d.case_id) FROM petitions AS p CROSS JOIN deadlines AS d"
    " WHERE d.case_id = p.case_id AND {scope} AND d.kind IN {supervised} AND d.due_on < :end"
    " AND (d.met_on IS NULL OR d.met_on > :end)"
)
_JOINED = "petitions AS p CROSS JOIN deadlines AS d"


def _ids(values: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(v)) for v in values) + ")" if values else "(NULL)"


def _checked(values: Sequence[str]) -> Sequence[str]:
    assert all(v.replace("_", "").isalnum() for v in values)  # our own kind names
    return values


def _words(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in _checked(values)) + ")"


def sqlite_deadline_counts(
    session: Session,
    inside: Sequence[int],
    outside: Sequence[int],
    start: date,
    end: date,
) -> dict[tuple[str, int], int]:
    """{(kind, met): n} of settled deadlines due in the period, and ("overdue", 0): petitions.

    The unit ids and kinds are written into the SQL as literals (integers and our own
    constants); only the dates are bound."""
    lists = {
        "inside": _ids(inside),
        "outside": _ids(outside),
        "settled": _words(SETTLED_KINDS),
        "supervised": _words(SUPERVISED_KINDS),
    }
    dates = {"start": start.isoformat(), "end": end.isoformat()}

    def run(template: str, **parts: str) -> list[Any]:
        sql = template.format(**parts, **lists).format(**lists)
        return list(session.execute(text(sql), dates))

    def settled(source: str, scope: str) -> dict[tuple[str, int], int]:
        rows = run(_SETTLED, source=source, scope=scope)
        return {(str(kind), int(met)): int(n) for kind, met, n in rows}

    def overdue(scope: str) -> int:
        return int(run(_OVERDUE_SCOPED, scope=scope)[0][0] or 0)

    def totals() -> dict[tuple[str, int], int]:
        counts = settled("deadlines AS d", "")
        branches = " UNION ALL ".join(
            _OVERDUE_BRANCH.format(kind=kind) for kind in _checked(SUPERVISED_KINDS)
        )
        counts[("overdue", 0)] = int(run(_OVERDUE_TOTAL, branches=branches)[0][0] or 0)
        return counts

    if not outside:
        return totals()  # the subtree holds every unit: every petition is in scope
    own = run("SELECT count(*) FROM petitions WHERE unit_id IN {inside}")[0][0]
    everyone = run("SELECT count(*) FROM petitions")[0][0]
    if 2 * int(own or 0) < int(everyone or 0):
        counts = settled(_JOINED, f"d.case_id = p.case_id AND {_IN_SCOPE} AND")
        counts[("overdue", 0)] = overdue(_IN_SCOPE)
        return counts
    excluded = settled(_JOINED, f"d.case_id = p.case_id AND {_OUT_OF_SCOPE} AND")
    excluded[("overdue", 0)] = overdue(_OUT_OF_SCOPE)
    return {key: n - excluded.get(key, 0) for key, n in totals().items()}
