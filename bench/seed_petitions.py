"""Bulk-seed petitions for benchmarks: cases, petitions, deadlines, supervisions, receptions.

Rows are generated inside the database with INSERT ... SELECT over a number series
(generate_series on PostgreSQL, a recursive CTE on SQLite), in a realistic mix: five channels,
three categories, 5% assigned from above, a third through proxies, 5% still awaiting
acceptance, 5% not accepted, 5% in handling, the rest replied (a few late) and either
evaluated (satisfied / basically satisfied / dissatisfied) or closed unevaluated, 2% repeats,
a supervision on every missed acceptance. Closed cases carry a compacted (empty) workflow
state, as DESIGN.md §5 allows; nothing here runs a workflow. Petitioner rows are not seeded:
no figure reads them.

    from bench.seed_petitions import seed_petitions
    seed_petitions(services, 1_000_000, years=(2022, 2023, 2024, 2025))
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, select, text

from engine.bootstrap import Services
from engine.persistence.models import Case, ProcessDefinition, Unit, User

CHUNK = 200_000


def _series(dialect: str, count: int) -> tuple[str, str]:
    """(WITH prefix, FROM clause) yielding n = 0 .. count-1."""
    if dialect == "postgresql":
        return "", f"generate_series(0, {count - 1}) AS s(n)"
    return (
        f"WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {count - 1}) ",
        "s",
    )


def _plus(dialect: str, column: str, days: str) -> str:
    """SQL for a date column plus a number of days."""
    if dialect == "postgresql":
        return f"({column} + ({days})::int)"
    return f"date({column}, '+' || ({days}) || ' days')"


def seed_petitions(
    services: Services, count: int, *, years: Sequence[int] = (2022, 2023, 2024, 2025)
) -> dict[str, Any]:
    """Insert `count` petitions spread evenly over `years`, with their cases and deadlines."""
    started = time.perf_counter()
    engine = services.engine
    dialect = engine.dialect.name
    with services.uow() as uow:
        session = uow.session
        street_row = session.scalars(
            select(Unit).where(Unit.kind == "street").order_by(Unit.id)
        ).one()
        street_id, street_path = street_row.id, street_row.path
        villages = list(
            session.scalars(
                select(Unit.id)
                .where(Unit.kind.in_(["village", "community"]), Unit.path.startswith(street_path))
                .order_by(Unit.id)
            )
        )
        definition = session.scalar(
            select(ProcessDefinition.id)
            .where(ProcessDefinition.process_id == "petition")
            .order_by(ProcessDefinition.id.desc())
        )
        leader = session.scalar(select(User.id).where(User.username == "leader"))
        first_id = int(session.scalar(select(func.coalesce(func.max(Case.id), 0))) or 0) + 1
    assert definition is not None
    assert leader is not None
    assert villages
    nyears = len(years)
    v = len(villages)
    village_case = f"CASE ((n / {nyears}) % {v}) " + " ".join(
        f"WHEN {i} THEN {vid}" for i, vid in enumerate(villages)
    ) + " END"  # fmt: skip
    if dialect == "postgresql":
        received = (
            f"(make_date(({years[0]} + (n % {nyears}))::int, 1, 1) + ((n * 7919) % 365)::int)"
        )
    else:
        received = f"date(printf('%d-01-01', {years[0]} + (n % {nyears})), '+' || ((n * 7919) % 365) || ' days')"
    r = "((n * 13) % 100)"
    status = (
        f"CASE WHEN {r} < 5 THEN 'registered' WHEN {r} < 10 THEN 'not_accepted' "
        f"WHEN {r} < 15 THEN 'handling' WHEN {r} < 70 THEN 'evaluated' ELSE 'not_evaluated' END"
    )
    decided_days = f"CASE WHEN {r} < 5 THEN NULL WHEN {r} >= 67 AND {r} < 70 THEN 20 ELSE 3 END"
    delivered_days = f"CASE WHEN {r} < 15 THEN NULL WHEN (n % 10) = 0 THEN 75 ELSE 40 END"
    evaluated_days = f"CASE WHEN {r} >= 15 AND {r} < 70 THEN 80 ELSE NULL END"
    closed_days = (
        f"CASE WHEN {r} < 5 THEN NULL WHEN {r} < 10 THEN 3 WHEN {r} < 15 THEN NULL "
        f"WHEN {r} < 70 THEN 80 ELSE 95 END"
    )
    rating = (
        f"CASE WHEN {r} >= 15 AND {r} < 70 THEN "
        "(CASE (n % 10) WHEN 0 THEN 'dissatisfied' WHEN 1 THEN 'basically_satisfied' "
        "WHEN 2 THEN 'basically_satisfied' ELSE 'satisfied' END) ELSE NULL END"
    )
    channel = (
        "CASE ((n * 31) % 5) WHEN 0 THEN 'visit' WHEN 1 THEN 'letter' WHEN 2 THEN 'online' "
        "WHEN 3 THEN 'phone' ELSE 'fax' END"
    )
    category = (
        "CASE ((n * 17) % 3) WHEN 0 THEN 'claim' WHEN 1 THEN 'suggestion' ELSE 'accusation' END"
    )
    case_status = (
        f"CASE WHEN {r} < 5 OR ({r} >= 10 AND {r} < 15) THEN 'running' ELSE 'completed' END"
    )
    year_of = f"({years[0]} + (n % {nyears}))"
    now = services.clock.now()
    params = {"now": now if dialect == "postgresql" else now.replace(tzinfo=None)}
    false = "false" if dialect == "postgresql" else "0"
    concat_no = (
        f"'XF-' || {year_of} || '-B' || lpad(CAST(n AS text), 8, '0')"
        if dialect == "postgresql"
        else f"'XF-' || {year_of} || '-B' || printf('%08d', n)"
    )
    with engine.begin() as conn:
        for offset in range(0, count, CHUNK):
            size = min(CHUNK, count - offset)
            prefix, source = _series(dialect, size)
            n_expr = f"CAST(s.n + {offset} AS BIGINT)"
            sub = f"(SELECT {n_expr} AS n FROM {source})"
            conn.execute(
                text(
                    f"INSERT INTO cases (id, case_type, case_no, title, unit_id, status, "
                    "definition_id, state, version, data, audit_seq, audit_hash, created_at, "
                    f"updated_at, closed_at) {prefix}SELECT {first_id} + n, 'petition', "
                    f"{concat_no}, '基准测试信访件', {street_id}, {case_status}, {definition}, '', "
                    f"1, '{{}}', 0, '', :now, :now, CASE WHEN {case_status} = 'completed' "
                    f"THEN :now ELSE NULL END FROM {sub} AS q"
                ),
                params,
            )
            conn.execute(
                text(
                    "INSERT INTO petitions (case_id, unit_id, channel, received_on, category, "
                    "source, proxy_agent, subject, request, village_id, headcount, status, "
                    "not_to_be_accepted_again, decision, decided_on, responsible_unit_id, "
                    "handling_method, reply_returns, outcome, delivered_on, delivery_method, "
                    f"rating, evaluated_on, closed_on, created_at) {prefix}"
                    f"SELECT {first_id} + n, {street_id}, {channel}, rcv, {category}, "
                    "CASE WHEN n % 20 = 0 THEN 'assigned' ELSE 'direct' END, "
                    "CASE WHEN n % 3 = 0 THEN '村信访代理员' ELSE NULL END, "
                    f"'基准测试事项', '基准测试诉求', {village_case}, 1, {status}, {false}, "
                    f"CASE WHEN {r} < 5 THEN NULL WHEN {r} < 10 THEN 'not_accept' "
                    "ELSE 'accept' END, "
                    f"{_plus(dialect, 'rcv', decided_days)}, "
                    f"CASE WHEN {r} < 10 THEN NULL ELSE {village_case} END, "
                    f"CASE WHEN {r} < 10 THEN NULL ELSE 'investigation' END, 0, "
                    f"CASE WHEN {r} < 15 THEN NULL ELSE 'explain' END, "
                    f"{_plus(dialect, 'rcv', delivered_days)}, "
                    f"CASE WHEN {r} < 15 THEN NULL ELSE 'in_person' END, {rating}, "
                    f"{_plus(dialect, 'rcv', evaluated_days)}, {_plus(dialect, 'rcv', closed_days)}, "
                    f":now FROM (SELECT n, {received} AS rcv FROM {sub} AS q0) AS q"
                ),
                params,
            )
        base = f"case_id >= {first_id}"
        plus = _plus
        deadline_sql = [
            # acceptance notice: 15 days from receipt (信访工作条例 Art. 23)
            f"SELECT case_id, 'acceptance_notice', {plus(dialect, 'received_on', '15')}, "
            f"CASE WHEN decided_on IS NULL THEN 'missed' WHEN decided_on <= "
            f"{plus(dialect, 'received_on', '15')} THEN 'met' ELSE 'missed' END, decided_on, "
            f"'信访工作条例 Art. 23', {false}, unit_id FROM petitions WHERE {base}",
            # reply: 60 days from acceptance (Art. 34)
            f"SELECT case_id, 'reply', {plus(dialect, 'decided_on', '60')}, "
            f"CASE WHEN delivered_on IS NULL THEN 'pending' WHEN delivered_on <= "
            f"{plus(dialect, 'decided_on', '60')} THEN 'met' ELSE 'missed' END, delivered_on, "
            f"'信访工作条例 Art. 34', {false}, responsible_unit_id FROM petitions "
            f"WHERE {base} AND decision = 'accept'",
            # evaluation window: 15 days from delivery (setting)
            f"SELECT case_id, 'evaluation_window', {plus(dialect, 'delivered_on', '15')}, "
            "CASE WHEN evaluated_on IS NULL THEN 'missed' ELSE 'met' END, "
            f"CASE WHEN evaluated_on IS NULL THEN NULL ELSE {plus(dialect, 'delivered_on', '10')} END, "
            f"'setting evaluation_window_days', {false}, unit_id FROM petitions "
            f"WHERE {base} AND delivered_on IS NOT NULL",
            # review request window: 30 days from delivery (Art. 35), lapsed unused
            f"SELECT case_id, 'review_request_window', {plus(dialect, 'delivered_on', '30')}, "
            f"'missed', NULL, '信访工作条例 Art. 35', {false}, unit_id FROM petitions "
            f"WHERE {base} AND delivered_on IS NOT NULL",
        ]
        for select_sql in deadline_sql:
            conn.execute(
                text(
                    "INSERT INTO deadlines (case_id, kind, due_on, state, met_on, source, "
                    f"calendar_unverified, unit_id) {select_sql}"
                )
            )
        # Repeats: every 50th petition repeats the one before it.
        conn.execute(
            text(
                f"UPDATE petitions SET repeat_of_id = case_id - 1 WHERE {base} "
                f"AND case_id > {first_id} AND (case_id - {first_id}) % 50 = 1"
            )
        )
        # A supervision (督办) on every missed acceptance, opened the day after.
        conn.execute(
            text(
                "INSERT INTO petition_supervisions (petition_id, case_id, deadline_kind, due_on, "
                "opened_on, unit_id, created_at) SELECT d.case_id, d.case_id, d.kind, d.due_on, "
                f"{plus(dialect, 'd.due_on', '1')}, d.unit_id, :now FROM deadlines d "
                f"WHERE d.case_id >= {first_id} AND d.kind = 'acceptance_notice' "
                "AND d.state = 'missed'"
            ),
            params,
        )
        # Receptions and field visits: a few a week over the years.
        rows = []
        for year in years:
            for day in range(0, 365, 3):
                held = date(year, 1, 1).toordinal() + day
                rows.append(
                    {
                        "kind": "reception" if day % 2 else "field_visit",
                        "held_on": date.fromordinal(held),
                        "leader_user_id": leader,
                        "unit_id": street_id,
                        "person_count": 1 + day % 7,
                        "created_at": params["now"],
                    }
                )
        conn.execute(
            text(
                "INSERT INTO receptions (kind, held_on, leader_user_id, unit_id, person_count, "
                "created_at) VALUES (:kind, :held_on, :leader_user_id, :unit_id, :person_count, "
                ":created_at)"
            ),
            rows,
        )
        if dialect == "postgresql":
            conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('cases', 'id'), "
                    "(SELECT MAX(id) FROM cases))"
                )
            )
    # Planner statistics, as PostgreSQL's autovacuum (or SQLite's PRAGMA optimize) keeps them.
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return {
        "petitions": count,
        "years": list(years),
        "first_case_id": first_id,
        "seconds": round(time.perf_counter() - started, 1),
    }
