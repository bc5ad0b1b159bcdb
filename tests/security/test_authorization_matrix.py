"""The authorization matrix: every route, every role, inside and outside scope (issue 9).

One table lists each route (method + rule) with the status each user gets. Objects named in
the path are made fresh for each request: cases, tasks and petitions on the street S01;
screening rounds, hazards and key persons in its village V02. So the columns read:

  anon          no credentials: 401 on the API, a redirect to the login page (302) on pages
  admin         system-wide
  clerk         intake@S01        (inside scope)
  handler       handler@S01       (inside scope)
  leader        leader@S01        (inside scope)
  supervisor    supervisor@S01    (inside scope)
  reporter_v01  reporter@V01      (OUTSIDE the objects' scope: reads are 404)
  handler_v01   handler@V01       (OUTSIDE the objects' scope: reads are 404)

Forbidden actions are 403, out-of-scope reads 404 (never reveal that a thing exists). A route
missing from the table fails `test_every_route_is_in_the_matrix`, which prints the row the
route answers today: check each status against the rules above before pasting it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from engine.bootstrap import Services
from tests.security.matrix_world import (
    PETITION,
    USERS,
    World,
    hazard_body,
    key_person_body,
    new_case,
    unit_id,
    user_id,
)

Body = dict[str, Any] | Callable[[World], Any] | None


@dataclass(frozen=True)
class R:
    """One row: a route and the status each user in USERS gets."""

    method: str
    rule: str
    expect: tuple[int, ...]
    body: Body = None


def row(method: str, rule: str, *expect: int, body: Body = None) -> R:
    """A matrix row; `expect` follows the USERS columns."""
    assert len(expect) == len(USERS), (method, rule)
    return R(method, rule, tuple(expect), body)


def _unit_code() -> str:
    return f"MX{os.getpid() % 1000}{next(_codes)}"


_codes = iter(range(1, 1_000_000))


def _new_unit(w: World) -> dict[str, Any]:
    return {
        "code": _unit_code(),
        "name": "矩阵村",
        "kind": "village",
        "parent_id": unit_id(w.services, "S01"),
    }


def _new_user(w: World) -> dict[str, Any]:
    return {
        "username": f"mx_{next(_codes)}",
        "password": "matrix1234",
        "display_name": "矩阵用户",
        "roles": [{"role": "handler", "unit_id": unit_id(w.services, "V01")}],
    }


def _new_case(w: World) -> dict[str, Any]:
    return {"case_type": "simple_review", "unit_id": unit_id(w.services, "S01"), "title": "矩阵"}


REVIEW = {"data": {"decision": "reject", "decided_on": "2026-03-02"}}
MONTH = {"month": "2026-03"}
# Request bodies (JSON; query parameters for GET) that are valid, so that a role allowed to act
# gets 2xx and the table shows the authorization decision rather than a validation error.
BODIES: dict[tuple[str, str], Body] = {
    ("POST", "/api/v1/auth/token"): {},
    ("POST", "/api/v1/units"): _new_unit,
    ("PATCH", "/api/v1/units/<int:unit_id>"): {"name": "改名村"},
    ("POST", "/api/v1/users"): _new_user,
    ("PATCH", "/api/v1/users/<int:user_id>"): {"display_name": "司法所办事员"},
    ("POST", "/api/v1/cases"): _new_case,
    ("POST", "/api/v1/tasks/<int:task_id>/complete"): REVIEW,
    ("POST", "/api/v1/petitions"): PETITION,
    ("GET", "/api/v1/petitions/repeat-check"): {"name": "张三", "matter": "土地补偿"},
    ("POST", "/api/v1/petitions/<int:petition_id>/review-requests"): {"level": "review"},
    ("POST", "/api/v1/receptions"): lambda w: {
        "kind": "reception",
        "held_on": "2026-03-02",
        "leader_user_id": user_id(w.services, "leader"),
        "person_count": 1,
    },
    ("POST", "/api/v1/screening/rounds/<int:round_id>/hazards"): lambda w: hazard_body(w.services),
    ("POST", "/api/v1/screening/hazards/<int:hazard_id>/notes"): {
        "text": "回访",
        "noted_on": "2026-03-02",
    },
    ("POST", "/api/v1/key-persons"): lambda w: key_person_body(w.services),
    ("GET", "/api/v1/screening/rounds"): MONTH,
    ("GET", "/api/v1/exports/screening-ledger.xlsx"): MONTH,
    ("GET", "/api/v1/reports/kpi"): {"from": "2026-03-01", "to": "2026-03-31"},
    ("GET", "/api/v1/reports/annual"): {"year": "2026"},
    ("GET", "/api/v1/reports/annual.xlsx"): {"year": "2026"},
    ("GET", "/reports/annual"): {"year": "2026"},
    ("PATCH", "/api/v1/settings"): {"values": {"warning_days": 3}},
    ("PUT", "/api/v1/me/notification-preferences"): {"email": False},
}
# fmt: off
#         method  rule                                               anon admin clerk hndlr leadr super rpV01 hdV01
MATRIX: list[R] = [
    # -- public ----------------------------------------------------------------------------
    row("GET",   "/healthz",                                            200, 200, 200, 200, 200, 200, 200, 200),
    row("GET",   "/static/<path:filename>",                             200, 200, 200, 200, 200, 200, 200, 200),
    row("GET",   "/api/docs",                                           200, 200, 200, 200, 200, 200, 200, 200),
    row("GET",   "/api/v1/openapi.json",                                200, 200, 200, 200, 200, 200, 200, 200),
    row("POST",  "/api/v1/auth/token",                                  422, 422, 422, 422, 422, 422, 422, 422, body={}),
    row("GET",   "/login",                                              200, 302, 302, 302, 302, 302, 302, 302),
    row("GET",   "/lang/<code>",                                        302, 302, 302, 302, 302, 302, 302, 302),
    # -- API (objects on S01; V01 users are outside their scope) ---------------------------
    row("GET",  "/api/v1/admin/outbox",                                401, 200, 403, 403, 403, 403, 403, 403),
    row("POST", "/api/v1/admin/outbox/<int:message_id>/resend",        401, 404, 403, 403, 403, 403, 403, 403),
    row("POST", "/api/v1/calendar",                                    401, 422, 422, 422, 422, 422, 422, 422),
    row("GET",  "/api/v1/case-types",                                  401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/cases",                                       401, 200, 200, 200, 200, 200, 200, 200),
    row("POST", "/api/v1/cases",                                       401, 201, 201, 201, 201, 201, 403, 403),
    row("GET",  "/api/v1/cases/<int:case_id>",                         401, 200, 200, 200, 200, 200, 404, 404),
    row("GET",  "/api/v1/deadlines",                                   401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/exports/key-person-ledger.xlsx",              401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/exports/screening-ledger.xlsx",               401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/key-persons",                                 401, 200, 200, 200, 200, 200, 200, 200),
    row("POST", "/api/v1/key-persons",                                 401, 403, 201, 403, 201, 201, 403, 403),
    row("GET",  "/api/v1/key-persons/<int:key_person_id>",             401, 404, 200, 404, 200, 200, 404, 404),
    row("POST", "/api/v1/key-persons/<int:key_person_id>/reopen",      401, 422, 422, 422, 422, 422, 422, 422),
    row("GET",  "/api/v1/key-persons/candidates",                      401, 403, 200, 403, 200, 200, 403, 403),
    row("GET",  "/api/v1/me",                                          401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/me/notification-preferences",                 401, 200, 200, 200, 200, 200, 200, 200),
    row("PUT",  "/api/v1/me/notification-preferences",                 401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/me/notifications",                            401, 200, 200, 200, 200, 200, 200, 200),
    row("POST", "/api/v1/me/notifications/<int:message_id>/read",      401, 404, 404, 200, 404, 404, 404, 404),
    row("POST", "/api/v1/me/notifications/read-all",                   401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/me/notifications/unread-count",               401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/petitions",                                   401, 200, 200, 200, 200, 200, 200, 200),
    row("POST", "/api/v1/petitions",                                   401, 403, 201, 403, 403, 403, 403, 403),
    row("GET",  "/api/v1/petitions/<int:petition_id>",                 401, 200, 200, 200, 200, 200, 404, 404),
    row("POST", "/api/v1/petitions/<int:petition_id>/review-requests", 401, 403, 409, 403, 409, 403, 404, 404),
    row("GET",  "/api/v1/petitions/repeat-check",                      401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/process-definitions",                         401, 200, 403, 403, 403, 403, 403, 403),
    row("POST", "/api/v1/process-definitions",                         401, 422, 403, 403, 403, 403, 403, 403),
    row("GET",  "/api/v1/process-definitions/<int:definition_id>",     401, 200, 403, 403, 403, 403, 403, 403),
    row("POST", "/api/v1/process-definitions/<int:definition_id>/migrations", 401, 200, 403, 403, 403, 403, 403, 403),
    row("GET",  "/api/v1/receptions",                                  401, 200, 200, 200, 200, 200, 200, 200),
    row("POST", "/api/v1/receptions",                                  401, 403, 201, 403, 201, 403, 403, 403),
    row("GET",  "/api/v1/reports/kpi",                                 401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/reports/annual",                              401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/reports/annual.xlsx",                         401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/exports/petition-ledger.xlsx",                401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/imports/petitions/template.xlsx",             401, 200, 200, 200, 200, 200, 200, 200),
    row("POST", "/api/v1/imports/petitions",                           401, 422, 403, 403, 403, 403, 403, 403),
    row("POST", "/api/v1/imports/petitions/report.xlsx",               401, 422, 403, 403, 403, 403, 403, 403),
    row("GET",  "/reports/annual",                                     302, 200, 403, 403, 200, 200, 403, 403),
    row("GET",  "/admin/imports/petitions",                            302, 200, 403, 403, 403, 403, 403, 403),
    row("POST", "/admin/imports/petitions",                            302, 422, 403, 403, 403, 403, 403, 403),
    row("GET",  "/api/v1/screening/hazards",                           401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/screening/hazards/<int:hazard_id>",           401, 200, 200, 200, 200, 200, 404, 404),
    row("POST", "/api/v1/screening/hazards/<int:hazard_id>/escalate",  401, 422, 422, 422, 422, 422, 422, 422),
    row("POST", "/api/v1/screening/hazards/<int:hazard_id>/notes",     401, 403, 403, 201, 201, 403, 404, 404),
    row("GET",  "/api/v1/screening/rounds",                            401, 200, 200, 200, 200, 200, 200, 200),
    row("POST", "/api/v1/screening/rounds/<int:round_id>/hazards",     401, 403, 403, 201, 201, 403, 404, 404),
    row("GET",  "/api/v1/settings",                                    401, 200, 403, 403, 403, 403, 403, 403),
    row("PATCH", "/api/v1/settings",                                   401, 200, 403, 403, 403, 403, 403, 403),
    row("GET",  "/api/v1/tasks",                                       401, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/api/v1/tasks/<int:task_id>",                         401, 200, 200, 200, 200, 200, 404, 404),
    row("POST", "/api/v1/tasks/<int:task_id>/claim",                   401, 403, 403, 200, 403, 403, 404, 404),
    row("POST", "/api/v1/tasks/<int:task_id>/complete",                401, 403, 403, 200, 403, 403, 404, 404),
    row("POST", "/api/v1/tasks/<int:task_id>/release",                 401, 200, 403, 403, 403, 403, 404, 404),
    row("GET",  "/api/v1/units",                                       401, 200, 200, 200, 200, 200, 200, 200),
    row("POST", "/api/v1/units",                                       401, 201, 403, 403, 403, 403, 403, 403),
    row("PATCH", "/api/v1/units/<int:unit_id>",                        401, 200, 403, 403, 403, 403, 403, 403),
    row("GET",  "/api/v1/users",                                       401, 200, 403, 403, 403, 403, 403, 403),
    row("POST", "/api/v1/users",                                       401, 201, 403, 403, 403, 403, 403, 403),
    row("PATCH", "/api/v1/users/<int:user_id>",                        401, 200, 403, 403, 403, 403, 403, 403),
    # -- pages (session login; anonymous users are sent to /login) -------------------------
    row("GET",  "/",                                                   302, 302, 302, 302, 302, 302, 302, 302),
    row("GET",  "/admin/calendar",                                     302, 200, 403, 403, 403, 403, 403, 403),
    row("POST", "/admin/calendar",                                     302, 422, 403, 403, 403, 403, 403, 403),
    row("GET",  "/admin/processes",                                    302, 200, 403, 403, 403, 403, 403, 403),
    row("POST", "/admin/processes",                                    302, 422, 403, 403, 403, 403, 403, 403),
    row("GET",  "/admin/settings",                                     302, 200, 403, 403, 403, 403, 403, 403),
    row("POST", "/admin/settings",                                     302, 422, 403, 403, 403, 403, 403, 403),
    row("GET",  "/admin/units",                                        302, 200, 403, 403, 403, 403, 403, 403),
    row("POST", "/admin/units",                                        302, 422, 403, 403, 403, 403, 403, 403),
    row("GET",  "/admin/users",                                        302, 200, 403, 403, 403, 403, 403, 403),
    row("POST", "/admin/users",                                        302, 422, 403, 403, 403, 403, 403, 403),
    row("GET",  "/admin/users/<int:user_id>",                          302, 200, 403, 403, 403, 403, 403, 403),
    row("POST", "/admin/users/<int:user_id>",                          302, 302, 403, 403, 403, 403, 403, 403),
    row("GET",  "/cases/<int:case_id>",                                302, 200, 200, 200, 200, 200, 404, 404),
    row("GET",  "/cases/<int:case_id>/diagram.json",                   302, 200, 200, 200, 200, 200, 404, 404),
    row("GET",  "/deadlines",                                          302, 200, 403, 403, 200, 200, 403, 403),
    row("GET",  "/key-persons",                                        302, 200, 200, 200, 200, 200, 403, 200),
    row("GET",  "/kpi",                                                302, 200, 403, 403, 200, 200, 403, 403),
    row("POST", "/login",                                              401, 401, 401, 401, 401, 401, 401, 401),
    row("POST", "/logout",                                             302, 302, 302, 302, 302, 302, 302, 302),
    row("GET",  "/notifications",                                      302, 200, 200, 200, 200, 200, 200, 200),
    row("POST", "/notifications/<int:message_id>/read",                302, 404, 404, 302, 404, 404, 404, 404),
    row("POST", "/notifications/read-all",                             302, 302, 302, 302, 302, 302, 302, 302),
    row("GET",  "/petitions",                                          302, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/petitions/new",                                      302, 200, 200, 403, 403, 403, 403, 403),
    row("POST", "/petitions/new",                                      302, 422, 422, 403, 403, 403, 403, 403),
    row("GET",  "/screening",                                          302, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/screening/ledger",                                   302, 200, 200, 200, 200, 200, 200, 200),
    row("POST", "/screening/rounds/<int:round_id>/hazards",            302, 302, 302, 302, 302, 302, 404, 404),
    row("GET",  "/tasks",                                              302, 200, 200, 200, 200, 200, 200, 200),
    row("GET",  "/tasks/<int:task_id>",                                302, 200, 200, 200, 200, 200, 404, 404),
    row("POST", "/tasks/<int:task_id>",                                302, 200, 200, 422, 200, 200, 404, 404),
    row("POST", "/tasks/<int:task_id>/claim",                          302, 302, 302, 302, 302, 302, 404, 404),
    row("POST", "/tasks/<int:task_id>/release",                        302, 302, 302, 302, 302, 302, 404, 404),
]
# fmt: on


def _key(method: str, rule: str) -> tuple[str, str]:
    return method, rule


def app_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, rule) the app answers (HEAD/OPTIONS are Flask's own)."""
    return {(m, r.rule) for r in app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"}}


@pytest.fixture
def world(app: Any, services: Services) -> World:
    """Logged-in clients for every user."""
    w = World(app, services)
    w.login()
    return w


def test_every_route_is_in_the_matrix(app: Any, world: World) -> None:
    table = {_key(r.method, r.rule) for r in MATRIX}
    missing = sorted(app_routes(app) - table)
    stale = sorted(table - app_routes(app))
    suggestions = []
    for method, rule in missing:
        try:
            observed = [world.request(method, rule, u, BODIES.get((method, rule))) for u in USERS]
        except KeyError as exc:
            suggestions.append(f"{method} {rule}: add a factory for {exc} in matrix_world.py")
            continue
        suggestions.append(f'row("{method}", "{rule}", {", ".join(map(str, observed))}),')
    assert not missing, "routes missing from the matrix; today they answer:\n" + "\n".join(
        suggestions
    )
    assert not stale, f"rows for routes that no longer exist: {stale}"
    assert len({_key(r.method, r.rule) for r in MATRIX}) == len(MATRIX), "duplicate rows"


def test_every_route_answers_each_role_as_the_matrix_says(world: World) -> None:
    wrong = []
    for r in MATRIX:
        body = r.body if r.body is not None else BODIES.get((r.method, r.rule))
        got = tuple(world.request(r.method, r.rule, u, body) for u in USERS)
        if got != r.expect:
            wrong.append(f"{r.method} {r.rule}\n  expected {r.expect}\n  got      {got}")
    assert not wrong, "columns: " + " ".join(USERS) + "\n" + "\n".join(wrong)


def test_lists_never_contain_a_row_the_caller_cannot_open(app: Any, world: World) -> None:
    # Objects all over the tree: the street, the caller's own village and the next village.
    for code in ("S01", "V01", "V02"):
        new_case(world.services, code)
    for name in ("petition_id", "hazard_id", "key_person_id"):
        world.factories[name]()
    rules = {r.rule for r in app.url_map.iter_rules() if "GET" in r.methods}
    details = {
        rule.rsplit("/", 1)[0]: rule
        for rule in rules
        if rule.startswith("/api/") and re.search(r"/<int:\w+>$", rule)
    }
    checked: dict[str, int] = {}
    for rule in sorted(r for r in rules if r in details):
        for user in USERS[1:]:
            client = app.test_client()
            resp = client.get(
                rule, query_string=BODIES.get(("GET", rule)), headers=world.token(user)
            )
            assert resp.status_code in {200, 403}, (rule, user, resp.status_code)
            if resp.status_code != 200:
                continue
            for item in resp.get_json()["items"]:
                path = re.sub(r"<int:\w+>", str(item["id"]), details[rule])
                opened = client.get(path, headers=world.token(user))
                assert opened.status_code == 200, (
                    f"{user} lists {path} but gets {opened.status_code}"
                )
                checked[rule] = checked.get(rule, 0) + 1
    # The village handler sees only V01's cases; the street's and V02's are not listed.
    v01 = unit_id(world.services, "V01")
    listed = app.test_client().get("/api/v1/cases", headers=world.token("handler_v01")).get_json()
    assert listed["items"] and {c["unit_id"] for c in listed["items"]} == {v01}
    assert checked.get("/api/v1/cases") and checked.get("/api/v1/tasks")


def test_every_api_route_refuses_anonymous_callers_before_reading_the_body(app: Any) -> None:
    client = app.test_client()
    public = {"/api/v1/auth/token", "/api/v1/openapi.json", "/api/docs"}
    for method, rule in sorted(app_routes(app)):
        if not rule.startswith("/api/") or rule in public:
            continue
        path = re.sub(r"<[^>]+>", "1", rule)
        resp = client.open(path, method=method, data=b"{not json", content_type="application/json")
        assert resp.status_code == 401, (method, rule, resp.status_code)
        assert resp.get_json()["message"] == "authentication required"
