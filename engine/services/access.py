"""Who is acting, and the SQL filters that keep every query inside the caller's scope."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    false,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import NullType

from engine.errors import NotFoundError, PermissionDeniedError
from engine.persistence.models import RoleAssignment, Unit, User


@dataclass(frozen=True)
class Grant:
    """One role on one unit (None = system-wide, only for admin), with the unit's path."""

    role: str
    unit_id: int | None
    unit_path: str | None


@dataclass(frozen=True)
class Actor:
    """The authenticated caller of a use case."""

    user_id: int
    username: str
    display_name: str
    language: str
    grants: tuple[Grant, ...]

    @property
    def is_admin(self) -> bool:
        """Whether the caller holds the admin role anywhere."""
        return any(g.role == "admin" for g in self.grants)

    @property
    def roles(self) -> frozenset[str]:
        """The names of the roles the caller holds."""
        return frozenset(g.role for g in self.grants)

    def paths(self, roles: Iterable[str] | None = None) -> list[str] | None:
        """Unit paths covered by the given roles (any role if None); None means everywhere."""
        wanted = set(roles) if roles is not None else None
        out: list[str] = []
        for g in self.grants:
            if wanted is not None and g.role not in wanted:
                continue
            if g.unit_path is None:
                return None
            out.append(g.unit_path)
        return out

    def covers(self, unit_path: str | None, roles: Iterable[str] | None = None) -> bool:
        """Whether a role (of `roles`) on some unit covers the unit with this path."""
        paths = self.paths(roles)
        if paths is None:
            return True
        if unit_path is None:
            return False
        return any(unit_path.startswith(p) for p in paths)


SYSTEM = Actor(user_id=0, username="system", display_name="系统", language="zh-CN", grants=())


@lru_cache(maxsize=1)
def _actor_rows() -> Any:
    """The statement of `load_actor` (run on every API request), built once."""
    return (
        select(
            User.username,
            User.display_name,
            User.language,
            User.token_generation,
            RoleAssignment.role,
            RoleAssignment.unit_id,
            Unit.path,
        )
        .outerjoin(RoleAssignment, RoleAssignment.user_id == User.id)
        .outerjoin(Unit, Unit.id == RoleAssignment.unit_id)
        .where(User.id == bindparam("user_id", type_=Integer), User.active.is_(True))
    )


def load_actor(
    session: Session | Connection, user_id: int, *, generation: int | None = None
) -> Actor:
    """Build the actor of an active user with their grants' unit paths, in one query.

    With `generation`, a user whose password changed since (token revoked) is not found."""
    rows = session.execute(_actor_rows(), {"user_id": user_id}).all()
    if not rows or (generation is not None and rows[0].token_generation != generation):
        raise NotFoundError("user not found")
    first = rows[0]
    return Actor(
        user_id=user_id,
        username=first.username,
        display_name=first.display_name,
        language=first.language,
        grants=tuple(Grant(r.role, r.unit_id, r.path) for r in rows if r.role is not None),
    )


def unit_scope(
    actor: Actor, unit_column: Any, roles: Iterable[str] | None = None
) -> ColumnElement[bool]:
    """SQL condition: the unit in `unit_column` lies under a unit where the actor holds a role."""
    sub = _scope_units(actor, roles)
    if isinstance(sub, bool):
        return true() if sub else false()
    return unit_column.in_(sub.scalar_subquery())  # type: ignore[no-any-return]


def _scope_units(actor: Actor, roles: Iterable[str] | None) -> Select[int] | bool:
    """The ids of the units under the actor's grants, or True (everywhere) / False (nowhere)."""
    if actor is SYSTEM:
        return True
    paths = actor.paths(roles)
    if paths is None:
        return True
    if not paths:
        return False
    return select(Unit.id).where(or_(*[path_under(p) for p in sorted(set(paths))]))


class _PathUnder(FunctionElement[bool]):
    """`path LIKE prefix || '%'`, compiled per database (see `path_under`)."""

    # Untyped: a Boolean-typed expression gets "= 1" appended on SQLite, which hides the
    # range from its index.
    type = NullType()  # type: ignore[assignment]
    name = "path_under"
    inherit_cache = True


@compiles(_PathUnder)
def _path_under_like(element: _PathUnder, compiler: Any, **kw: Any) -> str:
    column, prefix, _upper = element.clauses
    return str(compiler.process(column.startswith(prefix), **kw))


@compiles(_PathUnder, "sqlite")
def _path_under_range(element: _PathUnder, compiler: Any, **kw: Any) -> str:
    column, prefix, upper = element.clauses
    condition = and_(column.startswith(prefix), column >= prefix, column < upper).self_group()
    return str(compiler.process(condition, **kw))


def path_under(path: str, column: Any = None) -> ColumnElement[bool]:
    """The unit path in `column` (Unit.path) starts with `path` ("/1/4/"), in a form the
    database's path index serves.

    SQLite cannot use an index for LIKE with a bound pattern, so there the prefix is also a
    range (paths are ASCII digits and "/", and "0" follows "/"); PostgreSQL serves LIKE from
    its pattern-ops index and compares text by collation (which may ignore "/"), so it gets
    the LIKE alone."""
    column = Unit.path if column is None else column
    if not path.endswith("/"):
        return column.startswith(path)  # type: ignore[no-any-return]
    upper = path[:-1] + "0"
    return _PathUnder(column, literal(path, String), literal(upper, String))


# Up to this many units in a scope are read first and passed to queries as a list of ids.
SCOPE_IDS_MAX = 2000


def unit_scope_ids(
    session: Session, actor: Actor, unit_column: Any, roles: Iterable[str] | None = None
) -> ColumnElement[bool]:
    """`unit_scope`, with the scope's units read first when there are few of them.

    With a literal list of unit ids the planner reads only those units' rows through the
    unit index; with the subquery it may scan the whole table once it holds many streets."""
    sub = _scope_units(actor, roles)
    if isinstance(sub, bool):
        return true() if sub else false()
    ids = list(session.scalars(sub.limit(SCOPE_IDS_MAX + 1)))
    if len(ids) > SCOPE_IDS_MAX:
        return unit_column.in_(sub.scalar_subquery())  # type: ignore[no-any-return]
    return unit_column.in_(ids)  # type: ignore[no-any-return]


def require_admin(actor: Actor) -> None:
    """Refuse (403) unless the actor is an admin."""
    if not actor.is_admin and actor is not SYSTEM:
        raise PermissionDeniedError("admin role required")
