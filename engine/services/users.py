"""Users, passwords, roles and bearer tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.domain.enums import Role
from engine.errors import AuthenticationError, ConflictError, NotFoundError, ValidationError
from engine.persistence.db import UnitOfWork, read_only_options
from engine.persistence.models import RoleAssignment, Unit, User
from engine.services.access import Actor, load_actor, require_admin
from engine.services.audit import record_event

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not-a-real-password")
MIN_PASSWORD_LENGTH = 8
LOCKOUT_AFTER = 5
LOCKOUT_MINUTES = 15
ROLES = frozenset(r.value for r in Role)


def hash_password(password: str) -> str:
    """An argon2id hash."""
    return _hasher.hash(password)


def check_password_policy(password: str) -> None:
    """At least 8 characters, with letters and digits."""
    if (
        len(password) < MIN_PASSWORD_LENGTH
        or not any(c.isdigit() for c in password)
        or not any(c.isalpha() for c in password)
    ):
        raise ValidationError(
            "password too weak",
            {
                "password": [
                    "At least 8 characters with letters and digits. 密码至少 8 位，须含字母和数字。"
                ]
            },
        )


def _roles(uow: UnitOfWork, roles: Iterable[Mapping[str, Any]]) -> list[RoleAssignment]:
    out = []
    errors: dict[str, list[str]] = {}
    for i, r in enumerate(roles):
        role = str(r.get("role", ""))
        unit_id = r.get("unit_id")
        if role not in ROLES:
            errors[f"roles.{i}.role"] = [f"Unknown role '{role}'."]
            continue
        if unit_id is None and role != Role.admin.value:
            errors[f"roles.{i}.unit_id"] = ["Only admin may be granted without a unit."]
            continue
        if unit_id is not None and uow.session.get(Unit, int(unit_id)) is None:
            errors[f"roles.{i}.unit_id"] = ["Unknown unit."]
            continue
        out.append(RoleAssignment(role=role, unit_id=int(unit_id) if unit_id is not None else None))
    if errors:
        raise ValidationError("invalid roles", errors)
    return out


def create_user(
    uow: UnitOfWork,
    actor: Actor,
    *,
    username: str,
    password: str,
    display_name: str,
    now: datetime,
    language: str = "zh-CN",
    roles: Iterable[Mapping[str, Any]] = (),
    email: str | None = None,
    phone: str | None = None,
) -> User:
    """Create a user with roles on units (admin only)."""
    require_admin(actor)
    check_password_policy(password)
    if uow.session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"username '{username}' is taken")
    user = User(
        username=username,
        password_hash=hash_password(password),
        display_name=display_name,
        language=language,
        email=email,
        phone=phone,
        active=True,
        token_generation=0,
        failed_logins=0,
        created_at=now,
    )
    user.roles = _roles(uow, roles)
    uow.session.add(user)
    uow.session.flush()
    record_event(
        uow,
        "user.created",
        actor_id=actor.user_id,
        at=now,
        detail={
            "user_id": user.id,
            "username": username,
            "roles": [(r.role, r.unit_id) for r in user.roles],
        },
    )
    return user


def update_user(
    uow: UnitOfWork, actor: Actor, user_id: int, changes: Mapping[str, Any], now: datetime
) -> User:
    """Change a user's name, language, contact, roles, active flag or password (admin only)."""
    require_admin(actor)
    user = uow.session.get(User, user_id)
    if user is None:
        raise NotFoundError("user not found")
    for key in ("display_name", "language", "email", "phone", "active"):
        if key in changes:
            setattr(user, key, changes[key])
    if "roles" in changes:
        wanted = {(r.role, r.unit_id): r for r in _roles(uow, changes["roles"])}
        # Keep unchanged grants: replacing them would insert before deleting and hit the unique key.
        user.roles = [r for r in user.roles if (r.role, r.unit_id) in wanted] + [
            r for key, r in wanted.items() if key not in {(x.role, x.unit_id) for x in user.roles}
        ]
    if changes.get("password"):
        set_password(uow, user, changes["password"], actor=actor, now=now)
    record_event(
        uow,
        "user.updated",
        actor_id=actor.user_id,
        at=now,
        detail={"user_id": user.id, "fields": sorted(k for k in changes if k != "password")},
    )
    return user


