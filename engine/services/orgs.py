"""The unit tree (district → street → villages, communities, departments) and org files."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from engine.domain.enums import UnitKind
from engine.errors import ConflictError, NotFoundError, ValidationError
from engine.persistence.db import UnitOfWork
from engine.persistence.models import RoleAssignment, Unit, User
from engine.services.access import Actor, require_admin, unit_scope
from engine.services.audit import record_event

KINDS = frozenset(k.value for k in UnitKind)
DEMO_ORG = Path(__file__).resolve().parent.parent / "data" / "demo_org.yaml"


def create_unit(
    uow: UnitOfWork,
    actor: Actor,
    *,
    code: str,
    name: str,
    kind: str,
    now: datetime,
    parent_id: int | None = None,
    reporting: bool | None = None,
) -> Unit:
    """Add a unit under its parent (admin only); villages and communities report by default."""
    require_admin(actor)
    errors: dict[str, list[str]] = {}
    if kind not in KINDS:
        errors["kind"] = [f"Must be one of: {', '.join(sorted(KINDS))}."]
    parent = uow.session.get(Unit, parent_id) if parent_id is not None else None
    if parent_id is not None and parent is None:
        errors["parent_id"] = ["Unknown unit."]
    if errors:
        raise ValidationError("invalid unit", errors)
    if uow.session.scalar(select(Unit.id).where(Unit.code == code)) is not None:
        raise ConflictError(f"unit code '{code}' is taken")
    unit = Unit(
        code=code,
        name=name,
        kind=kind,
        parent_id=parent_id,
        path="",
        reporting=reporting if reporting is not None else kind in {"village", "community"},
        active=True,
    )
    uow.session.add(unit)
    uow.session.flush()
    unit.path = f"{parent.path if parent else '/'}{unit.id}/"
    record_event(
        uow,
        "unit.created",
        actor_id=actor.user_id,
        at=now,
        detail={"unit_id": unit.id, "code": code},
    )
    return unit


def update_unit(
    uow: UnitOfWork, actor: Actor, unit_id: int, changes: Mapping[str, Any], now: datetime
) -> Unit:
    """Rename a unit, or change whether it reports or is active (admin only)."""
    require_admin(actor)
    unit = uow.session.get(Unit, unit_id)
    if unit is None:
        raise NotFoundError("unit not found")
    for key in ("name", "reporting", "active"):
        if key in changes:
            setattr(unit, key, changes[key])
    record_event(
        uow,
        "unit.updated",
        actor_id=actor.user_id,
        at=now,
        detail={"unit_id": unit_id, "fields": sorted(changes)},
    )
    return unit


def list_units(
    uow: UnitOfWork, actor: Actor, *, kind: str | None = None, parent_id: int | None = None
) -> list[Unit]:
    """Units in the caller's scope, in tree order."""
    stmt = select(Unit)
    if not actor.is_admin:
        stmt = stmt.where(unit_scope(actor, Unit.id))
    if kind:
        stmt = stmt.where(Unit.kind == kind)
    if parent_id is not None:
        stmt = stmt.where(Unit.parent_id == parent_id)
    return list(uow.session.scalars(stmt.order_by(Unit.path)))


def unit_view(unit: Unit) -> dict[str, Any]:
    """A unit as the API shows it."""
    return {
        "id": unit.id,
        "code": unit.code,
        "name": unit.name,
        "kind": unit.kind,
        "parent_id": unit.parent_id,
        "reporting": unit.reporting,
        "active": unit.active,
    }


def unit_by_code(uow: UnitOfWork, code: str) -> Unit:
    """A unit by its code."""
    unit = uow.session.scalars(select(Unit).where(Unit.code == code)).first()
    if unit is None:
        raise NotFoundError(f"unknown unit code '{code}'")
    return unit


