"""The 督办 deadline board lists the deadlines still to chase: open cases only.

After a quarter of petitions (tests/service/test_petition_kpis.py), the closed ones — replied
and evaluated, or closed when their evaluation window lapsed, or not accepted — leave the
board with their lapsed windows; the open ones keep their pending and overdue deadlines.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.persistence.models import Case
from engine.services.cases import CLOSED_STATUSES
from engine.services.deadlines import open_deadlines_board
from tests.service.petition_support import actor
from tests.service.test_petition_kpis import build_march


def test_closed_cases_leave_the_board_and_open_ones_stay(
    services: Services, clock: SettableClock
) -> None:
    ids = build_march(services, clock)
    supervisor = actor(services, "supervisor")
    with services.uow() as uow:
        status = {row.id: row.status for row in uow.session.execute(select(Case.id, Case.status))}
        board = open_deadlines_board(uow, supervisor, date(2026, 7, 1))
    closed = {name for name, cid in ids.items() if status[cid] in CLOSED_STATUSES}
    still_open = set(ids) - closed
    # The quarter leaves both kinds: P1, P4 and P7 are closed, P5 and P6 still open.
    assert {"P1", "P4", "P7"} <= closed and {"P5", "P6"} <= still_open
    on_board = {item["case_id"] for item in board}
    assert not on_board & {ids[name] for name in closed}
    # P5's acceptance (overdue since March) and P6's undelivered reply are still to chase.
    kinds = {(item["case_id"], item["kind"]) for item in board}
    assert (ids["P5"], "acceptance_notice") in kinds
    assert (ids["P6"], "reply") in kinds
