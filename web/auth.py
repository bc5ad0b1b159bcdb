"""Authentication for the API (bearer tokens) and the pages (session login with CSRF)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g, request, session
from flask_login import LoginManager, UserMixin, current_user
from flask_wtf.csrf import CSRFProtect

from engine.bootstrap import Services
from engine.errors import AuthenticationError
from engine.persistence.models import User
from engine.services.access import Actor, load_actor
from engine.services.users import actor_from_token

csrf = CSRFProtect()
login_manager = LoginManager()
PUBLIC_API = {"/api/v1/auth/token", "/api/v1/openapi.json", "/healthz"}


class SessionUser(UserMixin):
    """The logged-in user of the pages; the session remembers the password generation."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.id = actor.user_id


def services() -> Services:
    """The services of this app."""
    return current_app.extensions["fengqiao"]  # type: ignore[no-any-return]


def current_actor() -> Actor:
    """The authenticated actor of this request (401 if none)."""
    actor = g.get("actor")
    if actor is None:
        raise AuthenticationError("authentication required")
    return actor  # type: ignore[no-any-return]


def _load_session_user(user_id: str) -> SessionUser | None:
    svc = services()
    with svc.read_uow() as uow:
        user = uow.session.get(User, int(user_id))
        if user is None or not user.active or session.get("gen") != user.token_generation:
            return None
        return SessionUser(load_actor(uow.session, user.id))


def init_auth(app: Flask) -> None:
    """Wire Flask-Login, CSRF and the per-request actor."""
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "pages.login"
    login_manager.user_loader(_load_session_user)

    @app.before_request
    def _authenticate() -> Any:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            g.actor = actor_from_token(services(), header[7:].strip())
            return None
        if request.path.startswith("/static/"):
            return None
        if current_user.is_authenticated:
            if request.method not in {"GET", "HEAD", "OPTIONS"} and request.path not in PUBLIC_API:
                # Cookie-authenticated writes (the pages) must carry a CSRF token.
                csrf.protect()
            g.actor = current_user.actor
        return None
