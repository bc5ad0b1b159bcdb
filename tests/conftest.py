"""Shared fixtures: a migrated database per test (SQLite file, and PostgreSQL when configured),
services with a settable clock, the Flask app and client, and tokens for the demo users."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, inspect, text

import engine.services.users as users_module
from engine.bootstrap import Services, build_services
from engine.clock import SettableClock
from engine.config import PROJECT_ROOT, Settings
from engine.persistence.migrate import upgrade
from engine.persistence.models import Base

# Full-strength argon2 costs ~50 ms a hash; tests hash hundreds of demo passwords.
users_module._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

FIXTURES = Path(__file__).parent / "fixtures"
TEST_BPMN = FIXTURES / "bpmn"
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 2026-03-02 09:00 in Shanghai
PG_URL = os.environ.get("FENGQIAO_TEST_DATABASE_URL", "")


def backends() -> list[Any]:
    """SQLite always; PostgreSQL when FENGQIAO_TEST_DATABASE_URL is set (always in CI)."""
    if os.environ.get("CI") and not PG_URL:
        raise RuntimeError("CI must set FENGQIAO_TEST_DATABASE_URL (see .ci/run)")
    params: list[Any] = ["sqlite"]
    params.append(
        pytest.param("postgresql", marks=pytest.mark.postgres)
        if PG_URL
        else pytest.param(
            "postgresql",
            marks=[pytest.mark.postgres, pytest.mark.skip(reason="no PostgreSQL configured")],
        )
    )
    return params


def _seed(services: Services) -> None:
    from engine.services import demo

    demo.seed(services, with_cases=False)
    for file in sorted(TEST_BPMN.glob("*.bpmn")):
        if file.name.startswith(("simple_", "valid_")):
            with services.uow() as uow:
                services.definitions.deploy(uow, file.read_bytes(), filename=file.name, at=START)
                uow.commit()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated and seeded SQLite file, copied for each test."""
    folder = tmp_path_factory.mktemp("template")
    settings = Settings.from_env(
        {}, instance_dir=str(folder), database_url=f"sqlite:///{folder / 'template.db'}"
    )
    services = build_services(settings, SettableClock(START), deploy=False)
    upgrade(services.engine)
    services.definitions.deploy_folder(services, settings.workflows_dir)
    _seed(services)
    services.engine.dispose()
    return folder / "template.db"


class PgSnapshot:
    """Seeded rows of every table, restored before each PostgreSQL test."""

    def __init__(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        self.rows = rows


@pytest.fixture(scope="session")
def pg_snapshot(tmp_path_factory: pytest.TempPathFactory) -> PgSnapshot:
    """Migrate the CI database once, seed it, and remember the seeded rows."""
    folder = tmp_path_factory.mktemp("pg")
    eng = create_engine(PG_URL)
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    eng.dispose()
    settings = Settings.from_env({}, instance_dir=str(folder), database_url=PG_URL)
    services = build_services(settings, SettableClock(START), deploy=False)
    upgrade(services.engine)
    services.definitions.deploy_folder(services, settings.workflows_dir)
    _seed(services)
    rows: dict[str, list[dict[str, Any]]] = {}
    with services.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows[table.name] = [dict(r._mapping) for r in conn.execute(table.select())]
    services.engine.dispose()
    return PgSnapshot(rows)


def _restore_pg(services: Services, snap: PgSnapshot) -> None:
    tables = Base.metadata.sorted_tables
    with services.engine.begin() as conn:
        names = ", ".join(t.name for t in tables)
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        for table in tables:
            if snap.rows[table.name]:
                conn.execute(table.insert(), snap.rows[table.name])
        insp = inspect(conn)
        for table in tables:
            if "id" in table.c and any(c["name"] == "id" for c in insp.get_columns(table.name)):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
                    )
                )


@pytest.fixture(params=backends())
def backend(request: pytest.FixtureRequest) -> str:
    """Which database this test runs on."""
    return str(request.param)


@pytest.fixture
def clock() -> SettableClock:
    """The injected clock, standing at START."""
    return SettableClock(START)


@pytest.fixture
def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Settings:
    """Settings pointing at this test's own database."""
    if backend == "postgresql":
        url = PG_URL
    else:
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp_path / "test.db")
        url = f"sqlite:///{tmp_path / 'test.db'}"
    return Settings.from_env(
        {}, instance_dir=str(tmp_path), database_url=url, secret_key="test-secret"
    )


@pytest.fixture
def services(
    settings: Settings, clock: SettableClock, backend: str, request: pytest.FixtureRequest
) -> Iterator[Services]:
    """Services on a freshly seeded database, with the settable clock."""
    svc = build_services(settings, clock, deploy=False)
    if backend == "postgresql":
        _restore_pg(svc, request.getfixturevalue("pg_snapshot"))
    yield svc
    svc.engine.dispose()


@pytest.fixture
def app(services: Services) -> Any:
    """The Flask app on the test services."""
    from web.app import create_app

    application = create_app(services=services)
    application.config.update(TESTING=True)
    return application


@pytest.fixture
def client(app: Any) -> Any:
    """A test client."""
    return app.test_client()


def token_for(client: Any, username: str, password: str = "demo1234") -> dict[str, str]:
    """An Authorization header for a demo user."""
    resp = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.get_json()
    return {"Authorization": f"Bearer {resp.get_json()['access_token']}"}


@pytest.fixture
def auth(client: Any) -> Any:
    """auth('handler') -> headers for that demo user (cached per test)."""
    cache: dict[str, dict[str, str]] = {}

    def get(username: str) -> dict[str, str]:
        if username not in cache:
            cache[username] = token_for(client, username)
        return cache[username]

    return get


__all__ = ["PROJECT_ROOT", "START", "TEST_BPMN", "token_for"]
