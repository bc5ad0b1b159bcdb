"""Process definitions: deploy BPMN files, version them by sha256, pin instances to theirs.

Uploads (a .bpmn file, or a .zip of BPMN files and case-type data) are parsed with the
hardened parser and checked by the deployment lint before anything is stored; every
problem comes back as one 422 naming the element, in English and Chinese. Running
instances stay on their version; `migrate_instances` moves them to a newer one when
SpiffWorkflow's diff allows it (issue 11).
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine.domain.enums import Role
from engine.errors import NotFoundError, ValidationError
from engine.persistence.db import UnitOfWork, conflicts_as_409
from engine.persistence.models import Case, CaseTypeDefinition, ProcessDefinition, Task
from engine.workflow import (
    Definition,
    DefinitionError,
    Problem,
    check_migration,
    lint_process,
    lint_xml,
    migrate,
    parse_definitions,
)

if TYPE_CHECKING:
    from engine.bootstrap import Services
    from engine.services.access import Actor
    from engine.services.case_type_data import CaseTypeSpec

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_ZIP_ENTRIES = 50
MAX_ZIP_MEMBER_BYTES = 5 * 1024 * 1024
CASE_TYPE_SUFFIXES = (".casetype.yaml", ".casetype.yml", ".casetype.json")
KNOWN_ROLES = frozenset(r.value for r in Role)


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
        """Deploy every `*.bpmn` of a folder and the `*.casetype.yaml` beside them.

        Files already deployed add no version. Shipped files are linted too, but a lint
        problem is logged rather than refused so one file cannot stop the others.
        """
        path = Path(folder)
        if not path.is_dir():
            return []
        out: list[DeployedDefinition] = []
        for file in sorted(path.glob("*.bpmn")):
            with services.uow() as uow:
                deployed = self.deploy(
                    uow, file.read_bytes(), filename=file.name, at=services.clock.now()
                )
                for item in deployed:
                    for issue in lint_process(item.definition, roles=KNOWN_ROLES):
                        log.warning("%s [%s] %s", file.name, issue.element_id, issue.message)
                out.extend(deployed)
                uow.commit()
        for file in sorted(p for p in path.iterdir() if p.name.endswith(CASE_TYPE_SUFFIXES)):
            try:
                deploy_case_type_file(services, file.read_bytes(), filename=file.name)
            except ValidationError as exc:
                log.error("case type %s not deployed: %s", file.name, exc.errors)
        return out

    def deploy(
        self,
        uow: UnitOfWork,
        xml: bytes,
        *,
        filename: str,
        at: datetime,
        actor_id: int | None = None,
        strict: bool = False,
    ) -> list[DeployedDefinition]:
        """Parse and store a BPMN file; a file already deployed returns its existing versions.

        `strict` also applies the deployment lint (uploads); shipped files skip it here.
        """
        parsed = validate_bpmn(xml, filename=filename, lint=strict)
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


def _problem_errors(
    problems: Iterable[Problem], filename: str, *, prefix: str = ""
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for item in problems:
        errors.setdefault(prefix + (item.element_id or filename), []).extend(
            [item.message, item.message_zh]
        )
    return errors


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    seen: set[tuple[str | None, str]] = set()
    out: list[Problem] = []
    for item in problems:
        if (item.element_id, item.message) not in seen:
            seen.add((item.element_id, item.message))
            out.append(item)
    return out


def validate_bpmn(
    xml: bytes, *, filename: str, lint: bool = True, prefix: str = ""
) -> list[Definition]:
    """Parse (hardened) and lint a BPMN file; ValidationError names every element at fault."""
    try:
        xml.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(
            f"{filename}: not UTF-8",
            {
                prefix + filename: [
                    "a BPMN file must be UTF-8 encoded",
                    "BPMN 文件必须使用 UTF-8 编码",
                ]
            },
        ) from None
    try:
        parsed = parse_definitions(xml, source=filename)
    except DefinitionError as exc:
        problems = list(exc.problems)
        if lint and any(p.element_id for p in problems):
            # SpiffWorkflow stops at its first complaint: add the lint's, so one upload
            # hears about everything at once.
            with contextlib.suppress(DefinitionError):
                problems += lint_xml(xml, roles=KNOWN_ROLES, source=filename)
        raise ValidationError(
            f"{filename}: {exc}",
            _problem_errors(_unique(problems), filename, prefix=prefix) or {filename: [str(exc)]},
        ) from exc
    if lint:
        problems = [p for d in parsed for p in lint_process(d, roles=KNOWN_ROLES)]
        if problems:
            raise ValidationError(
                f"{filename}: the process does not pass the deployment rules",
                _problem_errors(problems, filename, prefix=prefix),
            )
    return parsed


def list_definitions(uow: UnitOfWork) -> list[dict[str, object]]:
    """Every deployed version with its count of running instances and whether it is latest."""
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
    latest: dict[str, int] = {}
    for d, _n in rows:
        latest[d.process_id] = max(latest.get(d.process_id, 0), d.version)
    case_types: dict[str, list[str]] = {}
    for name, process_id in uow.session.execute(
        select(CaseTypeDefinition.name, CaseTypeDefinition.process_id).distinct()
    ):
        case_types.setdefault(process_id, []).append(name)
    return [
        {
            "id": d.id,
            "process_id": d.process_id,
            "name": d.name,
            "version": d.version,
            "sha256": d.sha256,
            "filename": d.filename,
            "deployed_at": d.deployed_at,
            "deployed_by_id": d.deployed_by_id,
            "running_instances": int(n),
            "is_latest": d.version == latest[d.process_id],
            "case_types": sorted(case_types.get(d.process_id, [])),
        }
        for d, n in rows
    ]


def get_definition(services: Services, uow: UnitOfWork, definition_id: int) -> dict[str, Any]:
    """One version with its XML (for the diagram), user tasks and running-instance count."""
    row = uow.session.get(ProcessDefinition, definition_id)
    if row is None:
        raise NotFoundError("process definition not found")
    deployed = services.definitions.get(uow, definition_id)
    running = uow.session.scalar(
        select(func.count(Case.id)).where(
            Case.definition_id == definition_id, Case.closed_at.is_(None)
        )
    )
    latest = uow.session.scalar(
        select(func.max(ProcessDefinition.version)).where(
            ProcessDefinition.process_id == row.process_id
        )
    )
    return {
        "id": row.id,
        "process_id": row.process_id,
        "name": row.name,
        "version": row.version,
        "sha256": row.sha256,
        "filename": row.filename,
        "deployed_at": row.deployed_at,
        "deployed_by_id": row.deployed_by_id,
        "running_instances": int(running or 0),
        "is_latest": row.version == latest,
        "xml": row.xml,
        "user_tasks": [
            {
                "id": t.bpmn_id,
                "name": t.name,
                "candidate_roles": list(t.candidate_roles),
                "assignee": t.assignee,
                "due_date": t.due_date,
                "form_fields": [f.id for f in t.form],
            }
            for t in deployed.definition.user_tasks.values()
        ],
    }


# -- uploads ---------------------------------------------------------------------------------


@dataclass
class _Upload:
    bpmn: list[tuple[str, bytes]] = field(default_factory=list)
    case_types: list[tuple[str, bytes]] = field(default_factory=list)


def _refuse(filename: str, en: str, zh: str) -> ValidationError:
    return ValidationError(f"{filename}: {en}", {filename: [en, zh]})


def _read_zip(content: bytes, filename: str) -> _Upload:
    """The BPMN and case-type members of a zip, read in memory with size limits (no bombs)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise _refuse(filename, f"not a valid zip file ({exc})", "不是有效的 zip 文件") from None
    upload = _Upload()
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_ENTRIES:
            raise _refuse(
                filename,
                f"the zip holds more than {MAX_ZIP_ENTRIES} files",
                f"zip 文件中的文件超过 {MAX_ZIP_ENTRIES} 个",
            )
        total = 0
        for member in members:
            name = PurePosixPath(member.filename.replace("\\", "/")).name
            if name.startswith(".") or member.filename.startswith("__MACOSX/"):
                continue
            is_bpmn = name.lower().endswith(".bpmn")
            is_case_type = name.lower().endswith(CASE_TYPE_SUFFIXES)
            if not (is_bpmn or is_case_type):
                raise _refuse(
                    filename,
                    f"'{member.filename}' is neither a .bpmn nor a .casetype.yaml file",
                    f"'{member.filename}' 既不是 .bpmn 文件也不是 .casetype.yaml 文件",
                )
            if member.file_size > MAX_ZIP_MEMBER_BYTES:
                raise _refuse(
                    filename,
                    f"'{member.filename}' is larger than {MAX_ZIP_MEMBER_BYTES // 2**20} MB",
                    f"'{member.filename}' 超过 {MAX_ZIP_MEMBER_BYTES // 2**20} MB",
                )
            try:
                with archive.open(member) as handle:
                    data = handle.read(MAX_ZIP_MEMBER_BYTES + 1)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError) as exc:
                raise _refuse(
                    filename,
                    f"'{member.filename}' cannot be read ({exc})",
                    f"无法读取 '{member.filename}'",
                ) from None
            total += len(data)
            if len(data) > MAX_ZIP_MEMBER_BYTES or total > MAX_UPLOAD_BYTES:
                raise _refuse(filename, "the zip expands too far", "zip 文件解压后过大")
            (upload.bpmn if is_bpmn else upload.case_types).append((name, data))
    if not upload.bpmn and not upload.case_types:
        raise _refuse(filename, "the zip holds no BPMN file", "zip 文件中没有 BPMN 文件")
    return upload


