"""Sign-in throttling per address, body size limit, TLS-only cookies and security headers."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.persistence.models import LoginFailure, Unit
from tests.conftest import token_for
from web.app import create_app


def login_form(client: Any, username: str, password: str, **kw: Any) -> Any:
    """POST the pages' login form with its CSRF token."""
    page = client.get("/login", **kw).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    return client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token[1]}, **kw
    )


def _fail(client: Any, username: str, address: str) -> Any:
    return client.post(
        "/api/v1/auth/token",
        json={"username": username, "password": "wrong-password1"},
        environ_base={"REMOTE_ADDR": address},
    )


def test_one_address_is_throttled_after_twenty_failures_across_accounts(
    client: Any, services: Services
) -> None:
    # Spread over many accounts so the per-account lockout never triggers.
    names = ["handler", "leader", "supervisor", "clerk", "reporter_v01"]
    for i in range(20):
        assert _fail(client, names[i % 5], "203.0.113.7").status_code == 401
    blocked = client.post(
        "/api/v1/auth/token",
        json={"username": "admin", "password": "demo1234"},
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )
    assert blocked.status_code == 429
    assert blocked.get_json()["code"] == 429 and "too many" in blocked.get_json()["message"]
    assert 0 < int(blocked.headers["Retry-After"]) <= 15 * 60
    # The page login shares the counter.
    page = login_form(client, "admin", "demo1234", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert page.status_code == 429
    # Another address is unaffected, and the window passes.
    other = client.post(
        "/api/v1/auth/token",
        json={"username": "admin", "password": "demo1234"},
        environ_base={"REMOTE_ADDR": "198.51.100.1"},
    )
    assert other.status_code == 200
    services.clock.advance(timedelta(minutes=16))  # type: ignore[attr-defined]
    again = client.post(
        "/api/v1/auth/token",
        json={"username": "admin", "password": "demo1234"},
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )
    assert again.status_code == 200
    # Expired rows are pruned on the next failure, so the table stays small.
    _fail(client, "handler", "203.0.113.7")
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count(LoginFailure.id))) == 1


def test_page_login_failures_count_towards_the_address_limit(
    client: Any, services: Services
) -> None:
    for _ in range(20):
        r = login_form(client, "nobody", "x", environ_base={"REMOTE_ADDR": "203.0.113.9"})
        assert r.status_code == 401
    assert _fail(client, "handler", "203.0.113.9").status_code == 429
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count(LoginFailure.id))) == 20


def test_oversized_body_is_refused_with_413_json_and_nothing_written(
    client: Any, services: Services, auth: Any
) -> None:
    limit = services.settings.max_content_length
    with services.uow() as uow:
        before = uow.session.scalar(select(func.count(Unit.id)))
    r = client.post(
        "/api/v1/units",
        data=b'{"code": "V99", "name": "' + b"x" * (limit + 10) + b'", "kind": "village"}',
        content_type="application/json",
        headers=auth("admin"),
    )
    assert r.status_code == 413
    body = r.get_json()
    assert body["code"] == 413 and body["status"] == "Payload Too Large"
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count(Unit.id))) == before


def test_security_headers_on_api_and_pages(client: Any, auth: Any) -> None:
    for resp in (client.get("/api/v1/me", headers=auth("handler")), client.get("/login")):
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        assert "unsafe-eval" not in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Cache-Control"] == "no-store"
        assert "Strict-Transport-Security" not in resp.headers


def test_api_docs_run_under_the_strict_csp_without_inline_scripts(client: Any) -> None:
    resp = client.get("/api/docs")
    assert resp.status_code == 200
    assert re.findall(rb"<script>(.*?)</script>", resp.data, re.S) == []
    assert "script-src 'self';" in resp.headers["Content-Security-Policy"]
    for src in re.findall(rb'<script src="([^"]+)"', resp.data):
        assert src.startswith(b"/static/")


def test_behind_tls_cookies_are_secure_and_hsts_is_sent(services: Services) -> None:
    tls = replace(services, settings=replace(services.settings, secure_cookies=True))
    app = create_app(services=tls)
    app.config.update(TESTING=True)
    client = app.test_client()
    resp = login_form(
        client,
        "handler",
        "demo1234",
        base_url="https://fengqiao.example",
        headers={"Referer": "https://fengqiao.example/login"},  # Flask-WTF's strict TLS check
    )
    assert resp.status_code == 302
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    token = token_for(client, "admin")
    assert client.get("/api/v1/me", headers=token).status_code == 200


def test_session_cookie_is_httponly_and_samesite_without_tls(client: Any) -> None:
    resp = login_form(client, "handler", "demo1234")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
