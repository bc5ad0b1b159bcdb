"""The `fengqiao` command line (DESIGN.md §7b): operators and scripts rely on it staying stable."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from engine.bootstrap import Services, build_services
from engine.clock import SettableClock
from engine.config import Settings
from engine.services.access import SYSTEM, Grant


def _services(deploy: bool = True, now: datetime | None = None) -> Services:
    settings = Settings.from_env()
    return build_services(settings, SettableClock(now) if now else None, deploy=deploy)


ADMIN = SYSTEM.__class__(
    user_id=0,
    username="cli",
    display_name="命令行",
    language="zh-CN",
    grants=(Grant("admin", None, None),),
)


@click.group()
def main() -> None:
    """Fengqiao: petitions (信访) and disputes (矛盾纠纷) workflow engine."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every migration to the configured database."""
    from engine.persistence.migrate import upgrade

    services = _services(deploy=False)
    upgrade(services.engine)
    click.echo(f"database upgraded: {services.engine.url.render_as_string(hide_password=True)}")


@db.command("compact-states")
def db_compact_states() -> None:
    """Leave the process spec out of workflow states still stored in full (older releases).

    Safe while the application runs; an interrupted run can be repeated."""
    from engine.services.cases import compact_states

    services = _services(deploy=False)
    counts = compact_states(services)
    before, after = counts["bytes_before"], counts["bytes_after"]
    click.echo(
        f"compacted {counts['compacted']} of {counts['cases']} workflow states: "
        f"{before / 1e6:.1f} MB -> {after / 1e6:.1f} MB"
    )


@main.command()
@click.option("--no-cases", is_flag=True, help="Seed the organisation and users only.")
@click.option("--if-empty", is_flag=True, help="Do nothing if the organisation is already loaded.")
def demo(no_cases: bool, if_empty: bool) -> None:
    """Seed 示范街道 with 24 villages/communities, departments, demo users (and living cases)."""
    from engine.services import demo as demo_service
    from engine.services.orgs import count_units

    services = _services()
    with services.uow() as uow:
        if if_empty and count_units(uow) > 0:
            click.echo("demo data already present; nothing to do")
            return
    summary = demo_service.seed(services, with_cases=not no_cases)
    click.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    click.echo(demo_service.LOGINS_HELP)


@main.group()
def org() -> None:
    """Organisation: units and their users."""


@org.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def org_load(file: str) -> None:
    """Load a unit tree (codes, names, kinds, parents) and its users with their roles."""
    from engine.services.orgs import load_org, read_org_file

    services = _services()
    with services.uow() as uow:
        counts = load_org(uow, ADMIN, read_org_file(file), services.clock.now())
        uow.commit()
    click.echo(json.dumps(counts, ensure_ascii=False))


@main.group()
def user() -> None:
    """Users."""


@user.command("create")
@click.argument("username")
@click.option("--password", required=True, prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--display-name", default=None)
@click.option("--language", default="zh-CN", type=click.Choice(["zh-CN", "en"]))
@click.option("--role", "roles", multiple=True, help="ROLE or ROLE@UNIT_CODE; repeatable.")
def user_create(
    username: str, password: str, display_name: str | None, language: str, roles: tuple[str, ...]
) -> None:
    """Create a user; admin may be granted without a unit (system-wide)."""
    from engine.errors import FengqiaoError
    from engine.services.orgs import parse_role_spec
    from engine.services.users import create_user

    services = _services()
    try:
        with services.uow() as uow:
            grants = [parse_role_spec(uow, spec) for spec in roles]
            created = create_user(
                uow,
                ADMIN,
                username=username,
                password=password,
                display_name=display_name or username,
                language=language,
                roles=grants,
                now=services.clock.now(),
            )
            uow.commit()
            click.echo(f"created user {created.username} (id {created.id})")
    except FengqiaoError as exc:
        raise click.ClickException(
            f"{exc.message} {getattr(exc, 'errors', '') or ''}".strip()
        ) from exc


@main.group()
def calendar() -> None:
    """The working-day calendar (State Council holiday schedules)."""


@calendar.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def calendar_import(file: str) -> None:
    """Load a year's holiday schedule from a JSON file (year, holidays, workdays)."""
    from pathlib import Path

    from engine.errors import FengqiaoError
    from engine.services.calendar import import_schedule

    services = _services(deploy=False)
    try:
        with services.uow() as uow:
            result = import_schedule(
                uow,
                ADMIN,
                Path(file).read_text(encoding="utf-8"),
                source=Path(file).name,
                now=services.clock.now(),
            )
            uow.commit()
    except FengqiaoError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(
        f"loaded {result['year']}: {result['holidays']} holidays, "
        f"{result['workdays']} adjusted working days"
    )


@main.group()
def definitions() -> None:
    """Process definitions."""


@definitions.command("list")
def definitions_list() -> None:
    """Deployed process versions with running-instance counts."""
    from engine.services.definitions import list_definitions

    services = _services()
    with services.uow() as uow:
        for d in list_definitions(uow):
            click.echo(
                f"{d['process_id']:<24} v{d['version']:<3} {str(d['sha256'])[:12]}  "
                f"running={d['running_instances']:<5} {d['filename']}"
            )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--no-scheduler", is_flag=True, help="Run the scheduler elsewhere (fengqiao scheduler)."
)
def serve(host: str, port: int, no_scheduler: bool) -> None:
    """Serve the web app (and the embedded scheduler)."""
    from werkzeug.serving import run_simple

    from web.app import create_app

    app = create_app(start_scheduler=not no_scheduler)
    click.echo(f"Fengqiao on http://{host}:{port}/  (API docs: http://{host}:{port}/api/docs)")
    run_simple(host, port, app, threaded=True, use_reloader=False)


