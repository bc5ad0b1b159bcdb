"""Flask application factory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, current_app, jsonify, request, session
from flask_babel import Babel, get_locale
from sqlalchemy import text

from engine.bootstrap import Services, build_services
from engine.config import Settings
from engine.persistence.db import reads_only
from web.auth import init_auth
from web.errors import register_error_handlers
from web.security import init_security

LANGUAGES = ("zh_Hans_CN", "en")


def _select_locale() -> str:
    lang = request.args.get("lang") or session.get("lang")
    if lang in {"en", "zh-CN", "zh_Hans_CN"}:
        return "en" if lang == "en" else "zh_Hans_CN"
    from flask import g

    actor = g.get("actor")
    if actor is not None:
        return "en" if actor.language == "en" else "zh_Hans_CN"
    default = current_app.extensions["fengqiao"].settings.default_language
    return "en" if default == "en" else "zh_Hans_CN"


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ReadOnlySafeMethods:
    """WSGI middleware: a GET, HEAD or OPTIONS request runs inside `reads_only()`, so its
    units of work take no write lock on SQLite (a list or a page never queues behind a write
    or a scheduler tick). A handler that must write on GET asks `Services.uow(write=True)`."""

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD", "GET") in SAFE_METHODS:
            with reads_only():
                return self.wsgi_app(environ, start_response)
        return self.wsgi_app(environ, start_response)


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    *,
    start_scheduler: bool = False,
) -> Flask:
    """Build the app; tests pass their own services (settable clock, temporary database)."""
    settings = settings or (services.settings if services else Settings.from_env())
    logging.basicConfig(level=settings.log_level)
    services = services or build_services(settings)
    app = Flask(__name__, instance_path=settings.instance_dir, instance_relative_config=False)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        API_TITLE="Fengqiao API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="v1/openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/static/vendor/swagger-ui/",
        BABEL_DEFAULT_LOCALE="zh_Hans_CN",
        BABEL_TRANSLATION_DIRECTORIES=str(Path(__file__).parent / "translations"),
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.wsgi_app = ReadOnlySafeMethods(app.wsgi_app)  # type: ignore[method-assign]
    app.extensions["fengqiao"] = services
    Babel(app, locale_selector=_select_locale, default_timezone="Asia/Shanghai")
    app.jinja_env.globals["get_locale"] = get_locale
    init_auth(app)
    init_security(app, services)
    from web.api import init_api

    init_api(app)
    # After flask-smorest, whose own HTTPException handler ours replaces.
    register_error_handlers(app)
    from web.pages import init_pages

    init_pages(app)

    @app.get("/healthz")
    def healthz() -> Any:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return jsonify({"status": "ok", "database": services.engine.dialect.name})

    @app.after_request
    def _headers(resp: Any) -> Any:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
        )
        return resp

    if start_scheduler:
        from engine.scheduler import start_background

        app.extensions["fengqiao_scheduler"] = start_background(services)
    return app
