"""Who is acting, and the SQL filters that keep every query inside the caller's scope."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.orm import Session

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


def load_actor(session: Session, user_id: int, *, generation: int | None = None) -> Actor:
    """Build the actor of an active user with their grants' unit paths, in one query.

    With `generation`, a user whose password changed since (token revoked) is not found."""
    rows = session.execute(
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
        .where(User.id == user_id, User.active.is_(True))
    ).all()
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
    if actor is SYSTEM:
        return true()
    paths = actor.paths(roles)
    if paths is None:
        return true()
    if not paths:
        return false()
    sub = select(Unit.id).where(or_(*[Unit.path.startswith(p) for p in sorted(set(paths))]))
    return unit_column.in_(sub.scalar_subquery())  # type: ignore[no-any-return]


def require_admin(actor: Actor) -> None:
    """Refuse (403) unless the actor is an admin."""
    if not actor.is_admin and actor is not SYSTEM:
        raise PermissionDeniedError("admin role required")