def _validate_case_types(
    services: Services,
    uow: UnitOfWork,
    files: Sequence[tuple[str, bytes]],
    definitions: dict[str, Definition],
) -> list[tuple[str, bytes, CaseTypeSpec]]:
    from engine.services.case_type_data import (
        check_against_process,
        load_case_type_file,
        parse_case_type,
    )

    code_types = {ct.name for ct in services.case_types.all()}
    out: list[tuple[str, bytes, CaseTypeSpec]] = []
    errors: dict[str, object] = {}
    for name, data in files:
        try:
            spec = parse_case_type(load_case_type_file(data, filename=name), filename=name)
            if spec.name in code_types:
                raise _refuse(
                    name,
                    f"case type '{spec.name}' is defined in code and cannot be replaced by data",
                    f"案件类型 '{spec.name}' 由程序定义，不能用数据替换",
                )
            definition = definitions.get(spec.process_id)
            if definition is None:
                try:
                    definition = services.definitions.latest(uow, spec.process_id).definition
                except NotFoundError:
                    raise _refuse(
                        name,
                        f"process '{spec.process_id}' is neither in the upload nor deployed",
                        f"流程 '{spec.process_id}' 既不在上传文件中也未部署",
                    ) from None
            check_against_process(spec, definition, filename=name)
        except ValidationError as exc:
            errors.update(exc.errors)
            continue
        out.append((name, data, spec))
    if errors:
        raise ValidationError("the case-type data has errors", errors)  # type: ignore[arg-type]
    return out


