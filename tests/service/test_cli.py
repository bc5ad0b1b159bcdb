"""The `fengqiao` command line on a fresh SQLite file: the README's first steps work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from web.cli import main

ORG = """
units:
  - code: QX
    name: 青溪区
    kind: district
    children:
      - code: QX-01
        name: 青溪街道
        kind: street
        children:
          - {code: QX-01-001, name: 一村, kind: village}
          - {code: QX-01-XFB, name: 信访办, kind: department}
users:
  - {username: qx_clerk, password: start1234, display_name: 青溪登记员, roles: [intake@QX-01]}
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FENGQIAO_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("FENGQIAO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> Any:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run("db", "upgrade")
    return run


def test_org_load_user_create_and_definitions_list(cli: Any, tmp_path: Path) -> None:
    org = tmp_path / "org.yaml"
    org.write_text(ORG, encoding="utf-8")
    out = cli("org", "load", str(org))
    assert '"units_created": 4' in out.output and '"users_created": 1' in out.output
    again = cli("org", "load", str(org))
    assert '"units_created": 0' in again.output and '"units_updated": 4' in again.output

    created = cli("user", "create", "qx_admin", "--password", "admin1234", "--role", "admin")
    assert "created user qx_admin" in created.output
    bad = cli("user", "create", "x", "--password", "admin1234", "--role", "handler@NOPE", ok=False)
    assert bad.exit_code != 0 and "unknown unit code 'NOPE'" in bad.output
    weak = cli("user", "create", "y", "--password", "weak", "--role", "admin", ok=False)
    assert weak.exit_code != 0 and "password" in weak.output

    listing = cli("definitions", "list")
    shipped = sorted(Path("workflows").glob("*.bpmn"))
    assert shipped, "the product ships its BPMN processes in workflows/"
    for file in shipped:
        assert file.stem in listing.output


def test_demo_seeds_the_street_once_and_tick_runs_every_job(cli: Any, tmp_path: Path) -> None:
    out = cli("demo", "--no-cases")
    assert '"units_created": 33' in out.output
    assert "demo1234" in out.output
    assert "already present" in cli("demo", "--if-empty").output
    tick = cli("tick", "--now", "2026-03-02T09:00:00+08:00")
    assert '"fire_due_timers": 0' in tick.output
    assert cli("tick", "--now", "not-a-time", ok=False).exit_code == 2


def test_audit_verify_reports_the_first_broken_link_after_tampering(
    cli: Any, tmp_path: Path
) -> None:
    cli("demo", "--no-cases")
    assert "every chain intact" in cli("audit", "verify").output
    engine = create_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE audit_events SET action = 'user.deleted' WHERE seq = 5 AND stream = 'system'"
            )
        )
    broken = cli("audit", "verify", ok=False)
    assert broken.exit_code == 1
    assert "BROKEN system at seq 5: entry edited" in broken.output
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 5 AND stream = 'system'"))
    deleted = cli("audit", "verify", ok=False)
    assert "BROKEN system at seq 5: entry deleted" in deleted.output
    engine.dispose()
