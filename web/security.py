"""Web-layer protections: sign-in throttling per address, body size, transport and headers.

Settings (read from the FENGQIAO_* environment through Settings.extra):
  FENGQIAO_LOGIN_THROTTLE_MAX: failed sign-ins one address may make per window (default 20);
      beyond it both sign-in routes answer 429 with Retry-After until the window has passed.
  FENGQIAO_LOGIN_THROTTLE_MINUTES: the sliding window, in minutes (default 15).
  FENGQIAO_TRUSTED_PROXIES: how many reverse proxies set X-Forwarded-For/-Proto in front of
      the app (default 0: the socket address is the client). Set it behind nginx, or every
      client shares the proxy's address and TLS is not seen.

The per-account lockout lives in engine.services.users.authenticate; this module adds the
per-address limit. Failures are rows in `login_failures`, so every web worker (gunicorn -w N)
and every host behind a balancer counts the same attempts.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, Response, g, jsonify, request
from sqlalchemy import delete, func, select
from sqlalchemy.exc import DataError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from engine.bootstrap import Services
from engine.errors import AuthenticationError
from engine.persistence.models import LoginFailure
from web.auth import PUBLIC_API
from web.errors import error_body

# The two places a password is typed: the API token exchange and the pages' login form.
LOGIN_PATHS = frozenset({"/api/v1/auth/token", "/login"})
DEFAULT_THROTTLE_MAX = 20
DEFAULT_THROTTLE_MINUTES = 15
DOCS_PATH = "/api/docs"
# The largest id an INTEGER primary key holds on PostgreSQL (ids are 32-bit there).
MAX_ID = 2**31 - 1
# PostgreSQL SQLSTATEs for a value a column cannot hold (numeric and string overflow).
NUMERIC_STATES = frozenset({"22003", "22001", "22P02"})
HSTS = "max-age=31536000; includeSubDomains"


def _setting(services: Services, name: str, default: int) -> int:
    raw = services.settings.extra.get(name)
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


def client_address() -> str:
    """The caller's address as the app sees it (after ProxyFix, when proxies are trusted)."""
    return (request.remote_addr or "unknown")[:64]


def recent_failures(services: Services, address: str, now: datetime) -> tuple[int, datetime | None]:
    """Failed sign-ins from `address` inside the window, and the oldest of them."""
    window = timedelta(
        minutes=_setting(services, "login_throttle_minutes", DEFAULT_THROTTLE_MINUTES)
    )
    with services.uow() as uow:
        count, oldest = uow.session.execute(
            select(func.count(LoginFailure.id), func.min(LoginFailure.attempted_at)).where(
                LoginFailure.address == address, LoginFailure.attempted_at > now - window
            )
        ).one()
    return int(count or 0), oldest


def record_login_failure(services: Services, address: str, now: datetime) -> None:
    """Remember one failed sign-in from `address`, pruning rows the window no longer needs."""
    window = timedelta(
        minutes=_setting(services, "login_throttle_minutes", DEFAULT_THROTTLE_MINUTES)
    )
    with services.uow() as uow:
        uow.session.execute(delete(LoginFailure).where(LoginFailure.attempted_at <= now - window))
        uow.session.add(LoginFailure(address=address, attempted_at=now))
        uow.commit()


def _throttled_response(retry_after: int) -> Any:
    message = "too many failed sign-ins from this address; try again later"
    if request.path.startswith("/api/"):
        resp = jsonify(error_body(429, message))
        resp.status_code = 429
    else:
        from web.pages import render_error

        body, code = render_error(429, message)
        resp = Response(body, status=code, mimetype="text/html")
    resp.headers["Retry-After"] = str(retry_after)
    return resp


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` that matches only ids a database column can hold (larger ones are 404)."""

    def __init__(
        self,
        url_map: Any,
        fixed_digits: int = 0,
        min: int | None = None,  # Werkzeug's argument names
        max: int | None = MAX_ID,
        signed: bool = False,
    ) -> None:
        super().__init__(url_map, fixed_digits, min, max, signed)


def _number_out_of_range(exc: Exception) -> Any:
    # A number no column can hold (SQLite: beyond 64 bits; PostgreSQL: beyond the column's
    # type) is bad input, not a server fault: the transaction was rolled back, nothing written.
    if isinstance(exc, DataError) and getattr(exc.orig, "sqlstate", "") not in NUMERIC_STATES:
        raise exc
    resp = jsonify(error_body(422, "a number is out of range"))
    resp.status_code = 422
    return resp


def init_security(app: Flask, services: Services) -> None:
    """Wire throttling, the 413 answer, HSTS/Secure cookies and the extra headers into `app`."""
    # Before any blueprint registers its rules: converters are bound when a rule is added.
    app.url_map.converters["int"] = BoundedIntConverter
    app.register_error_handler(OverflowError, _number_out_of_range)
    app.register_error_handler(DataError, _number_out_of_range)
    proxies = _setting(services, "trusted_proxies", 0)
    if proxies > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
    secure = services.settings.secure_cookies
    app.config.update(
        SESSION_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_SAMESITE="Lax",
    )

    @app.before_request
    def _limit_body() -> None:
        # Refuse before anything reads the body (chunked uploads are cut by Werkzeug's stream).
        limit = app.config.get("MAX_CONTENT_LENGTH")
        if limit and (request.content_length or 0) > limit:
            raise RequestEntityTooLarge(f"request body larger than {limit} bytes")

    @app.before_request
    def _api_requires_authentication() -> None:
        # Deny by default: every API route but the public ones needs a caller, checked before
        # the body is parsed, so anonymous requests learn nothing from validation messages.
        if (
            request.path.startswith("/api/")
            and request.path not in PUBLIC_API
            and request.path != DOCS_PATH
            and request.method != "OPTIONS"
            and g.get("actor") is None
        ):
            raise AuthenticationError("authentication required")

    @app.before_request
    def _throttle_logins() -> Any:
        if request.method != "POST" or request.path not in LOGIN_PATHS:
            return None
        now = services.clock.now()
        limit = _setting(services, "login_throttle_max", DEFAULT_THROTTLE_MAX)
        count, oldest = recent_failures(services, client_address(), now)
        g.login_throttle_checked = True
        if count < limit:
            return None
        minutes = _setting(services, "login_throttle_minutes", DEFAULT_THROTTLE_MINUTES)
        free_at = (oldest or now) + timedelta(minutes=minutes)
        return _throttled_response(max(1, math.ceil((free_at - now).total_seconds())))

    @app.after_request
    def _after(resp: Response) -> Response:
        if (
            resp.status_code == 401
            and request.method == "POST"
            and request.path in LOGIN_PATHS
            and g.get("login_throttle_checked")
        ):
            record_login_failure(services, client_address(), services.clock.now())
        if secure:
            resp.headers.setdefault("Strict-Transport-Security", HSTS)
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        resp.headers.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"
        )
        if not request.path.startswith("/static/"):
            # Answers carry personal data: no shared or back-button cache may keep them.
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp
