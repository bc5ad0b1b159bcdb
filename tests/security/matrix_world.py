"""The world the authorization matrix runs in: one client per demo user, fresh objects per request.

Every path parameter is filled by a factory that makes a NEW object for each request, so a
write that succeeds for one role never changes what the next role sees. The objects sit on the
street S01 (示范街道): inside the scope of clerk, handler, leader and supervisor (roles on S01),
outside the scope of reporter_v01 and handler_v01 (roles on the village V01 only).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from engine.bootstrap import Services
from engine.persistence.models import (
    OutboxMessage,
    ProcessDefinition,
    ScreeningRound,
    Unit,
    User,
)
from engine.services.access import load_actor
from engine.services.cases import open_case
from engine.services.notify import enqueue

# Columns of the matrix: anonymous, then demo users (DESIGN.md §6 roles), the last two outside
# the scope of the street-level objects.
USERS = ("anon", "admin", "clerk", "handler", "leader", "supervisor", "reporter_v01", "handler_v01")
SESSION_ENDING = frozenset({"/logout"})
_serial = itertools.count(1)


def unit_id(services: Services, code: str) -> int:
    """The id of the unit with that code."""
    with services.uow() as uow:
        return int(uow.session.scalar(select(Unit.id).where(Unit.code == code)))


def user_id(services: Services, username: str) -> int:
    """The id of the user with that name."""
    with services.uow() as uow:
        return int(uow.session.scalar(select(User.id).where(User.username == username)))


def new_case(services: Services, unit_code: str = "S01") -> dict[str, Any]:
    """A new simple_review case on the unit, opened by the clerk; its review task is open."""
    with services.uow() as uow:
        clerk = load_actor(uow.session, user_id(services, "clerk"))
    return open_case(
        services,
        clerk,
        case_type="simple_review",
        unit_id=unit_id(services, unit_code),
        data={},
        title=f"矩阵 {next(_serial)}",
    )


def new_message(services: Services, username: str = "handler") -> int:
    """A new in-app notification for `username`."""
    key = f"matrix-{next(_serial)}"
    with services.uow() as uow:
        user = uow.session.scalars(select(User).where(User.username == username)).one()
        enqueue(
            uow,
            key=key,
            template="task_available",
            params={"task_name": "审核", "case_no": "AJ-2026-000001", "url": "/tasks"},
            user=user,
            now=services.clock.now(),
        )
        uow.commit()
        return int(
            uow.session.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key))
        )


def new_petition(app: Any, headers: dict[str, str]) -> int:
    """A new petition registered by the clerk at the S01 petition office."""
    r = app.test_client().post("/api/v1/petitions", json=PETITION, headers=headers)
    assert r.status_code == 201, r.get_json()
    return int(r.get_json()["id"])


def v02_round(services: Services) -> int:
    """This month's screening round of village V02 (opened if need be)."""
    from engine.services.screening import open_rounds_for_month

    open_rounds_for_month(services, "2026-03", services.clock.now())
    with services.uow() as uow:
        return int(
            uow.session.scalar(
                select(ScreeningRound.id).where(
                    ScreeningRound.unit_id == unit_id(services, "V02"),
                    ScreeningRound.month == "2026-03",
                )
            )
        )


def hazard_body(services: Services) -> dict[str, Any]:
    """A valid hazard (矛盾纠纷) for the V02 ledger."""
    return {
        "dispute_type": "neighbour",
        "parties": "李四、王五",
        "involved_count": 2,
        "summary": "宅基地界址争议",
        "risk_level": "low",
        "method": "people_mediation",
        "responsible_unit_id": unit_id(services, "V02"),
        "responsible_person": "王主任",
        "found_on": "2026-03-02",
    }


def new_hazard(app: Any, services: Services, headers: dict[str, str]) -> int:
    """A new hazard on the V02 round, reported by V02's grid worker."""
    r = app.test_client().post(
        f"/api/v1/screening/rounds/{v02_round(services)}/hazards",
        json=hazard_body(services),
        headers=headers,
    )
    assert r.status_code == 201, r.get_json()
    return int(r.get_json()["id"])


def key_person_body(services: Services) -> dict[str, Any]:
    """A valid key person (重点人员) living in village V02."""
    return {
        "name": "赵六",
        "village_id": unit_id(services, "V02"),
        "source": "screening",
        "core_demand": "要求解决低保",
    }


def new_key_person(app: Any, services: Services, headers: dict[str, str]) -> int:
    """A new key person registered by the petition office."""
    r = app.test_client().post(
        "/api/v1/key-persons", json=key_person_body(services), headers=headers
    )
    assert r.status_code == 201, r.get_json()
    return int(r.get_json()["id"])


def definition_id(services: Services) -> int:
    """The deployed simple_review definition."""
    with services.uow() as uow:
        return int(
            uow.session.scalar(
                select(ProcessDefinition.id)
                .where(ProcessDefinition.process_id == "simple_review")
                .order_by(ProcessDefinition.id.desc())
            )
        )


PETITION = {
    "channel": "visit",
    "received_on": "2026-03-02",
    "petitioners": [{"name": "张三", "id_number": "11010519491231002X", "phone": "13812345678"}],
    "subject": "土地补偿",
    "request": "要求补发土地补偿款",
    "category": "claim",
}


class World:
    """Clients for each user and factories for path parameters."""

    def __init__(self, app: Any, services: Services) -> None:
        self.app = app
        self.services = services
        self.bearer: dict[str, dict[str, str]] = {}
        self.pages: dict[str, tuple[Any, str]] = {}
        self.factories: dict[str, Callable[[], Any]] = {
            "case_id": lambda: new_case(services)["id"],
            "task_id": lambda: new_case(services)["open_tasks"][0]["id"],
            "unit_id": lambda: unit_id(services, "V24"),
            "user_id": lambda: user_id(services, "handler_sfs"),
            "message_id": lambda: new_message(services),
            "petition_id": lambda: new_petition(app, self.token("clerk")),
            "round_id": lambda: v02_round(services),
            "hazard_id": lambda: new_hazard(app, services, self.token("reporter_v02")),
            "definition_id": lambda: definition_id(services),
            "key_person_id": lambda: new_key_person(app, services, self.token("clerk")),
            "code": lambda: "en",
            "filename": lambda: "css/app.css",
        }

    def login(self) -> None:
        """A bearer token and a logged-in page session (with its CSRF token) per user."""
        for username in USERS[1:]:
            self.token(username)
            self.pages[username] = self.session(username)
        self.pages["anon"] = self.session("anon")

    def token(self, username: str) -> dict[str, str]:
        """Bearer headers for any demo user (cached)."""
        if username not in self.bearer:
            r = self.app.test_client().post(
                "/api/v1/auth/token", json={"username": username, "password": "demo1234"}
            )
            assert r.status_code == 200, (username, r.get_json())
            self.bearer[username] = {"Authorization": f"Bearer {r.get_json()['access_token']}"}
        return self.bearer[username]

    def session(self, username: str) -> tuple[Any, str]:
        """A new page client logged in as `username` (none for anon), with its CSRF token."""
        client = self.app.test_client()
        token = _csrf(client.get("/login").get_data(as_text=True))
        if username == "anon":
            return client, token
        r = client.post(
            "/login", data={"username": username, "password": "demo1234", "csrf_token": token}
        )
        assert r.status_code == 302, (username, r.status_code)
        return client, _csrf(client.get("/tasks").get_data(as_text=True))

    def path(self, rule: str) -> str:
        """The rule with every <converter:name> replaced by a freshly made object."""

        def fill(m: re.Match[str]) -> str:
            name = m[1].split(":")[-1]
            return str(self.factories[name]())

        return re.sub(r"<([^>]+)>", fill, rule)

    def request(self, method: str, rule: str, user: str, body: Any) -> int:
        """Send one request as `user`; the answer's status."""
        path = self.path(rule)
        payload = body(self) if callable(body) else body
        if rule.startswith("/api/"):
            client = self.app.test_client()
            headers = self.bearer.get(user, {}) if user != "anon" else {}
            if method == "GET":
                resp = client.open(path, method=method, query_string=payload, headers=headers)
            else:
                resp = client.open(path, method=method, json=payload, headers=headers)
        else:
            # Logging out ends the session: use a throwaway one so the others stay valid.
            client, csrf = self.session(user) if rule in SESSION_ENDING else self.pages[user]
            headers = {"X-CSRFToken": csrf} if method != "GET" else {}
            resp = client.open(path, method=method, data=payload or {}, headers=headers)
        return int(resp.status_code)


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m is not None, "no CSRF token on the page"
    return m[1]
