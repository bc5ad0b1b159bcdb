"""Server-rendered pages (Jinja, Flask-Babel); every action calls the same services as the API."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import (
    Blueprint,
    Flask,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user

from engine.clock import LOCAL_TZ
from engine.domain import enums
from engine.domain.deadlines import ALL_RULES
from engine.domain.text import mask_id_number, mask_phone
from engine.errors import AuthenticationError
from engine.services.access import Actor, load_actor
from engine.services.users import authenticate
from web.auth import SessionUser, csrf, services

bp = Blueprint("pages", __name__, template_folder="../templates")


@dataclass(frozen=True)
class NavItem:
    """A main-navigation link, shown to holders of any of `roles` (everyone if None)."""

    endpoint: str
    label: Any
    roles: frozenset[str] | None
    order: int
    match: str = ""

    @property
    def prefix(self) -> str:
        """Endpoints starting with this prefix mark the link as the current page."""
        return self.match or self.endpoint


NAV: list[NavItem] = []


def register_nav(
    endpoint: str, label: Any, roles: Iterable[str] | None, order: int, match: str = ""
) -> None:
    """Add a link to the main navigation (page modules call this at import)."""
    if all(item.endpoint != endpoint for item in NAV):
        NAV.append(NavItem(endpoint, label, frozenset(roles) if roles else None, order, match))
        NAV.sort(key=lambda item: item.order)


def page_lang() -> str:
    """The page language as the services name it: 'en' or 'zh'."""
    return "en" if str(get_locale()) == "en" else "zh"


def actor_or_none() -> Actor | None:
    """The logged-in actor, if any."""
    return g.get("actor")  # type: ignore[no-any-return]


def has_role(actor: Actor | None, *roles: str) -> bool:
    """Whether the actor holds any of the roles (admins hold every page)."""
    if actor is None:
        return False
    return actor.is_admin or bool(actor.roles & set(roles))


def render_error(code: int, message: str, errors: Any = None) -> Any:
    """An error page in the pages' look."""
    return render_template(
        "error.html", code=code, message=message, errors=translate_errors(errors)
    ), code


# -- translating the server's validation messages ------------------------------------------

_FIXED_MESSAGES: dict[str, Callable[[], str]] = {
    "Missing data for required field.": lambda: _("This field is required."),
    "Field may not be empty.": lambda: _("This field is required."),
    "Field may not be null.": lambda: _("This field is required."),
    "Not a valid date; use YYYY-MM-DD.": lambda: _("Not a valid date; use YYYY-MM-DD."),
    "Not a valid integer.": lambda: _("Not a valid whole number."),
    "Not a valid boolean.": lambda: _("Not a valid yes/no value."),
    "Unknown field.": lambda: _("Unknown field."),
    "Unknown unit.": lambda: _("Unknown unit."),
}
_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        re.compile(r"^Must be greater than or equal to (\S+) and less than or equal to (\S+)\.$"),
        lambda m: _("Must be between %(a)s and %(b)s.", a=m[1], b=m[2]),
    ),
    (
        re.compile(r"^Must be greater than or equal to (\S+)\.$"),
        lambda m: _("Must be at least %(a)s.", a=m[1]),
    ),
    (
        re.compile(r"^Must be less than or equal to (\S+)\.$"),
        lambda m: _("Must be at most %(a)s.", a=m[1]),
    ),
    (
        re.compile(r"^Longer than maximum length (\d+)\.$"),
        lambda m: _("At most %(n)s characters.", n=m[1]),
    ),
    (
        re.compile(r"^Shorter than minimum length (\d+)\.$"),
        lambda m: _("At least %(n)s characters.", n=m[1]),
    ),
    (
        re.compile(r"^Length must be between (\d+) and (\d+)\.$"),
        lambda m: _("Between %(a)s and %(b)s characters.", a=m[1], b=m[2]),
    ),
    (re.compile(r"^Must be one of: .*\.$"), lambda m: _("Choose one of the listed options.")),
]


def translate_message(message: str) -> str:
    """A server validation message in the page language (unknown messages pass through)."""
    fixed = _FIXED_MESSAGES.get(message)
    if fixed is not None:
        return fixed()
    for pattern, make in _PATTERNS:
        match = pattern.match(message)
        if match:
            return make(match)
    return message


def translate_errors(errors: Any) -> Any:
    """{field: [messages]} with each message translated; other shapes are returned as they are."""
    if not isinstance(errors, dict):
        return errors
    out: dict[str, Any] = {}
    for key, value in errors.items():
        if isinstance(value, list):
            out[key] = [translate_message(v) if isinstance(v, str) else v for v in value]
        elif isinstance(value, str):
            out[key] = [translate_message(value)]
        else:
            out[key] = value
    return out