def set_password(
    uow: UnitOfWork, user: User, password: str, *, actor: Actor, now: datetime
) -> None:
    """Change a password; every token issued before stops working."""
    check_password_policy(password)
    user.password_hash = hash_password(password)
    user.token_generation += 1
    record_event(
        uow, "user.password_changed", actor_id=actor.user_id, at=now, detail={"user_id": user.id}
    )


def authenticate(uow: UnitOfWork, username: str, password: str, now: datetime) -> User:
    """Check a password, with a temporary lockout after repeated failures."""
    user = uow.session.scalars(select(User).where(User.username == username)).first()
    if user is None or not user.active:
        _hasher_dummy(password)
        raise AuthenticationError("invalid username or password")
    if user.locked_until is not None and user.locked_until > now:
        raise AuthenticationError("account temporarily locked after repeated failures")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError) as exc:
        user.failed_logins += 1
        if user.failed_logins >= LOCKOUT_AFTER:
            user.locked_until = now + timedelta(minutes=LOCKOUT_MINUTES)
            user.failed_logins = 0
        record_event(uow, "auth.failed", actor_id=None, at=now, detail={"username": username})
        uow.commit()
        raise AuthenticationError("invalid username or password") from exc
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    return user


def _hasher_dummy(password: str) -> None:
    # Same work for unknown users, so timing does not reveal which usernames exist.
    with contextlib.suppress(VerificationError, InvalidHashError):
        _hasher.verify(_DUMMY_HASH, password)


@lru_cache(maxsize=4)
def _token_serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="api-token")


def issue_token(services: Services, user: User) -> tuple[str, datetime]:
    """A signed bearer token carrying the user id and password generation."""
    token = _token_serializer(services.settings.secret_key).dumps(
        {"u": user.id, "g": user.token_generation}
    )
    return token, services.clock.now() + timedelta(minutes=services.settings.token_ttl_minutes)


def actor_from_token(services: Services, token: str) -> Actor:
    """Verify signature, expiry and generation; return the actor.

    Runs on every API request: one query on a read-only Core connection (no ORM session,
    no write lock on SQLite)."""
    serializer = _token_serializer(services.settings.secret_key)
    try:
        payload = serializer.loads(token, max_age=services.settings.token_ttl_minutes * 60)
    except SignatureExpired as exc:
        raise AuthenticationError("token expired") from exc
    except BadSignature as exc:
        raise AuthenticationError("invalid token") from exc
    try:
        with services.engine.connect() as conn:
            conn.execution_options(**read_only_options(conn.dialect.name))
            return load_actor(conn, int(payload.get("u", 0)), generation=int(payload.get("g", -1)))
    except NotFoundError as exc:
        raise AuthenticationError("token revoked") from exc


def list_users(
    uow: UnitOfWork, actor: Actor, *, page: int = 1, per_page: int = 50, q: str | None = None
) -> dict[str, Any]:
    """Users with their roles (admin only)."""
    require_admin(actor)
    stmt = select(User)
    if q:
        stmt = stmt.where(User.username.contains(q) | User.display_name.contains(q))
    total = uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    per_page = max(1, min(per_page, 200))
    users = uow.session.scalars(
        stmt.order_by(User.id).limit(per_page).offset((max(page, 1) - 1) * per_page)
    ).all()
    return {"items": [user_view(u) for u in users], "total": total}


def user_view(user: User) -> dict[str, Any]:
    """A user as the admin API shows it (never the hash)."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "language": user.language,
        "email": user.email,
        "phone": user.phone,
        "active": user.active,
        "roles": [{"role": r.role, "unit_id": r.unit_id} for r in user.roles],
    }
