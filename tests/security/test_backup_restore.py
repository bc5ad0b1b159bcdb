"""`fengqiao backup FILE` / `fengqiao restore FILE`: a round trip gives back every row."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, inspect, select, text

from engine.bootstrap import Services
from engine.persistence.models import AuditEvent, Base, Unit
from engine.services.access import load_actor
from engine.services.cases import open_case
from web.cli import main


def table_contents(services: Services) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (sorted), as plain tuples."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with services.engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
        for table in Base.metadata.sorted_tables:
            if table.name not in names:
                continue
            rows = conn.execute(table.select()).all()
            out[table.name] = sorted((tuple(map(repr, r)) for r in rows), key=repr)
        out["alembic_version"] = [
            tuple(r) for r in conn.execute(text("SELECT version_num FROM alembic_version"))
        ]
    return out


@pytest.fixture
def cli(services: Services, monkeypatch: pytest.MonkeyPatch) -> Any:
    url = services.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("FENGQIAO_DATABASE_URL", url)
    monkeypatch.setenv("FENGQIAO_INSTANCE_DIR", services.settings.instance_dir)
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def _some_work(services: Services) -> None:
    """Three generic cases (simple_review is deployed by the test seed): rows in many tables."""
    with services.uow() as uow:
        clerk = load_actor(uow.session, _user_id(services, "clerk"))
        unit_id = uow.session.scalar(select(Unit.id).where(Unit.code == "S01"))
    for i in range(3):
        open_case(
            services,
            clerk,
            case_type="simple_review",
            unit_id=int(unit_id),
            data={},
            title=f"备份 {i}",
        )


def _user_id(services: Services, username: str) -> int:
    with services.engine.connect() as conn:
        return int(
            conn.execute(text("SELECT id FROM users WHERE username = :u"), {"u": username}).scalar()
        )


def test_backup_then_restore_gives_back_every_row(
    services: Services, cli: Any, tmp_path: Path
) -> None:
    _some_work(services)
    before = table_contents(services)
    assert before["cases"] and before["audit_events"] and before["users"]
    file = tmp_path / "backup" / "fengqiao.dump"
    out = cli("backup", str(file))
    assert "backup written" in out.output and file.stat().st_size > 0

    # Damage: new rows, deleted rows, a dropped audit entry.
    _some_work(services)
    with services.uow() as uow:
        uow.session.execute(delete(AuditEvent).where(AuditEvent.id == 1))
        uow.commit()
    assert table_contents(services) != before

    out = cli("restore", "--yes", str(file))
    assert "database restored" in out.output
    assert table_contents(services) == before
    assert "every chain intact" in cli("audit", "verify").output


def test_restore_refuses_a_file_of_the_other_kind(
    services: Services, cli: Any, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a backup at all")
    result = cli("restore", "--yes", str(junk), ok=False)
    assert result.exit_code != 0 and "not a" in result.output
