"""Realistic bulk data for the growth and scheduler benchmarks (`python -m bench.seed --cases N`).

The demo's living petitions, built through the services in every state (registered, in
acceptance, in handling, replied, evaluated, closed unevaluated, not accepted ...), are the
templates. Each clone copies a template's rows in bulk, with new ids, into one of many streets:
the demo street 示范街道 (S01) is copied, units and users alike, once per ~750 cases (a street
registers ~150 petitions a year, so five years of them), so one user's inbox and board hold one
street's work however large the database grows, as in a real city or province.

A clone carries its case, petition, petitioner (with its own keyed hashes), task, deadline,
timer, audit and (open cases only) outbox rows. 5% of the clones are open (the open templates, whose workflow
state is copied as is, so their tasks can be completed and their timers fired); the rest are
closed with a compacted (empty) workflow state, as DESIGN.md §5 allows. Audit hash chains of
clones are copies and do not verify; outbox rows of clones are marked sent.

bench/seed_petitions.py (the annual-report seeder) writes petition rows without tasks or
workflow state in one street; this seeder exists because the growth benchmark completes tasks
and reads per-user views.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, func, select, text

from engine.bootstrap import Services
from engine.persistence.db import make_engine
from engine.persistence.models import (
    AuditEvent,
    Case,
    Deadline,
    OutboxMessage,
    Petition,
    Petitioner,
    RoleAssignment,
    Task,
    Timer,
    Unit,
    User,
)

CASES_PER_STREET = 750
OPEN_EVERY = 20  # one clone in 20 is open: 5%
CHUNK = 20_000  # cases per bulk-insert round

# Tables copied per case: (model, the column naming the case, the id column if it has its own).
CASE_TABLES: list[tuple[Any, str, str | None]] = [
    (Case, "id", None),
    (Petition, "case_id", None),
    (Petitioner, "petition_id", "id"),
    (Task, "case_id", "id"),
    (Deadline, "case_id", "id"),
    (Timer, "case_id", None),
    (AuditEvent, "case_id", "id"),
    (OutboxMessage, "case_id", "id"),
]
UNIT_COLUMNS = {"unit_id", "village_id", "responsible_unit_id"}
USER_COLUMNS = {"assignee_id", "completed_by_id", "created_by_id", "actor_id", "recipient_user_id"}
OPEN_STATUSES = ("running", "waiting")


@dataclass
class Template:
    """One demo case's rows, by table name."""

    case_id: int
    open: bool
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class Street:
    """A copy of the demo street: template unit id -> its unit, template user id -> its user."""

    units: dict[int, int]
    users: dict[int, int]


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


def load_templates(services: Services) -> list[Template]:
    """The demo petitions that stand alone (no review child, no parent) with all their rows."""
    with services.engine.connect() as conn:
        parents = select(Case.parent_case_id).where(Case.parent_case_id.is_not(None))
        cases = conn.execute(
            select(Case.id, Case.status)
            .where(
                Case.case_type == "petition",
                Case.parent_case_id.is_(None),
                Case.id.not_in(parents),
                Case.case_no.not_like("%.%"),
            )
            .order_by(Case.id)
        ).all()
        templates = {cid: Template(cid, status in OPEN_STATUSES) for cid, status in cases}
        for model, case_col, _own in CASE_TABLES:
            table = _table(model)
            for row in conn.execute(
                select(table).where(table.c[case_col].in_(list(templates)))
            ).mappings():
                templates[row[case_col]].rows.setdefault(table.name, []).append(dict(row))
    return list(templates.values())


def _max_id(conn: Connection, table: Table, column: str = "id") -> int:
    return int(conn.scalar(select(func.coalesce(func.max(table.c[column]), 0))) or 0)


def demo_street(conn: Connection) -> tuple[list[dict[str, Any]], list[int]]:
    """The units of the demo street's subtree, and the users holding roles only inside it."""
    street = conn.execute(select(Unit.id, Unit.path).where(Unit.code == "S01")).one()
    units = [
        dict(r)
        for r in conn.execute(
            select(_table(Unit)).where(Unit.path.startswith(street.path)).order_by(Unit.path)
        ).mappings()
    ]
    inside = {u["id"] for u in units}
    holders: dict[int, bool] = {}
    for user_id, unit_id in conn.execute(select(RoleAssignment.user_id, RoleAssignment.unit_id)):
        holders[user_id] = holders.get(user_id, True) and unit_id in inside
    return units, sorted(uid for uid, only_inside in holders.items() if only_inside)


