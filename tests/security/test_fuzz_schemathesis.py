"""schemathesis fuzzes every operation of /api/v1/openapi.json through the WSGI app (issue 9).

Each generated request is sent twice: as an administrator and as a village reporter. No answer
may be a 5xx, and every answer must match the status codes, content type and body schema the
OpenAPI document declares. The example count per operation is bounded (FENGQIAO_FUZZ_EXAMPLES,
default 15) so the run stays within CI's budget; raise it locally to dig deeper.

The fuzzer may change the fuzzing users themselves (password, roles, active flag): before every
call their account is put back and a fresh token minted, so every example runs authenticated.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import delete, select

from engine.bootstrap import Services, build_services
from engine.clock import SettableClock
from engine.config import Settings
from engine.persistence.models import RoleAssignment, Unit, User
from engine.services.users import hash_password, issue_token
from tests.conftest import START

EXAMPLES = int(os.environ.get("FENGQIAO_FUZZ_EXAMPLES", "15"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# (fuzzing user, role, unit code or None for system-wide)
FUZZERS = (("fuzz_admin", "admin", None), ("fuzz_reporter", "reporter", "V01"))


@pytest.fixture(scope="module")
def fuzz_services(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    """Services over a private copy of the seeded SQLite database, shared by all examples."""
    folder = tmp_path_factory.mktemp("fuzz")
    shutil.copy(sqlite_template, folder / "fuzz.db")
    cfg = Settings.from_env(
        {},
        instance_dir=str(folder),
        database_url=f"sqlite:///{folder / 'fuzz.db'}",
        secret_key="fuzz-secret",
    )
    svc = build_services(cfg, SettableClock(START), deploy=False)
    yield svc
    svc.engine.dispose()


@pytest.fixture(scope="module")
def fuzz_app(fuzz_services: Services) -> Any:
    """The WSGI app the fuzzer talks to."""
    from web.app import create_app

    app = create_app(services=fuzz_services)
    app.config.update(TESTING=False)
    return app


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Any) -> Any:
    """The OpenAPI document, loaded from the app itself."""
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)


def restore_fuzzer(services: Services, username: str, role: str, unit_code: str | None) -> str:
    """(Re)create the fuzzing user as it should be and return a fresh bearer token."""
    with services.uow() as uow:
        s = uow.session
        user = s.scalars(select(User).where(User.username == username)).first()
        if user is None:
            user = User(
                username=username,
                password_hash=hash_password("fuzz-pass-1"),
                display_name=username,
                language="zh-CN",
                active=True,
                token_generation=0,
                failed_logins=0,
                created_at=START,
            )
            s.add(user)
            s.flush()
        user.active = True
        user.locked_until = None
        unit_id = s.scalar(select(Unit.id).where(Unit.code == unit_code)) if unit_code else None
        wanted = (role, unit_id)
        if [(r.role, r.unit_id) for r in user.roles] != [wanted]:
            s.execute(delete(RoleAssignment).where(RoleAssignment.user_id == user.id))
            s.add(RoleAssignment(user_id=user.id, role=role, unit_id=unit_id))
        s.flush()
        token, _ = issue_token(services, user)
        uow.commit()
    return token


def fuzz_operation(op: Any, services: Services, examples: Counter[str]) -> None:
    """Run the bounded hypothesis search on one operation, as each fuzzing user."""
    label = f"{op.method.upper()} {op.path}"

    @given(case=op.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    def fuzz(case: Any) -> None:
        examples[label] += 1
        for username, role, unit in FUZZERS:
            token = restore_fuzzer(services, username, role, unit)
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
            examples["calls"] += 1

    fuzz()


def test_every_operation_never_fails_and_answers_as_documented(
    api_schema: Any, fuzz_services: Services
) -> None:
    # schemathesis' lazy pytest integration does not run on pytest 9, so each operation gets
    # its own hypothesis run here; failures of all operations are collected into one report.
    examples: Counter[str] = Counter()
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for op in operations:
        try:
            fuzz_operation(op, fuzz_services, examples)
        except Exception as exc:  # one report for every failing operation
            failures[f"{op.method.upper()} {op.path}"] = f"{type(exc).__name__}: {exc}"[:3000]
    calls = examples.pop("calls", 0)
    print(
        f"\nfuzz: {len(examples)} of {len(operations)} operations, "
        f"{sum(examples.values())} examples, {calls} calls (admin + village reporter)"
    )
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
    assert set(examples) == {f"{op.method.upper()} {op.path}" for op in operations}