def deploy_upload(
    services: Services, actor: Actor, filename: str, content: bytes
) -> dict[str, Any]:
    """POST /process-definitions: validate a .bpmn or .zip upload fully, then deploy it all."""
    from engine.services.access import require_admin
    from engine.services.audit import record_event
    from engine.services.case_type_data import data_store, store_case_type

    require_admin(actor)
    filename = PurePosixPath(filename.replace("\\", "/")).name or "upload.bpmn"
    if not content:
        raise _refuse(filename, "the file is empty", "文件为空")
    if len(content) > MAX_UPLOAD_BYTES:
        raise _refuse(
            filename,
            f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MB",
            f"文件超过 {MAX_UPLOAD_BYTES // 2**20} MB",
        )
    if content[:4] == b"PK\x03\x04" or filename.lower().endswith(".zip"):
        upload = _read_zip(content, filename)
    elif filename.lower().endswith(CASE_TYPE_SUFFIXES):
        upload = _Upload(case_types=[(filename, content)])
    else:
        upload = _Upload(bpmn=[(filename, content)])
    many = len(upload.bpmn) > 1

    errors: dict[str, object] = {}
    parsed: dict[str, Definition] = {}
    for name, data in upload.bpmn:
        try:
            for definition in validate_bpmn(data, filename=name, prefix=f"{name}:" if many else ""):
                parsed[definition.process_id] = definition
        except ValidationError as exc:
            errors.update(exc.errors)
    if errors:
        raise ValidationError(f"{filename}: the upload cannot be deployed", errors)  # type: ignore[arg-type]

    now = services.clock.now()
    with services.uow() as uow, conflicts_as_409():
        case_types = _validate_case_types(services, uow, upload.case_types, parsed)
        deployed: list[DeployedDefinition] = []
        for name, data in upload.bpmn:
            deployed.extend(
                services.definitions.deploy(
                    uow, data, filename=name, at=now, actor_id=actor.user_id or None, strict=True
                )
            )
        rows = [
            store_case_type(
                uow,
                spec,
                source=data.decode("utf-8"),
                filename=name,
                at=now,
                actor_id=actor.user_id or None,
            )
            for name, data, spec in case_types
        ]
        record_event(
            uow,
            "definitions.deployed",
            actor_id=actor.user_id or None,
            at=now,
            detail={
                "file": filename,
                "definitions": [
                    {"process_id": d.definition.process_id, "version": d.version, "id": d.id}
                    for d in deployed
                ],
                "case_types": [{"name": r.name, "version": r.version} for r in rows],
            },
        )
        uow.commit()
        services.definitions.forget_latest()
        store = data_store(services)
        for row in rows:
            store.remember(row)
        listing = {d["id"]: d for d in list_definitions(uow)}
        return {
            "definitions": [listing[d.id] for d in deployed],
            "case_types": [
                {
                    "name": r.name,
                    "version": r.version,
                    "sha256": r.sha256,
                    "process_id": r.process_id,
                    "prefix": r.prefix,
                    "label_zh": r.label_zh,
                    "label_en": r.label_en,
                }
                for r in rows
            ],
        }