def add_streets(services: Services, count: int) -> list[Street]:
    """Copy the demo street `count` times (units, users and their roles), in bulk."""
    if count <= 0:
        return []
    started = time.perf_counter()
    with services.engine.begin() as conn:
        units, user_ids = demo_street(conn)
        users = [
            dict(r)
            for r in conn.execute(select(_table(User)).where(User.id.in_(user_ids))).mappings()
        ]
        roles = [
            dict(r)
            for r in conn.execute(
                select(_table(RoleAssignment)).where(RoleAssignment.user_id.in_(user_ids))
            ).mappings()
        ]
        next_unit = _max_id(conn, _table(Unit)) + 1
        next_user = _max_id(conn, _table(User)) + 1
        next_role = _max_id(conn, _table(RoleAssignment)) + 1
        existing = int(conn.scalar(select(func.count()).where(Unit.code.like("S01-B%"))) or 0)
        street_root = units[0]
        streets: list[Street] = []
        unit_rows: list[dict[str, Any]] = []
        user_rows: list[dict[str, Any]] = []
        role_rows: list[dict[str, Any]] = []
        for k in range(existing + 1, existing + count + 1):
            umap: dict[int, int] = {}
            for u in units:
                umap[u["id"]] = next_unit
                next_unit += 1
            for u in units:
                parent = u["parent_id"]
                path = "/" + "/".join(
                    str(umap.get(int(p), int(p))) for p in u["path"].strip("/").split("/")
                ) + "/"  # fmt: skip
                code = u["code"]
                unit_rows.append(
                    {
                        **u,
                        "id": umap[u["id"]],
                        "code": f"S01-B{k:05d}" + code[len("S01") :]
                        if code.startswith("S01")
                        else f"{code}-B{k:05d}",
                        "name": f"{u['name']}#{k}",
                        "parent_id": umap.get(parent, parent) if parent is not None else None,
                        "path": path,
                    }
                )
            usermap: dict[int, int] = {}
            for user in users:
                usermap[user["id"]] = next_user
                user_rows.append(
                    {
                        **user,
                        "id": next_user,
                        "username": f"{user['username']}_b{k}",
                        "email": None,
                        "phone": None,
                    }
                )
                next_user += 1
            for role in roles:
                role_rows.append(
                    {
                        **role,
                        "id": next_role,
                        "user_id": usermap[role["user_id"]],
                        "unit_id": umap.get(role["unit_id"], role["unit_id"]),
                    }
                )
                next_role += 1
            streets.append(Street(umap, usermap))
        assert street_root["code"] == "S01"
        insert_rows(conn, _table(Unit), unit_rows)
        insert_rows(conn, _table(User), user_rows)
        insert_rows(conn, _table(RoleAssignment), role_rows)
        fix_sequences(conn, [_table(Unit), _table(User), _table(RoleAssignment)])
    print(f"  {count} streets copied in {time.perf_counter() - started:.1f} s", flush=True)
    return streets


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Bulk insert: COPY on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns = [c.name for c in table.columns]
    json_cols = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}
    raw: Any = conn.connection.driver_connection
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(
                tuple(
                    json.dumps(row.get(c), ensure_ascii=False) if c in json_cols else row.get(c)
                    for c in columns
                )
            )


def fix_sequences(conn: Connection, tables: Iterable[Table]) -> None:
    """Move PostgreSQL id sequences past the ids written explicitly."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables:
        if "id" in table.c and table.c.id.primary_key:
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                    f"(SELECT COALESCE(MAX(id), 1) FROM {table.name}))"
                )
            )


def _rehash(value: str | None, n: int) -> str | None:
    if value is None:
        return None
    return hashlib.blake2b(f"{value}:{n}".encode(), digest_size=32).hexdigest()


def clone_rows(
    template: Template, n: int, new_case: int, ids: dict[str, int], street: Street | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The rows of clone number `n` of a template, as (table, row)."""
    umap = street.units if street else {}
    usermap = street.users if street else {}
    closed = not template.open
    for model, case_col, own in CASE_TABLES:
        name = _table(model).name
        for src in template.rows.get(name, ()):
            row = dict(src)
            row[case_col] = new_case
            if own is not None:
                row[own] = ids[name]
                ids[name] += 1
            for col in UNIT_COLUMNS & row.keys():
                if row[col] is not None:
                    row[col] = umap.get(row[col], row[col])
            for col in USER_COLUMNS & row.keys():
                if row[col] is not None:
                    row[col] = usermap.get(row[col], row[col])
            if name == "cases":
                row["case_no"] = f"{row['case_no']}.{n}"
                row["parent_case_id"] = None
                if closed:
                    row["state"] = ""
            elif name == "petitions":
                row["reception_id"] = None
                row["repeat_of_id"] = None
            elif name == "petitioners":
                row["id_number_hash"] = _rehash(row["id_number_hash"], n)
                row["phone_hash"] = _rehash(row["phone_hash"], n)
            elif name == "audit_events":
                row["stream"] = f"case:{new_case}"
            elif name == "outbox":
                if closed:
                    continue  # delivered long ago; a closed clone keeps no outbox rows
                row["idempotency_key"] = f"{row['idempotency_key'][:180]}#b{n}"
                if row["status"] != "sent":
                    row["status"] = "sent"
                    row["sent_at"] = row["created_at"]
            yield name, row


