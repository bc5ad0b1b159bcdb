"""The authorization matrix: every route, every role, inside and outside scope (issue 9).

One table lists each route (method + rule) with the status each user gets. Objects named in
the path are made fresh for each request on the street S01, so the columns read:

  anon          no credentials: 401 on the API, a redirect to the login page (302) on pages
  admin         system-wide
  clerk         intake@S01        (inside scope)
  handler       handler@S01       (inside scope)
  leader        leader@S01        (inside scope)
  supervisor    supervisor@S01    (inside scope)
  reporter_v01  reporter@V01      (OUTSIDE the scope of S01 objects: reads are 404)
  handler_v01   handler@V01       (OUTSIDE the scope of S01 objects: reads are 404)

Forbidden actions are 403, out-of-scope reads 404 (never reveal that a thing exists). A route
missing from the table fails `test_every_route_is_in_the_matrix`, which prints the row the
route answers today: check each status against the rules above before pasting it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from engine.bootstrap import Services
from tests.security.matrix_world import USERS, World, unit_id

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
CALENDAR = {"year": 2031, "holidays": [], "workdays": []}
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
            observed = [world.request(method, rule, u, {}) for u in USERS]
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
        got = tuple(world.request(r.method, r.rule, u, r.body) for u in USERS)
        if got != r.expect:
            wrong.append(f"{r.method} {r.rule}\n  expected {r.expect}\n  got      {got}")
    assert not wrong, "columns: " + " ".join(USERS) + "\n" + "\n".join(wrong)
