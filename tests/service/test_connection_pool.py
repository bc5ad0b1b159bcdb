"""PostgreSQL pool: a connection cut while idle is replaced before a request uses it.

The pool pings only connections that idled (engine/persistence/db.py), not every checkout;
a server restart or an idle timeout between two requests must still never reach a request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from engine.persistence import db
from tests.conftest import PG_URL

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="no PostgreSQL configured"),
]


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = db.make_engine(PG_URL)
    yield eng
    eng.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT pg_backend_pid()")) or 0)


def _terminate(pid: int) -> None:
    url = make_url(PG_URL)
    with psycopg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username,
        dbname=url.database,
        autocommit=True,
    ) as admin:
        killed = admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()
        assert killed == (True,)


def test_a_connection_killed_while_idle_is_replaced_before_use(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
    first = _backend_pid(engine)
    _terminate(first)
    # The pooled connection is dead; the ping on checkout finds out and the pool reconnects.
    second = _backend_pid(engine)
    assert second != first


def test_a_connection_in_steady_use_is_not_pinged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Within the idle allowance there is no ping: the dead connection reaches the caller.
    # This is the cost the ping saves, and the proof that the test above relies on the ping.
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 3600.0)
    first = _backend_pid(engine)
    pings: list[object] = []
    original = engine.dialect.do_ping

    def counting_ping(dbapi_conn: Any) -> bool:
        pings.append(dbapi_conn)
        return original(dbapi_conn)

    monkeypatch.setattr(engine.dialect, "do_ping", counting_ping)
    assert _backend_pid(engine) == first
    assert pings == []
    _terminate(first)
    with pytest.raises(OperationalError):
        _backend_pid(engine)
    # SQLAlchemy recognised the disconnect and dropped the pool: the next use reconnects.
    assert _backend_pid(engine) != first