def parse_role_spec(uow: UnitOfWork, spec: str) -> dict[str, Any]:
    """'handler@V03' → {'role': 'handler', 'unit_id': id of V03}; 'admin' → system-wide admin."""
    role, _, code = spec.partition("@")
    return {"role": role.strip(), "unit_id": unit_by_code(uow, code.strip()).id if code else None}


def load_org(
    uow: UnitOfWork, actor: Actor, document: Mapping[str, Any], now: datetime
) -> dict[str, int]:
    """Load a unit tree and its users; existing codes and usernames are updated, not duplicated."""
    from engine.services.users import create_user, update_user

    require_admin(actor)
    counts = {"units_created": 0, "units_updated": 0, "users_created": 0, "users_updated": 0}

    def walk(nodes: Any, parent: Unit | None, trail: str) -> None:
        if not isinstance(nodes, list):
            raise ValidationError("invalid org file", {trail: ["Expected a list of units."]})
        for i, node in enumerate(nodes):
            where = f"{trail}[{i}]"
            if not isinstance(node, dict) or not {"code", "name", "kind"} <= node.keys():
                raise ValidationError(
                    "invalid org file", {where: ["Each unit needs code, name and kind."]}
                )
            existing = uow.session.scalars(
                select(Unit).where(Unit.code == str(node["code"]))
            ).first()
            if existing is None:
                unit = create_unit(
                    uow,
                    actor,
                    code=str(node["code"]),
                    name=str(node["name"]),
                    kind=str(node["kind"]),
                    parent_id=parent.id if parent else None,
                    reporting=node.get("reporting"),
                    now=now,
                )
                counts["units_created"] += 1
            else:
                if (parent.id if parent else None) != existing.parent_id:
                    raise ValidationError(
                        "invalid org file",
                        {where: [f"Unit {existing.code} cannot move to another parent."]},
                    )
                changes: dict[str, Any] = {"name": str(node["name"])}
                if "reporting" in node:
                    changes["reporting"] = bool(node["reporting"])
                unit = update_unit(uow, actor, existing.id, changes, now)
                counts["units_updated"] += 1
            walk(node.get("children", []), unit, f"{where}.children")

    walk(document.get("units", []), None, "units")
    for i, entry in enumerate(document.get("users", []) or []):
        where = f"users[{i}]"
        if not isinstance(entry, dict) or "username" not in entry:
            raise ValidationError("invalid org file", {where: ["Each user needs a username."]})
        roles = [parse_role_spec(uow, str(spec)) for spec in entry.get("roles", [])]
        user = uow.session.scalars(select(User).where(User.username == entry["username"])).first()
        if user is None:
            if not entry.get("password"):
                raise ValidationError("invalid org file", {where: ["A new user needs a password."]})
            create_user(
                uow,
                actor,
                username=str(entry["username"]),
                password=str(entry["password"]),
                display_name=str(entry.get("display_name", entry["username"])),
                language=str(entry.get("language", "zh-CN")),
                roles=roles,
                email=entry.get("email"),
                phone=entry.get("phone"),
                now=now,
            )
            counts["users_created"] += 1
        else:
            changes: dict[str, Any] = {"roles": roles}
            for key in ("display_name", "language", "email", "phone"):
                if key in entry:
                    changes[key] = entry[key]
            update_user(uow, actor, user.id, changes, now)
            counts["users_updated"] += 1
    return counts


def read_org_file(path: str | Path) -> dict[str, Any]:
    """Read an org YAML file (safe loader only)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValidationError(
            "invalid org file", {"file": ["Expected a mapping with 'units' and 'users'."]}
        )
    return data


def count_units(uow: UnitOfWork) -> int:
    """How many units exist (to know whether the organisation was loaded)."""
    return uow.session.scalar(select(func.count(Unit.id))) or 0


def role_holders(uow: UnitOfWork, role: str) -> list[int]:
    """Ids of users holding a role anywhere."""
    return list(
        uow.session.scalars(
            select(RoleAssignment.user_id).where(RoleAssignment.role == role).distinct()
        )
    )