def clone_cases(
    services: Services,
    count: int,
    *,
    templates: list[Template] | None = None,
    open_every: int = OPEN_EVERY,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Add `count` cases cloned from the templates, in new streets of ~750 cases each."""
    started = time.perf_counter()
    templates = templates or load_templates(services)
    opened = [t for t in templates if t.open]
    closed = [t for t in templates if not t.open]
    if not opened or not (closed or open_every == 1):
        raise SystemExit("the demo petitions are the templates: seed the demo first")
    with services.engine.connect() as conn:
        in_s01 = int(
            conn.scalar(
                select(func.count())
                .select_from(Case)
                .join(Unit, Unit.id == Case.unit_id)
                .where(Unit.code == "S01")
            )
            or 0
        )
    # The demo street fills up to CASES_PER_STREET first; then new streets of that size.
    own = max(0, min(count, CASES_PER_STREET - in_s01))
    streets = add_streets(services, -(-(count - own) // CASES_PER_STREET))
    tables = {_table(m).name: _table(m) for m, _c, _o in CASE_TABLES}
    done = 0
    engine = services.engine
    if engine.dialect.name == "sqlite":
        # Seeding is not the system under test: no fsync per chunk (the benchmarks' own
        # engine keeps synchronous=FULL).
        engine = make_engine(
            engine.url.render_as_string(hide_password=False), sqlite_synchronous="OFF"
        )
    with engine.connect() as conn:
        base = _max_id(conn, _table(Case)) + 1
        ids = {name: _max_id(conn, t) + 1 for name, t in tables.items() if "id" in t.c}
        serial = _max_id(conn, _table(Case))
    while done < count:
        size = min(CHUNK, count - done)
        batch: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
        for i in range(done, done + size):
            pool = opened if i % open_every == 0 else closed
            template = pool[(i // open_every) % len(pool)]
            street = None if i < own else streets[(i - own) // CASES_PER_STREET]
            serial += 1
            for name, row in clone_rows(template, serial, base + i, ids, street):
                batch[name].append(row)
        with engine.begin() as conn:
            for model, _c, _o in CASE_TABLES:
                table = _table(model)
                insert_rows(conn, table, batch[table.name])
        done += size
        if progress:
            progress(done)
    with engine.begin() as conn:
        fix_sequences(conn, tables.values())
        conn.execute(text("ANALYZE"))
    if engine is not services.engine:
        engine.dispose()
    return {
        "cases": count,
        "streets": len(streets),
        "seconds": round(time.perf_counter() - started, 1),
    }


def prepare(services: Services) -> None:
    """A fresh schema with the demo organisation and the demo petitions (the templates)."""
    from engine.persistence.migrate import upgrade
    from engine.services import demo
    from engine.services.petitions_demo import seed_petitions

    upgrade(services.engine)
    services.definitions.deploy_folder(services, services.settings.workflows_dir)
    demo.seed(services, with_cases=False)
    seed_petitions(services)


def count_cases(services: Services) -> int:
    """How many cases the database holds."""
    with services.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Case)) or 0)


def grow_to(services: Services, total: int, templates: list[Template] | None = None) -> None:
    """Add cloned cases until the database holds `total` cases."""
    have = count_cases(services)
    if have >= total:
        return
    started = time.perf_counter()

    def progress(done: int) -> None:
        if done % 200_000 == 0 or have + done >= total:
            rate = done / max(time.perf_counter() - started, 1e-6)
            print(f"  seeded {have + done:,} cases ({rate:,.0f}/s)", flush=True)

    clone_cases(services, total - have, templates=templates, progress=progress)


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.seed --cases N --database-url URL`: a database of N cases."""
    from engine.bootstrap import build_services
    from engine.config import Settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, required=True)
    # Required: cloned benchmark cases must never land in the instance's own database.
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args(argv)
    settings = Settings.from_env({}, database_url=args.database_url, log_level="WARNING")
    services = build_services(settings, deploy=False)
    from engine.persistence.migrate import upgrade

    upgrade(services.engine)
    if count_cases(services) == 0:
        prepare(services)
    grow_to(services, args.cases)
    print(f"{count_cases(services):,} cases in {services.engine.url.render_as_string()}")


if __name__ == "__main__":
    main()
