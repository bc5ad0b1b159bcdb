"""Tokens, sessions, CSRF, error shapes, health and OpenAPI (issue 2 §8)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from engine.bootstrap import Services
from tests.conftest import token_for


def test_token_is_refused_when_wrong_expired_or_revoked(client: Any, services: Services) -> None:
    bad = client.post("/api/v1/auth/token", json={"username": "handler", "password": "nope"})
    assert bad.status_code == 401 and bad.get_json()["message"] == "invalid username or password"
    headers = token_for(client, "handler")
    assert client.get("/api/v1/me", headers=headers).get_json()["username"] == "handler"
    assert (
        client.get("/api/v1/me", headers={"Authorization": "Bearer forged.token"}).status_code
        == 401
    )

    admin = token_for(client, "admin")
    me = client.get("/api/v1/me", headers=headers).get_json()
    r = client.patch(f"/api/v1/users/{me['id']}", json={"password": "newpass123"}, headers=admin)
    assert r.status_code == 200, r.get_json()
    revoked = client.get("/api/v1/me", headers=headers)
    assert revoked.status_code == 401 and revoked.get_json()["message"] == "token revoked"
    assert (
        client.get("/api/v1/me", headers=token_for(client, "handler", "newpass123")).status_code
        == 200
    )


def test_the_token_check_runs_outside_a_transaction_on_postgresql(
    client: Any, services: Services, backend: str
) -> None:
    # One statement needs no transaction: on PostgreSQL the actor lookup runs in autocommit,
    # so psycopg sends no BEGIN and the pool no ROLLBACK around it (one round trip, not
    # three, on every API request). SQLite keeps its read-only (no write lock) transaction.
    from sqlalchemy import event

    headers = token_for(client, "handler")
    seen: list[bool] = []

    def _record(conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if "token_generation" in statement:
            seen.append(bool(getattr(conn.connection.dbapi_connection, "autocommit", False)))

    event.listen(services.engine, "before_cursor_execute", _record)
    try:
        assert client.get("/api/v1/me", headers=headers).get_json()["username"] == "handler"
    finally:
        event.remove(services.engine, "before_cursor_execute", _record)
    assert seen == [backend == "postgresql"]
    # The pooled connection goes back to transactions: a unit of work after it (here on
    # the very connection the check used: the pool hands out the last one returned) writes
    # all or nothing, never in autocommit.
    with services.uow() as uow:
        dbapi = uow.session.connection().connection.dbapi_connection
        assert not getattr(dbapi, "autocommit", False)
        assert uow.session.in_transaction()


def test_token_expires(client: Any, services: Services, monkeypatch: Any) -> None:
    headers = token_for(client, "clerk")
    import itsdangerous.timed

    real = itsdangerous.timed.time.time
    ttl = services.settings.token_ttl_minutes * 60
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() + ttl + 5)
    r = client.get("/api/v1/me", headers=headers)
    assert r.status_code == 401 and r.get_json()["message"] == "token expired"


def test_lockout_after_repeated_failures(client: Any, services: Services) -> None:
    for _ in range(5):
        client.post("/api/v1/auth/token", json={"username": "leader", "password": "wrong"})
    r = client.post("/api/v1/auth/token", json={"username": "leader", "password": "demo1234"})
    assert r.status_code == 401 and "locked" in r.get_json()["message"]
    services.clock.advance(timedelta(minutes=16))  # type: ignore[attr-defined]
    assert (
        client.post(
            "/api/v1/auth/token", json={"username": "leader", "password": "demo1234"}
        ).status_code
        == 200
    )


def test_admin_api_creates_units_and_users_and_validates(client: Any) -> None:
    admin = token_for(client, "admin")
    units = client.get("/api/v1/units", headers=admin).get_json()
    street = next(u for u in units["items"] if u["code"] == "S01")
    assert sum(1 for u in units["items"] if u["kind"] in {"village", "community"}) == 24
    r = client.post(
        "/api/v1/units",
        json={"code": "V25", "name": "新村", "kind": "village", "parent_id": street["id"]},
        headers=admin,
    )
    assert r.status_code == 201 and r.get_json()["reporting"] is True
    dup = client.post(
        "/api/v1/units",
        json={"code": "V25", "name": "x", "kind": "village", "parent_id": street["id"]},
        headers=admin,
    )
    assert dup.status_code == 409
    bad = client.post(
        "/api/v1/units", json={"code": "X", "name": "x", "kind": "planet"}, headers=admin
    )
    assert bad.status_code == 422 and "kind" in bad.get_json()["errors"]

    new_unit = r.get_json()["id"]
    u = client.post(
        "/api/v1/users",
        json={
            "username": "newbie",
            "password": "abc12345",
            "display_name": "新人",
            "roles": [{"role": "reporter", "unit_id": new_unit}],
        },
        headers=admin,
    )
    assert u.status_code == 201, u.get_json()
    weak = client.post(
        "/api/v1/users",
        json={"username": "weak", "password": "short", "display_name": "x"},
        headers=admin,
    )
    assert weak.status_code == 422 and "password" in weak.get_json()["errors"]
    nounit = client.post(
        "/api/v1/users",
        json={
            "username": "nounit",
            "password": "abc12345",
            "display_name": "x",
            "roles": [{"role": "handler"}],
        },
        headers=admin,
    )
    assert nounit.status_code == 422
    # Non-admins may not manage users, and see only the units in their scope.
    handler = token_for(client, "handler_v01")
    assert (
        client.post(
            "/api/v1/users",
            json={"username": "zz", "password": "abc12345", "display_name": "x"},
            headers=handler,
        ).status_code
        == 403
    )
    assert [
        x["code"] for x in client.get("/api/v1/units", headers=handler).get_json()["items"]
    ] == ["V01"]


def test_health_openapi_and_docs(client: Any) -> None:
    assert client.get("/healthz").get_json()["status"] == "ok"
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/tasks/{task_id}/complete" in spec["paths"]
    assert client.get("/api/docs").status_code == 200


def test_pages_login_needs_csrf_and_shows_inbox(client: Any) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert token
    bad = client.post(
        "/login", data={"username": "handler", "password": "wrong", "csrf_token": token.group(1)}
    )
    assert bad.status_code == 401
    ok = client.post(
        "/login", data={"username": "handler", "password": "demo1234", "csrf_token": token.group(1)}
    )
    assert ok.status_code == 302
    inbox = client.get("/tasks")
    assert inbox.status_code == 200 and "我的待办" in inbox.get_data(as_text=True)
    # A cookie-authenticated write without the CSRF token is refused.
    assert client.post("/logout").status_code == 400
