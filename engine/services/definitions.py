"""Process definitions: deploy BPMN files, version them by sha256, pin instances to theirs."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine.errors import NotFoundError, ValidationError
from engine.persistence.db import UnitOfWork
from engine.persistence.models import Case, ProcessDefinition
from engine.workflow import Definition, DefinitionError, parse_definitions

if TYPE_CHECKING:
    from engine.bootstrap import Services


@dataclass(frozen=True)
class DeployedDefinition:
    """A stored definition row together with its parsed form."""

    id: int
    version: int
    filename: str
    definition: Definition


class DefinitionRegistry:
    """Parses each stored definition once per process and serves it by id or process id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, DeployedDefinition] = {}
        self._latest: dict[str, int] = {}

    def deploy_folder(self, services: Services, folder: str | Path) -> list[DeployedDefinition]:
        """Deploy every `*.bpmn` of a folder; files already deployed add no version."""
        path = Path(folder)
        if not path.is_dir():
            return []
        out: list[DeployedDefinition] = []
        for file in sorted(path.glob("*.bpmn")):
            with services.uow() as uow:
                out.extend(
                    self.deploy(uow, file.read_bytes(), filename=file.name, at=services.clock.now())
                )
                uow.commit()
        return out

    def deploy(
        self,
        uow: UnitOfWork,
        xml: bytes,
        *,
        filename: str,
        at: datetime,
        actor_id: int | None = None,
    ) -> list[DeployedDefinition]:
        """Parse and store a BPMN file; a file already deployed returns its existing versions."""
        try:
            parsed = parse_definitions(xml, source=filename)
        except DefinitionError as exc:
            raise ValidationError(
                f"{filename}: {exc}",
                {
                    p.element_id or filename: [p.message, p.message_zh]
                    for p in getattr(exc, "problems", [])
                }
                or {filename: [str(exc)]},
            ) from exc
        out = []
        session = uow.session
        for definition in parsed:
            row = session.scalars(
                select(ProcessDefinition).where(
                    ProcessDefinition.process_id == definition.process_id,
                    ProcessDefinition.sha256 == definition.sha256,
                )
            ).first()
            if row is None:
                latest = session.scalar(
                    select(func.max(ProcessDefinition.version)).where(
                        ProcessDefinition.process_id == definition.process_id
                    )
                )
                row = ProcessDefinition(
                    process_id=definition.process_id,
                    name=definition.name or definition.process_id,
                    sha256=definition.sha256,
                    version=(latest or 0) + 1,
                    filename=filename,
                    xml=xml.decode("utf-8"),
                    deployed_at=at,
                    deployed_by_id=actor_id,
                )
                try:
                    with session.begin_nested():
                        session.add(row)
                except IntegrityError:
                    # Another process deployed the same file at the same moment.
                    row = session.scalars(
                        select(ProcessDefinition).where(
                            ProcessDefinition.process_id == definition.process_id,
                            ProcessDefinition.sha256 == definition.sha256,
                        )
                    ).one()
            deployed = DeployedDefinition(row.id, row.version, row.filename, definition)
            with self._lock:
                self._by_id[row.id] = deployed
                self._latest.pop(definition.process_id, None)
            out.append(deployed)
        return out

    def get(self, uow: UnitOfWork, definition_id: int) -> DeployedDefinition:
        """The definition an instance is pinned to, parsed once per process."""
        cached = self._by_id.get(definition_id)
        if cached is not None:
            return cached
        row = uow.session.get(ProcessDefinition, definition_id)
        if row is None:
            raise NotFoundError("process definition not found")
        definition = next(
            d
            for d in parse_definitions(row.xml.encode("utf-8"), source=row.filename)
            if d.process_id == row.process_id
        )
        deployed = DeployedDefinition(row.id, row.version, row.filename, definition)
        with self._lock:
            self._by_id[row.id] = deployed
        return deployed

    def latest(self, uow: UnitOfWork, process_id: str) -> DeployedDefinition:
        """The newest version of a process: what new cases start on."""
        def_id = self._latest.get(process_id)
        if def_id is None:
            def_id = uow.session.scalar(
                select(ProcessDefinition.id)
                .where(ProcessDefinition.process_id == process_id)
                .order_by(ProcessDefinition.version.desc())
                .limit(1)
            )
            if def_id is None:
                raise NotFoundError(f"no deployed process '{process_id}'")
            with self._lock:
                self._latest[process_id] = def_id
        return self.get(uow, def_id)

    def forget_latest(self) -> None:
        """Drop the cached 'latest' pointers (after another process deploys)."""
        with self._lock:
            self._latest.clear()


def list_definitions(uow: UnitOfWork) -> list[dict[str, object]]:
    """Every deployed version with its count of running instances."""
    running = (
        select(Case.definition_id, func.count().label("n"))
        .where(Case.closed_at.is_(None))
        .group_by(Case.definition_id)
        .subquery()
    )
    rows = uow.session.execute(
        select(ProcessDefinition, func.coalesce(running.c.n, 0))
        .outerjoin(running, running.c.definition_id == ProcessDefinition.id)
        .order_by(ProcessDefinition.process_id, ProcessDefinition.version)
    ).all()
    return [
        {
            "id": d.id,
            "process_id": d.process_id,
            "name": d.name,
            "version": d.version,
            "sha256": d.sha256,
            "filename": d.filename,
            "deployed_at": d.deployed_at,
            "running_instances": int(n),
        }
        for d, n in rows
    ]
