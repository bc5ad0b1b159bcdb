"""Whole-database backup and restore: SQLite's online backup API, pg_dump/pg_restore on PostgreSQL.

A SQLite backup is a consistent copy taken while the app keeps running (the backup API copies
pages under a read transaction). A PostgreSQL backup is pg_dump's custom format, restored with
pg_restore --clean in a single transaction. Restore replaces every table: stop the web server
and the scheduler first.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess  # nosec B404: fixed argv of the PostgreSQL client tools, no shell
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import URL

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(Exception):
    """The backup or restore could not be done (message says why)."""


def _sqlite_path(url: URL) -> str:
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return url.database


def _pg_args(url: URL) -> tuple[list[str], dict[str, str]]:
    # The password goes through the environment, never the command line (visible in ps).
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    args = ["--dbname", str(url.database or "postgres")]
    if url.host:
        args += ["--host", str(url.host)]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", str(url.username)]
    return args, env


def _run(argv: list[str], env: dict[str, str]) -> None:
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    except FileNotFoundError as exc:
        raise BackupError(f"{argv[0]} not found: install the PostgreSQL client tools") from exc
    if done.returncode != 0:
        raise BackupError(f"{argv[0]} failed: {done.stderr.strip()}")


def backup_database(engine: Engine, file: str | Path) -> Path:
    """Write a consistent copy of the whole database to `file`."""
    target = Path(file)
    target.parent.mkdir(parents=True, exist_ok=True)
    url = engine.url
    if url.get_backend_name() == "sqlite":
        source = sqlite3.connect(_sqlite_path(url))
        tmp = target.with_name(target.name + ".part")
        tmp.unlink(missing_ok=True)
        dest = sqlite3.connect(tmp)
        try:
            source.backup(dest)
        finally:
            dest.close()
            source.close()
        tmp.replace(target)
        return target
    if url.get_backend_name() == "postgresql":
        args, env = _pg_args(url)
        _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(target), *args], env)
        return target
    raise BackupError(f"unsupported database: {url.get_backend_name()}")


def restore_database(engine: Engine, file: str | Path) -> None:
    """Replace the whole database with the backup in `file` (made by backup_database)."""
    source_path = Path(file)
    if not source_path.is_file():
        raise BackupError(f"no such backup file: {source_path}")
    with source_path.open("rb") as fh:
        head = fh.read(16)
    url = engine.url
    engine.dispose()
    if url.get_backend_name() == "sqlite":
        if head != SQLITE_MAGIC:
            raise BackupError("not a SQLite backup (made on PostgreSQL?)")
        source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
        dest = sqlite3.connect(_sqlite_path(url))
        try:
            source.backup(dest)
        finally:
            dest.close()
            source.close()
        return
    if url.get_backend_name() == "postgresql":
        if not head.startswith(PG_DUMP_MAGIC):
            raise BackupError("not a pg_dump custom-format backup (made on SQLite?)")
        args, env = _pg_args(url)
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                "--exit-on-error",
                *args,
                str(source_path),
            ],
            env,
        )
        return
    raise BackupError(f"unsupported database: {url.get_backend_name()}")
