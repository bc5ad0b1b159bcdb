"""Database engine and the unit of work (one use case = one transaction)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", echo: bool = False) -> Engine:
    """Create the SQLAlchemy engine; SQLite gets WAL, foreign keys and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": 30, "check_same_thread": False},
        )
        sync = sqlite_synchronous.upper()
        if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"bad FENGQIAO_SQLITE_SYNCHRONOUS: {sqlite_synchronous}")

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Python's sqlite3 opens transactions lazily; take the write lock at BEGIN so two
            # writers never deadlock upgrading a read lock (SQLITE_BUSY mid-transaction).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sync}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A read-only unit of work (the per-request actor lookup) takes no write lock, so
            # it never queues behind another process's write transaction.
            read_only = conn.get_execution_options().get(READ_ONLY_OPTION)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        refuse_writes_when_read_only(engine)
        return engine
    # JIT off: these are short OLTP queries, and the planner's cost of the scope subqueries
    # crosses jit_above_cost, so JIT compiled for ~50 ms queries that run in ~1 ms.
    # LIFO: under load the same few connections are reused and stay fresh; the others idle
    # and are pinged when next taken (ping_idle_connections).
    engine = create_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=10,
        pool_use_lifo=True,
        connect_args={"options": "-c jit=off"},
    )
    ping_idle_connections(engine)
    refuse_writes_when_read_only(engine)
    return engine


_WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE")


def refuse_writes_when_read_only(engine: Engine) -> None:
    """A statement that writes, on a connection a read-only unit of work holds, is refused
    before it reaches the database (ReadOnlyUnitOfWorkError).

    Such a unit of work never commits, but on PostgreSQL it reads in autocommit, where a
    write would be permanent at once: the guard keeps "a read changes nothing" true on both
    databases (on SQLite it also spares a read the write lock it would queue for)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _refuse(
        conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if not conn.get_execution_options().get(READ_ONLY_OPTION):
            return
        writes = context is not None and (context.isinsert or context.isupdate or context.isdelete)
        if writes or statement.lstrip()[:8].upper().startswith(_WRITES):
            raise ReadOnlyUnitOfWorkError(
                "a read-only unit of work cannot write: use Services.uow(write=True)"
            )


# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0
_IDLE_SINCE = "fengqiao_idle_since"


def ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before use only if it sat idle for PING_AFTER_IDLE_S.

    SQLAlchemy's pool_pre_ping pings on every checkout: a round trip per unit of work (two
    per API request). A connection that was in use a moment ago is alive; one that idled may
    have been cut by a server restart or an idle timeout, and a failed ping makes the pool
    replace it (DisconnectionError), so the request never sees the dead connection."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # any failure to answer means the connection is gone
            raise DisconnectionError("idle connection failed its ping") from exc
        if not alive:
            raise DisconnectionError("idle connection failed its ping")


READ_ONLY_OPTION = "fengqiao_read_only"
T = TypeVar("T")

# Set while serving a request that only reads (GET, HEAD): its units of work take no write
# lock on SQLite, so a page or a list never waits behind another request's write or a
# scheduler tick, and never holds one up; on PostgreSQL they read in autocommit. See
# `reads_only` and `read_only_options`.
_READS_ONLY: ContextVar[bool] = ContextVar("fengqiao_reads_only", default=False)


@contextmanager
def reads_only() -> Iterator[None]:
    """Within this block `Services.uow()` gives read-only units of work (a safe request)."""
    token = _READS_ONLY.set(True)
    try:
        yield
    finally:
        _READS_ONLY.reset(token)


def in_read_only_context() -> bool:
    """Whether the code runs inside `reads_only()`."""
    return _READS_ONLY.get()


def read_only_options(dialect: str) -> dict[str, Any]:
    """Execution options of a connection that only reads (a read-only unit of work, the
    per-request token check).

    SQLite: in a plain (deferred) BEGIN, one consistent snapshot, no write lock.
    PostgreSQL: in autocommit. At READ COMMITTED each statement takes its own snapshot
    inside a transaction too, so a reader sees the same either way; without one psycopg
    sends no BEGIN and the pool no ROLLBACK, two round trips fewer per read. The pool puts
    the connection back in transactions when it is returned. On both, a writing statement
    is refused (`refuse_writes_when_read_only`)."""
    if dialect == "postgresql":
        return {READ_ONLY_OPTION: True, "isolation_level": "AUTOCOMMIT"}
    return {READ_ONLY_OPTION: True}


class ReadOnlyUnitOfWorkError(RuntimeError):
    """A read-only unit of work was asked to commit or to write (a bug: the caller writes
    in a read; `Services.uow(write=True)` is the way to write during a GET)."""


class UnitOfWork:
    """One transaction: rolled back unless `commit()` is called inside the `with` block."""

    def __init__(self, session_factory: Callable[[], Session], *, read_only: bool = False) -> None:
        self._factory = session_factory
        self._read_only = read_only
        self._session: Session | None = None
        self._after_commit: list[Callable[[], None]] = []

    @property
    def session(self) -> Session:
        """The open session; only valid inside `with`."""
        if self._session is None:
            raise RuntimeError("unit of work is not open")
        return self._session

    def __enter__(self) -> UnitOfWork:
        self._session = self._factory()
        if self._read_only:
            dialect = self._session.get_bind().dialect.name
            self._session.connection(execution_options=read_only_options(dialect))
        self._after_commit = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self.session
        try:
            session.rollback()
        finally:
            session.close()
            self._session = None

    @property
    def read_only(self) -> bool:
        """Whether this unit of work only reads (it never commits)."""
        return self._read_only

    def commit(self) -> None:
        """Commit the transaction, then run after-commit hooks (e.g. wake the dispatcher)."""
        if self._read_only:
            raise ReadOnlyUnitOfWorkError(
                "a read-only unit of work cannot commit: use Services.uow(write=True)"
            )
        self.session.commit()
        hooks, self._after_commit = self._after_commit, []
        for hook in hooks:
            hook()

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value kept under `key` for the current transaction (or savepoint), built by
        `build` on first use: a commit, a rollback or a new savepoint starts afresh."""
        transaction = self._current_transaction()
        kept = self.session.info.get(key)
        if kept is not None and transaction is not None and kept[0] is transaction:
            return kept[1]  # type: ignore[no-any-return]
        value = build()
        self.session.info[key] = (self._current_transaction(), value)
        return value

    def forget(self, key: Hashable) -> None:
        """Drop what `memo` kept under `key` (its source changed in this transaction)."""
        self.session.info.pop(key, None)

    def _current_transaction(self) -> Any:
        session = self.session
        return session.get_nested_transaction() or session.get_transaction()

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run `hook` only if and after this transaction commits."""
        self._after_commit.append(hook)

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return self.session.get_bind().dialect.name


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory that keeps objects usable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def is_serialization_failure(exc: DBAPIError) -> bool:
    """Whether a database error is a lost race that the caller should see as a conflict."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in {"40001", "40P01", "23505"} or "database is locked" in str(exc)


@contextmanager
def conflicts_as_409() -> Iterator[None]:
    """Turn a lost optimistic-lock race or a serialization failure into a ConflictError."""
    from engine.errors import ConflictError

    try:
        yield
    except StaleDataError as exc:
        raise ConflictError("the case changed meanwhile; reload and try again") from exc
    except DBAPIError as exc:
        if is_serialization_failure(exc):
            raise ConflictError("a concurrent change won; reload and try again") from exc
        raise
