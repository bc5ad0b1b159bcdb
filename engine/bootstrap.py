"""Composition root: the one place that wires settings, clock, database and runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from engine.clock import Clock, SystemClock
from engine.config import Settings
from engine.persistence.db import (
    UnitOfWork,
    in_read_only_context,
    make_engine,
    make_session_factory,
)

if TYPE_CHECKING:
    from engine.services.case_types import CaseTypeRegistry
    from engine.services.definitions import DefinitionRegistry
    from engine.workflow import WorkflowRuntime


@dataclass
class Services:
    """Everything a use case needs, built once per process."""

    settings: Settings
    clock: Clock
    engine: Engine
    session_factory: sessionmaker[Session]
    runtime: WorkflowRuntime
    definitions: DefinitionRegistry
    case_types: CaseTypeRegistry
    notifier_hooks: list[Callable[[], None]] = field(default_factory=list)

    def uow(self, *, write: bool = False) -> UnitOfWork:
        """A new unit of work (one transaction).

        Inside `reads_only()` (a GET request) it is read-only unless `write` is given: a
        request that only reads must not queue for SQLite's write lock."""
        return UnitOfWork(self.session_factory, read_only=not write and in_read_only_context())

    def read_uow(self) -> UnitOfWork:
        """A unit of work that only reads: on SQLite it takes no write lock (never commit it)."""
        return UnitOfWork(self.session_factory, read_only=True)


def build_services(
    settings: Settings, clock: Clock | None = None, *, deploy: bool = True
) -> Services:
    """Build the services for this process; deploy the BPMN files of the workflows folder."""
    from engine.services.case_types import build_case_types
    from engine.services.definitions import DefinitionRegistry
    from engine.workflow import WorkflowRuntime

    clock = clock or SystemClock()
    db = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    services = Services(
        settings=settings,
        clock=clock,
        engine=db,
        session_factory=make_session_factory(db),
        runtime=WorkflowRuntime(clock, script_time_limit=settings.script_time_limit),
        definitions=DefinitionRegistry(),
        case_types=build_case_types(),
    )
    from engine.services.case_type_data import attach_data_case_types

    attach_data_case_types(services)  # case types deployed as data (issue 11)
    if deploy:
        services.definitions.deploy_folder(services, settings.workflows_dir)
    return services
