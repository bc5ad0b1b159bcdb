"""Requests that only read take no write lock: a list or a page is served while another
connection holds a write transaction open (on SQLite a GET used to queue for the write
lock behind it, up to the 30 s busy timeout)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select, text

from engine.bootstrap import Services
from engine.persistence.db import ReadOnlyUnitOfWorkError, reads_only
from engine.persistence.models import User
from tests.api.test_notifications_api import login
from tests.conftest import token_for


@pytest.fixture
def writer_holding_the_lock(services: Services) -> Iterator[None]:
    """Another process's write transaction, open for the whole test (a long import or a
    scheduler tick): on SQLite it holds the database's write lock."""
    conn = services.engine.connect()
    try:
        # The engine begins every transaction with BEGIN IMMEDIATE on SQLite (the write lock).
        conn.execute(text("UPDATE users SET display_name = display_name WHERE username = 'admin'"))
        yield
    finally:
        conn.rollback()
        conn.close()


def test_lists_are_served_while_another_write_is_in_flight(
    client: Any, services: Services, request: pytest.FixtureRequest
) -> None:
    headers = token_for(client, "handler")  # a POST: before the other write starts
    request.getfixturevalue("writer_holding_the_lock")
    started = time.monotonic()
    tasks = client.get("/api/v1/tasks?mine=true", headers=headers)
    assert tasks.status_code == 200, tasks.get_json()
    assert client.get("/api/v1/me", headers=headers).get_json()["username"] == "handler"
    assert time.monotonic() - started < 5


def test_a_page_is_served_while_another_write_is_in_flight(
    client: Any, services: Services, request: pytest.FixtureRequest
) -> None:
    login(client, "handler")  # a POST: before the other write starts
    request.getfixturevalue("writer_holding_the_lock")
    started = time.monotonic()
    page = client.get("/tasks")
    assert page.status_code == 200
    assert "待办" in page.get_data(as_text=True)
    assert time.monotonic() - started < 5


def test_a_get_reads_without_the_write_lock_or_a_transaction_and_a_post_takes_them(
    client: Any, services: Services, backend: str
) -> None:
    # SQLite: a GET reads in a plain BEGIN (one snapshot, no write lock); a POST begins with
    # BEGIN IMMEDIATE. PostgreSQL: a GET reads in autocommit (no BEGIN and no ROLLBACK round
    # trips; at READ COMMITTED each statement has its own snapshot either way); a POST
    # writes in a transaction, on the same pooled connection put back in transactions.
    headers = token_for(client, "handler")
    seen: list[tuple[str, bool]] = []

    def _record(conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        dbapi = conn.connection.dbapi_connection
        seen.append((statement.strip(), bool(getattr(dbapi, "autocommit", False))))

    event.listen(services.engine, "before_cursor_execute", _record)
    try:
        assert client.get("/api/v1/tasks", headers=headers).status_code == 200
        reads = list(seen)
        seen.clear()
        bad = client.post("/api/v1/tasks/999999/claim", headers=headers)
        assert bad.status_code == 404
        writes = list(seen)
    finally:
        event.remove(services.engine, "before_cursor_execute", _record)
    listing = [autocommit for statement, autocommit in reads if "FROM tasks" in statement]
    lookup = [autocommit for statement, autocommit in writes if "FROM tasks" in statement]
    assert listing and lookup
    if backend == "sqlite":
        # The token check's and the list's: neither takes the write lock.
        assert [s for s, _ in reads if s.startswith("BEGIN")] == ["BEGIN", "BEGIN"]
        assert "BEGIN IMMEDIATE" in [s for s, _ in writes]
    else:
        assert all(listing)  # the list's statements ran outside a transaction
        assert not any(lookup)  # the write's ran inside one


def test_a_read_only_unit_of_work_refuses_writes_and_writes_can_be_asked_for(
    services: Services,
) -> None:
    rename = text("UPDATE users SET display_name = 'changed' WHERE username = 'handler'")
    with reads_only():
        with services.uow() as uow:
            assert uow.read_only
            with pytest.raises(ReadOnlyUnitOfWorkError):
                uow.commit()
        # On PostgreSQL it reads in autocommit: a write would stick at once, so none passes.
        with services.uow() as uow, pytest.raises(ReadOnlyUnitOfWorkError):
            uow.session.execute(rename)
        with services.uow() as uow:
            user = uow.session.scalars(select(User).where(User.username == "handler")).one()
            user.display_name = "changed too"
            with pytest.raises(ReadOnlyUnitOfWorkError):
                uow.session.flush()
        with services.uow(write=True) as uow:
            assert not uow.read_only
    with services.uow() as uow:
        assert not uow.read_only
        name = uow.session.scalar(select(User.display_name).where(User.username == "handler"))
    assert name not in {"changed", "changed too"}
