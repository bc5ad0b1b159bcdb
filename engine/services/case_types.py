"""Case types: which process a case runs, its number prefix, and its domain hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import ColumnElement, and_, or_, true

from engine.persistence.models import Case
from engine.services.access import Actor

if TYPE_CHECKING:
    from engine.bootstrap import Services
    from engine.persistence.db import UnitOfWork
    from engine.persistence.models import Task
    from engine.workflow import HumanTask, Snapshot


class CaseHooks(Protocol):
    """Domain rules a case type adds around the generic task cycle."""

    def before_complete(
        self, ctx: HookContext, case: Case, task: Task, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Check business rules on submitted form data; return values to add to it."""
        ...

    def after_complete(
        self, ctx: HookContext, case: Case, task: Task, data: Mapping[str, Any], snapshot: Snapshot
    ) -> None:
        """Update domain rows (deadlines, ledgers) after a task completed."""
        ...

    def task_due(self, ctx: HookContext, case: Case, task: HumanTask) -> datetime | None:
        """The due time of a newly opened task when a domain deadline governs it."""
        ...


@dataclass
class HookContext:
    """What hooks get: the services, the open unit of work, the actor and 'now'."""

    services: Services
    uow: UnitOfWork
    actor: Actor
    now: datetime


class NoHooks:
    """A case type with no domain rules beyond its BPMN."""

    def before_complete(
        self, ctx: HookContext, case: Case, task: Task, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Accept the form data as validated by its schema."""
        return {}

    def after_complete(
        self, ctx: HookContext, case: Case, task: Task, data: Mapping[str, Any], snapshot: Snapshot
    ) -> None:
        """Nothing to update."""

    def task_due(self, ctx: HookContext, case: Case, task: HumanTask) -> datetime | None:
        """Use the BPMN's own camunda:dueDate."""
        return task.due_at


@dataclass
class CaseType:
    """A kind of case: its process, number prefix and hooks."""

    name: str
    process_id: str
    prefix: str
    label_zh: str
    label_en: str
    hooks: CaseHooks = field(default_factory=NoHooks)
    # An ORM class whose primary key is the case id (a petition's `petitions` row): read in
    # the same query as the task being completed, so the hooks' session.get needs no query.
    detail: Any = None


class CaseTypeRegistry:
    """Known case types; a deployed process without a registered type runs as a generic case."""

    def __init__(self) -> None:
        self._types: dict[str, CaseType] = {}
        # Consulted for names no code registered: case types deployed as data (issue 11).
        self._resolvers: list[Callable[[str], CaseType | None]] = []

    def restrict(
        self, names: Iterable[str], condition: Callable[[Actor], ColumnElement[bool]]
    ) -> None:
        """Let only actors for whom `condition(actor)` holds see cases of these types."""
        for name in names:
            _RESTRICTIONS[name] = condition

    def add_resolver(self, resolver: Callable[[str], CaseType | None]) -> None:
        """Also look case types up in `resolver` (e.g. the deployed case-type data)."""
        self._resolvers.append(resolver)

    def register(self, case_type: CaseType) -> None:
        """Add or replace a case type."""
        self._types[case_type.name] = case_type

    def get(self, name: str) -> CaseType:
        """The case type of that name, or a generic one running the process of that id."""
        found = self._types.get(name)
        if found is not None:
            return found
        for resolver in self._resolvers:
            resolved = resolver(name)
            if resolved is not None:
                return resolved
        return CaseType(name=name, process_id=name, prefix="AJ", label_zh=name, label_en=name)

    def all(self) -> list[CaseType]:
        """Registered case types."""
        return list(self._types.values())

    def details(self) -> tuple[Any, ...]:
        """The detail classes of the registered case types (each once, in a stable order)."""
        found = {t.detail: None for t in self._types.values() if t.detail is not None}
        return tuple(sorted(found, key=lambda cls: cls.__tablename__))


# Case types whose cases only some people may see (key-person files): a SQL condition on Case
# per actor, applied on top of unit scope by every generic case and task read. Code defines
# these rules, so they are the same for every registry in the process.
_RESTRICTIONS: dict[str, Callable[[Actor], ColumnElement[bool]]] = {}


def is_restricted(case_type: str) -> bool:
    """Whether cases of this type have their own visibility rule."""
    return case_type in _RESTRICTIONS


def case_visibility(actor: Actor) -> ColumnElement[bool]:
    """SQL condition on Case: unrestricted types, or restricted ones the actor may see."""
    if not _RESTRICTIONS:
        return true()
    by_condition: dict[Callable[[Actor], ColumnElement[bool]], list[str]] = {}
    for name, condition in _RESTRICTIONS.items():
        by_condition.setdefault(condition, []).append(name)
    return or_(
        Case.case_type.not_in(list(_RESTRICTIONS)),
        *[and_(Case.case_type.in_(names), cond(actor)) for cond, names in by_condition.items()],
    )


def build_case_types() -> CaseTypeRegistry:
    """The registry with every case type the engine ships."""
    from engine.services.petitions import register_case_types as register_petitions
    from engine.services.screening import register_case_types as register_screening
    from engine.services.stabilization import register_case_types as register_stabilization

    registry = CaseTypeRegistry()
    register_screening(registry)
    register_petitions(registry)
    register_stabilization(registry)
    return registry