# -- labels --------------------------------------------------------------------------------

_ENUMS: dict[str, type[enums.LabelledEnum]] = {cls.__name__: cls for cls in enums.ALL_ENUMS}

CASE_STATUS: dict[str, Any] = {
    "running": _l("In progress"),
    "waiting": _l("Waiting"),
    "completed": _l("Closed"),
    "cancelled": _l("Cancelled"),
    "terminated": _l("Terminated"),
    "error": _l("Error"),
}


def enum_label(value: Any, enum_name: str) -> str:
    """The label of an enum value in the page language ('—' for none; unknown values as is)."""
    if value is None or value == "":
        return "—"
    cls = _ENUMS.get(enum_name)
    if cls is None:
        return str(value)
    try:
        return cls(str(value)).label(page_lang())
    except ValueError:
        return str(value)


def deadline_label(kind: str) -> str:
    """The label of a deadline kind (the rule table carries zh and en)."""
    rule = ALL_RULES.get(kind)
    return rule.label(page_lang()) if rule is not None else kind


def case_type_label(name: str) -> str:
    """The label of a case type."""
    ct = services().case_types.get(name)
    return ct.label_en if page_lang() == "en" else ct.label_zh


def case_status_label(status: str) -> str:
    """A case status in the page language."""
    label = CASE_STATUS.get(status)
    return str(label) if label is not None else status


def local_date(value: Any) -> str:
    """A date or time as a Shanghai calendar date (YYYY-MM-DD)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(LOCAL_TZ).date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]


_CJK = re.compile(r"[\u3400-\u9fff]")


def element_name(value: Any) -> str:
    """A BPMN element name in the page language: '办理 Handle' shows 办理 or Handle."""
    text = str(value or "")
    words = text.split(" ")
    cut = next((i for i, w in enumerate(words) if i and not _CJK.search(w)), None)
    if cut is None or not _CJK.search(words[0]):
        return text
    zh, en = " ".join(words[:cut]), " ".join(words[cut:])
    return en if str(get_locale()) == "en" else zh


def local_time(value: Any) -> str:
    """A time in Shanghai as YYYY-MM-DD HH:MM."""
    if value is None or value == "":
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")
    return str(value)


def _nav_items() -> list[NavItem]:
    actor = actor_or_none()
    if actor is None:
        return []
    return [
        item
        for item in NAV
        if item.roles is None or actor.is_admin or bool(actor.roles & item.roles)
    ]


# -- login, logout, language ---------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Session login for the pages."""
    error = None
    if request.method == "POST":
        csrf.protect()
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
            chosen = session.get("lang")
            session.clear()
            session["gen"] = generation
            session["lang"] = chosen or actor.language
            login_user(SessionUser(actor))
            target = request.args.get("next") or ""
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("pages.index")
            return redirect(target)
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("pages.index"))
    return render_template("login.html", error=error), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """End the session (the language choice stays)."""
    lang = session.get("lang")
    logout_user()
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("You have logged out."))
    return redirect(url_for("pages.login"))


@bp.route("/lang/<code>")
def switch_language(code: str) -> Any:
    """Switch the page language (zh-CN or en)."""
    session["lang"] = "en" if code == "en" else "zh-CN"
    target = request.referrer or url_for("pages.index")
    return redirect(target if target.startswith(request.host_url) else url_for("pages.index"))


@bp.route("/")
def index() -> Any:
    """The start page is the task inbox (or the login page)."""
    if not current_user.is_authenticated:
        return redirect(url_for("pages.login"))
    return redirect(url_for("pages.inbox"))


def _context() -> dict[str, Any]:
    return {
        "nav_items": _nav_items(),
        "page_lang": page_lang(),
        "has_role": lambda *roles: has_role(actor_or_none(), *roles),
        "current_endpoint": request.endpoint or "",
    }


def init_pages(app: Flask) -> None:
    """Register the page blueprints, filters and the navigation."""
    # Each page module registers its routes on bp when imported.
    from web.pages import (  # noqa: F401
        admin,
        boards,
        imports,
        keypersons,
        notifications,
        petitions,
        reports,
        screening,
        tasks,
    )

    app.register_blueprint(bp)
    app.context_processor(_context)
    app.add_template_filter(enum_label, "enum_label")
    app.add_template_filter(deadline_label, "deadline_label")
    app.add_template_filter(case_type_label, "case_type_label")
    app.add_template_filter(case_status_label, "case_status")
    app.add_template_filter(local_date, "local_date")
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(element_name, "element_name")
    app.add_template_filter(mask_id_number, "mask_id")
    app.add_template_filter(mask_phone, "mask_phone")
    app.add_template_filter(translate_message, "tr_msg")