@main.command()
def scheduler() -> None:
    """Run the scheduler alone (multi-process deployments)."""
    from engine.scheduler import run_blocking

    click.echo("scheduler running; Ctrl-C to stop")
    run_blocking(_services())


@main.command()
@click.option("--now", "now_text", default=None, help="ISO-8601 time to run as (default: now).")
def tick(now_text: str | None) -> None:
    """Run every scheduler job once, as of a time."""
    from engine.services.jobs import run_all

    now = _parse_now(now_text)
    services = _services(now=now)
    results = run_all(services, now or services.clock.now())
    click.echo(json.dumps(results, ensure_ascii=False))
    if any(v < 0 for v in results.values()):
        sys.exit(1)


def _parse_now(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO-8601 time: {text}") from exc
    if value.tzinfo is None:
        from engine.clock import LOCAL_TZ

        value = value.replace(tzinfo=LOCAL_TZ)
    return value.astimezone(UTC)


@main.group()
def audit() -> None:
    """Audit trail."""


@audit.command("verify")
def audit_verify() -> None:
    """Recompute every hash chain; report the first broken link of each."""
    from engine.services.audit import verify_chains

    services = _services(deploy=False)
    with services.uow() as uow:
        broken = verify_chains(uow)
    if not broken:
        click.echo("audit trail verified: every chain intact")
        return
    for b in broken:
        click.echo(f"BROKEN {b.stream} at seq {b.seq}: {b.reason}")
    sys.exit(1)


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
def backup(file: str) -> None:
    """Copy the whole database to FILE (SQLite online backup; pg_dump custom format)."""
    from engine.persistence.backup import BackupError, backup_database

    services = _services(deploy=False)
    try:
        path = backup_database(services.engine, file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"backup written: {path} ({path.stat().st_size} bytes)")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def restore(file: str, yes: bool) -> None:
    """Replace the whole database with a backup FILE (stop the server and scheduler first)."""
    from engine.persistence.backup import BackupError, restore_database

    services = _services(deploy=False)
    where = services.engine.url.render_as_string(hide_password=True)
    if not yes:
        click.confirm(f"Replace every table of {where} with {file}?", abort=True)
    try:
        restore_database(services.engine, file)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"database restored from {file}: {where}")


@main.group()
def pii() -> None:
    """Petitioners' encrypted personal data."""


@pii.command("rotate")
@click.option("--dry-run", is_flag=True, help="Count what would be re-encrypted; change nothing.")
def pii_rotate(dry_run: bool) -> None:
    """Re-encrypt every ID and phone number under the key now in FENGQIAO_PII_KEY.

    The key being retired is read from FENGQIAO_PII_OLD_KEY (unset or empty: the key that was
    derived from FENGQIAO_SECRET_KEY). Stop the web workers and schedulers and take a backup
    first. Values already under the new key are skipped, so an interrupted run can be repeated.
    """
    import os

    from engine.services import petition_import
    from engine.services import pii as pii_service

    services = _services(deploy=False)
    try:
        old = pii_service.old_cipher(os.environ.get("FENGQIAO_PII_OLD_KEY", ""), services.settings)
        counts = pii_service.rotate_key(services, old, dry_run=dry_run)
        keys = petition_import.rekey_imports(services, old, dry_run=dry_run)
    except pii_service.PiiKeyError as exc:
        raise click.ClickException(str(exc)) from exc
    new_id = pii_service.cipher_for(services.settings).key_id
    verb = "would re-encrypt" if dry_run else "re-encrypted"
    click.echo(
        f"key {old.key_id} -> {new_id}: {verb} {counts['rotated']} values in {counts['rows']} "
        f"rows ({counts['already_new']} already under the new key); "
        f"import keys {'to rewrite' if dry_run else 'rewritten'}: {keys['rekeyed']}"
    )


from web.cli_reports import import_group, report  # noqa: E402  (issue 8: year-end figures, imports)

main.add_command(report)
main.add_command(import_group)
