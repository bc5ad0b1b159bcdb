"""Server-rendered pages (Jinja, Flask-Babel); every action calls the same services as the API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import login_required, login_user, logout_user

from engine.errors import AuthenticationError
from engine.services.access import load_actor
from engine.services.users import authenticate
from web.auth import SessionUser, services

bp = Blueprint("pages", __name__, template_folder="../templates")


def render_error(code: int, message: str, errors: Any = None) -> Any:
    """An error page in the pages' look."""
    return render_template("error.html", code=code, message=message, errors=errors), code


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Session login for the pages."""
    error = None
    if request.method == "POST":
        svc = services()
        try:
            with svc.uow() as uow:
                user = authenticate(
                    uow,
                    request.form.get("username", ""),
                    request.form.get("password", ""),
                    svc.clock.now(),
                )
                actor = load_actor(uow.session, user.id)
                generation = user.token_generation
                uow.commit()
        except AuthenticationError as exc:
            error = (
                _("Invalid username or password.")
                if "locked" not in exc.message
                else _("Account temporarily locked.")
            )
        else:
            session.clear()
            session["gen"] = generation
            session["lang"] = actor.language
            login_user(SessionUser(actor))
            target = request.args.get("next") or ""
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("pages.index")
            return redirect(target)
    return render_template("login.html", error=error), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """End the session."""
    logout_user()
    session.clear()
    flash(_("You have logged out."))
    return redirect(url_for("pages.login"))


@bp.route("/lang/<code>")
def switch_language(code: str) -> Any:
    """Switch the page language (zh-CN or en)."""
    session["lang"] = "en" if code == "en" else "zh-CN"
    target = request.referrer or url_for("pages.index")
    return redirect(target if target.startswith(request.host_url) else url_for("pages.index"))


@bp.route("/")
@login_required
def index() -> Any:
    """The start page is the task inbox."""
    return redirect(url_for("pages.inbox"))


def init_pages(app: Flask) -> None:
    """Register the page blueprints."""
    from web.pages import tasks  # noqa: F401  (registers its routes on bp)

    app.register_blueprint(bp)
