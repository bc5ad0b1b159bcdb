"""Requests that only read take no write lock: a list or a page is served while another
connection holds a write transaction open (on SQLite a GET used to queue for the write
lock behind it, up to the 30 s busy timeout)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text

from engine.bootstrap import Services
from engine.persistence.db import ReadOnlyUnitOfWorkError, reads_only
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


def test_a_get_reads_in_a_transaction_without_the_write_lock_and_a_post_takes_it(
    client: Any, services: Services, backend: str
) -> None:
    headers = token_for(client, "handler")
    begins: list[str] = []

    def _record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.startswith("BEGIN"):
            begins.append(statement.strip())

    event.listen(services.engine, "before_cursor_execute", _record)
    try:
        assert client.get("/api/v1/tasks", headers=headers).status_code == 200
        reads = list(begins)
        begins.clear()
        bad = client.post("/api/v1/tasks/999999/claim", headers=headers)
        assert bad.status_code == 404
        writes = list(begins)
    finally:
        event.remove(services.engine, "before_cursor_execute", _record)
    if backend == "sqlite":
        assert reads and all(b == "BEGIN" for b in reads)
        assert "BEGIN IMMEDIATE" in writes
    else:  # psycopg begins implicitly: no BEGIN statement goes through SQLAlchemy
        assert reads == [] and writes == []


def test_a_read_only_unit_of_work_refuses_to_commit_and_writes_can_be_asked_for(
    services: Services,
) -> None:
    with reads_only():
        with services.uow() as uow:
            assert uow.read_only
            with pytest.raises(ReadOnlyUnitOfWorkError):
                uow.commit()
        with services.uow(write=True) as uow:
            assert not uow.read_only
    with services.uow() as uow:
        assert not uow.read_only