def deploy_case_type_file(
    services: Services, content: bytes, *, filename: str, actor_id: int | None = None
) -> CaseTypeDefinition:
    """Deploy one case-type file whose process is already deployed (the workflows folder)."""
    from engine.services.case_type_data import data_store, store_case_type

    with services.uow() as uow:
        ((name, data, spec),) = _validate_case_types(services, uow, [(filename, content)], {})
        row = store_case_type(
            uow,
            spec,
            source=data.decode("utf-8"),
            filename=name,
            at=services.clock.now(),
            actor_id=actor_id,
        )
        uow.commit()
    data_store(services).remember(row)
    return row


# -- migration -------------------------------------------------------------------------------


def migrate_instances(
    services: Services,
    actor: Actor,
    definition_id: int,
    *,
    dry_run: bool = True,
    case_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Move running cases of older versions to this one; a dry run only says who would move."""
    from engine.services.access import require_admin

    require_admin(actor)
    with services.uow() as uow:
        target_row = uow.session.get(ProcessDefinition, definition_id)
        if target_row is None:
            raise NotFoundError("process definition not found")
        target = services.definitions.get(uow, definition_id)
        target_process, target_version = target_row.process_id, target_row.version
        stmt = (
            select(
                Case.id,
                Case.case_no,
                Case.status,
                ProcessDefinition.process_id,
                ProcessDefinition.version,
            )
            .join(ProcessDefinition, ProcessDefinition.id == Case.definition_id)
            .where(Case.closed_at.is_(None))
        )
        if case_ids:
            stmt = stmt.where(Case.id.in_(list(case_ids)))
        else:
            stmt = stmt.where(
                ProcessDefinition.process_id == target_row.process_id,
                ProcessDefinition.version < target_row.version,
            )
        candidates: list[tuple[int, str, str, str, int]] = [
            (int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]))
            for r in uow.session.execute(stmt.order_by(Case.id)).all()
        ]
    found = {c[0] for c in candidates}
    results: list[dict[str, Any]] = [
        _result(case_id, None, None, [("case", "not a running case", "不是运行中的案件")])
        for case_id in (case_ids or [])
        if case_id not in found
    ]
    for case_id, case_no, status, process_id, version in candidates:
        reasons: list[tuple[str | None, str, str]] = []
        if process_id != target_process:
            reasons.append(
                (
                    None,
                    f"the case runs process '{process_id}', not '{target_process}'",
                    f"该案件运行的流程是 '{process_id}'，不是 '{target_process}'",
                )
            )
        elif version >= target_version:
            reasons.append(
                (
                    None,
                    f"the case already runs version {version}",
                    f"该案件已在第 {version} 版上运行",
                )
            )
        elif status == "error":
            reasons.append((None, "the case is in error", "该案件处于错误状态"))
        if reasons:
            results.append(_result(case_id, case_no, version, reasons))
            continue
        results.append(
            _migrate_one(services, actor, case_id, target, target_version, dry_run=dry_run)
        )
    results.sort(key=lambda r: int(r["case_id"]))
    return {
        "definition_id": definition_id,
        "process_id": target_process,
        "version": target_version,
        "dry_run": dry_run,
        "movable": sum(1 for r in results if r["movable"]),
        "migrated": sum(1 for r in results if r["migrated"]),
        "items": results,
    }


def _result(
    case_id: int,
    case_no: str | None,
    version: int | None,
    reasons: Iterable[tuple[str | None, str, str]],
    *,
    movable: bool = False,
    migrated: bool = False,
    reopened: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "case_no": case_no,
        "from_version": version,
        "movable": movable,
        "migrated": migrated,
        "reopened_tasks": list(reopened),
        "reasons": [
            {"element_id": element, "message": en, "message_zh": zh} for element, en, zh in reasons
        ],
    }


def _migrate_one(
    services: Services,
    actor: Actor,
    case_id: int,
    target: DeployedDefinition,
    target_version: int,
    *,
    dry_run: bool,
) -> dict[str, Any]:
    from engine.services.audit import record_case_event
    from engine.services.case_types import HookContext
    from engine.services.cases import apply_snapshot

    now = services.clock.now()
    with services.uow() as uow, conflicts_as_409():
        case = uow.session.get(Case, case_id)
        assert case is not None
        source_row = uow.session.get(ProcessDefinition, case.definition_id)
        assert source_row is not None
        source = services.definitions.get(uow, case.definition_id)
        verdict = check_migration(
            services.runtime, source.definition, case.state, target.definition
        )
        reasons = [(p.element_id, p.message, p.message_zh) for p in verdict.problems]
        if not verdict.possible or dry_run:
            return _result(
                case.id,
                case.case_no,
                source_row.version,
                reasons,
                movable=verdict.possible,
                reopened=verdict.changed,
            )
        try:
            snapshot = migrate(services.runtime, source.definition, case.state, target.definition)
        except Exception as exc:  # the diff allowed it but SpiffWorkflow could not (trap 12)
            return _result(
                case.id,
                case.case_no,
                source_row.version,
                [(None, f"migration failed: {exc}", f"迁移失败：{exc}")],
            )
        if snapshot.status == "error":
            return _result(
                case.id,
                case.case_no,
                source_row.version,
                [(None, f"migration failed: {snapshot.error}", f"迁移失败：{snapshot.error}")],
            )
        case.definition_id = target.id
        record_case_event(
            uow,
            case,
            "case.migrated",
            actor_id=actor.user_id or None,
            at=now,
            detail={
                "process_id": source_row.process_id,
                "from_version": source_row.version,
                "to_version": target_version,
                "from_definition_id": source_row.id,
                "to_definition_id": target.id,
                "reopened_tasks": list(verdict.changed),
            },
        )
        case_type = services.case_types.get(case.case_type)
        ctx = HookContext(services, uow, actor, now)
        apply_snapshot(ctx, case, case_type, snapshot)
        # Open tasks that kept their id now run on the new element: show its name and role.
        rows = {
            r.spiff_id: r
            for r in uow.session.scalars(
                select(Task).where(Task.case_id == case.id, Task.status == "open")
            )
        }
        for human in snapshot.tasks:
            row = rows.get(human.id)
            if row is None:
                continue
            row.name = human.name or human.bpmn_id
            role = human.candidate_roles[0] if human.candidate_roles else None
            if role != row.role:
                row.role = role
                row.assignee_id = None  # a claim for the old role does not carry over
            row.due_at = case_type.hooks.task_due(ctx, case, human)
        uow.commit()
        return _result(
            case.id,
            case.case_no,
            source_row.version,
            [],
            movable=True,
            migrated=True,
            reopened=verdict.changed,
        )
