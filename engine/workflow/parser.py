"""Parse uploaded BPMN safely into Definitions (DESIGN.md §3).

The raw bytes are parsed here with a hardened lxml parser (no DTD, no entities, no
network, size cap); SpiffWorkflow only ever sees the resulting tree. Camunda attributes
that SpiffWorkflow drops (candidateGroups, assignee, dueDate, formData without formKey)
are kept in each user task spec's `extensions`, and Camunda Modeler's unquoted ISO 8601
timer literals are rewritten to quoted Python strings.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import UserTaskParser
from SpiffWorkflow.camunda.specs.user_task import UserTask
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine.workflow import sandbox
from engine.workflow.errors import DefinitionError, Problem, problem
from engine.workflow.forms import FIELD_TYPES, FormField

MAX_BPMN_BYTES = 5 * 1024 * 1024
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
NSMAP = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS}
# Camunda attributes of a userTask that we keep (SPIFFWORKFLOW.md trap 3).
KEPT_ATTRIBUTES = (
    "candidateGroups",
    "candidateUsers",
    "assignee",
    "dueDate",
    "followUpDate",
    "priority",
    "formKey",
)
EXT_PREFIX = "camunda:"
EXT_FORM = "camunda:formData"
DEFAULT_UNIT_FIELD = "unit_id"

# What Camunda Modeler writes into a timer without quotes: durations (P15D, PT1H),
# repeating intervals (R3/PT10M) and date-times (2026-10-08T00:00:00+08:00).
_ISO_LITERAL = re.compile(
    r"^(R\d*/\S+|P[\dT]\S*|\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?)$"
)

_DTD_MARKERS = tuple(
    marker.encode(codec)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for codec in ("utf-8", "utf-16-le", "utf-16-be")
)
_HARDENED = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    dtd_validation=False,
    remove_blank_text=False,
)


def is_iso_literal(text: str) -> bool:
    """True for bare ISO 8601 durations, intervals and date-times as Camunda writes them."""
    return bool(_ISO_LITERAL.match(text.strip()))


@dataclass(frozen=True)
class UserTaskSpec:
    """Static facts about one bpmn:userTask, read from the BPMN."""

    bpmn_id: str
    name: str
    candidate_roles: tuple[str, ...]
    assignee: str | None
    due_date: str | None
    unit_field: str
    form: tuple[FormField, ...]
    documentation: str | None


@dataclass(frozen=True, eq=False)
class Definition:
    """One executable process of an uploaded BPMN file, parsed once and cached by sha256."""

    process_id: str
    name: str
    sha256: str
    xml: bytes = field(repr=False)
    user_tasks: Mapping[str, UserTaskSpec] = field(repr=False)
    _spec: Any = field(repr=False)
    _subprocess_specs: Mapping[str, Any] = field(repr=False)
    # Per-definition memo for the runtime (serialized spec dict and similar).
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)


# -- XML ------------------------------------------------------------------------------------


def _parse_xml(xml: bytes, source: str) -> etree._Element:
    if not isinstance(xml, bytes | bytearray):
        raise DefinitionError(
            [problem(None, "BPMN must be given as bytes", "BPMN 文件必须以字节形式提供")],
            source=source,
        )
    if len(xml) > MAX_BPMN_BYTES:
        raise DefinitionError(
            [
                problem(
                    None,
                    f"file is larger than {MAX_BPMN_BYTES // (1024 * 1024)} MB",
                    f"文件超过 {MAX_BPMN_BYTES // (1024 * 1024)} MB",
                )
            ],
            source=source,
        )
    doctype_error = DefinitionError(
        [problem(None, "DOCTYPE and entities are not allowed", "不允许使用 DOCTYPE 和实体声明")],
        source=source,
    )
    # Checked on the bytes first so an entity bomb is never handed to libxml2 at all.
    if any(marker in xml for marker in _DTD_MARKERS):
        raise doctype_error
    try:
        root = etree.fromstring(bytes(xml), parser=_HARDENED)
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno, 0)
        raise DefinitionError(
            [
                problem(
                    None,
                    f"malformed XML at line {line}, column {column}: {exc.msg}",
                    f"XML 格式错误（第 {line} 行，第 {column} 列）：{exc.msg}",
                )
            ],
            source=source,
        ) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise doctype_error  # e.g. a UTF-16 file the byte check could not read
    if root.tag != f"{{{BPMN_NS}}}definitions":
        raise DefinitionError(
            [
                problem(
                    None,
                    "not a BPMN 2.0 file (root element must be bpmn:definitions)",
                    "不是 BPMN 2.0 文件（根元素必须是 bpmn:definitions）",
                )
            ],
            source=source,
        )
    return root


def _rewrite_timers(root: etree._Element) -> list[Problem]:
    problems: list[Problem] = []
    path = (
        ".//bpmn:timerEventDefinition/*"
        "[self::bpmn:timeDuration or self::bpmn:timeDate or self::bpmn:timeCycle]"
    )
    for node in root.xpath(path, namespaces=NSMAP):
        definition = node.getparent()
        event = definition.getparent() if definition is not None else None
        element_id = event.get("id") if event is not None else None
        text = (node.text or "").strip()
        if not text:
            problems.append(
                problem(element_id, "timer has no value", "定时器未设置时间值"),
            )
            continue
        if is_iso_literal(text):
            error = _check_timer_literal(text, etree.QName(node).localname)
            if error is not None:
                problems.append(
                    problem(
                        element_id,
                        f"invalid timer '{text}': {error}",
                        f"定时器取值无效 '{text}'：{error}",
                    )
                )
                continue
            node.text = repr(text)
            continue
        error = sandbox.check_source(text)
        if error is not None:
            problems.append(
                problem(
                    element_id,
                    f"invalid timer expression '{text}': {error}",
                    f"定时器表达式无效 '{text}'：{error}",
                )
            )
    return problems


def _unsupported(root: etree._Element) -> list[Problem]:
    """Features SpiffWorkflow would fail on with an anonymous error; name the element instead."""
    problems: list[Problem] = []
    for node in root.iter(f"{{{BPMN_NS}}}dataStore"):
        problems.append(
            problem(
                node.get("id"),
                f"data store '{node.get('name') or node.get('id')}' is not supported",
                f"不支持数据存储 '{node.get('name') or node.get('id')}'",
            )
        )
    for node in root.iter(f"{{{BPMN_NS}}}businessRuleTask"):
        problems.append(
            problem(
                node.get("id"),
                f"business rule task '{node.get('id')}' (DMN) is not supported",
                f"不支持业务规则任务 '{node.get('id')}'（DMN）",
            )
        )
    return problems


def _check_timer_literal(text: str, kind: str) -> str | None:
    try:
        if kind == "timeCycle" or text.upper().startswith("R"):
            TimerEventDefinition.parse_iso_recurring_interval(text)
        elif kind == "timeDuration" or text.upper().startswith("P"):
            TimerEventDefinition.parse_iso_duration(text)
        else:
            TimerEventDefinition.get_datetime(text)
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None


# -- the Camunda user-task parser that keeps what Spiff drops ---------------------------------


def _read_form(node: etree._Element) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = []
    for xml_field in node.xpath(
        "./bpmn:extensionElements/camunda:formData/camunda:formField", namespaces=NSMAP
    ):
        item: dict[str, Any] = {
            "id": xml_field.get("id"),
            "label": xml_field.get("label") or xml_field.get("id"),
            "type": xml_field.get("type") or "string",
            "default": xml_field.get("defaultValue"),
            "enum": [],
            "constraints": {},
            "properties": {},
        }
        for value in xml_field.xpath("./camunda:value", namespaces=NSMAP):
            item["enum"].append([value.get("id"), value.get("name") or value.get("id")])
        for constraint in xml_field.xpath(
            "./camunda:validation/camunda:constraint", namespaces=NSMAP
        ):
            item["constraints"][constraint.get("name")] = constraint.get("config")
        for prop in xml_field.xpath("./camunda:properties/camunda:property", namespaces=NSMAP):
            item["properties"][prop.get("id") or prop.get("name")] = prop.get("value")
        fields.append(item)
    return fields


class _KeepingUserTaskParser(UserTaskParser):
    """Camunda user-task parser that keeps roles, assignee, due date and formData."""

    def parse_extensions(self, node: Any = None) -> dict[str, Any]:
        """Camunda properties plus the attributes SpiffWorkflow would drop."""
        extensions: dict[str, Any] = super().parse_extensions(node)
        for name in KEPT_ATTRIBUTES:
            value = self.node.get(f"{{{CAMUNDA_NS}}}{name}")
            if value is not None:
                extensions[EXT_PREFIX + name] = value
        extensions[EXT_FORM] = _read_form(self.node)
        return extensions


class _Parser(CamundaParser):
    OVERRIDE_PARSER_CLASSES = {  # noqa: RUF012 - SpiffWorkflow's extension point
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("userTask"): (_KeepingUserTaskParser, UserTask),
    }


# -- building Definitions ---------------------------------------------------------------------


def _to_float(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def _to_int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


def _form_fields(task_id: str, raw: list[dict[str, Any]]) -> tuple[FormField, ...]:
    result: list[FormField] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for item in raw:
        field_id = item.get("id") or ""
        if not field_id or field_id.startswith("_") or field_id in sandbox.RESERVED_NAMES:
            problems.append(
                problem(
                    task_id,
                    f"form field id '{field_id}' is empty, starts with '_' or is a reserved name",
                    f"表单字段 id '{field_id}' 为空、以 '_' 开头或为保留名称",
                )
            )
            continue
        if field_id in seen:
            problems.append(
                problem(
                    task_id, f"duplicate form field '{field_id}'", f"表单字段 '{field_id}' 重复"
                )
            )
            continue
        seen.add(field_id)
        kind = item.get("type") or "string"
        if kind not in FIELD_TYPES:
            problems.append(
                problem(
                    task_id,
                    f"form field '{field_id}' has unsupported type '{kind}' "
                    f"(use {', '.join(FIELD_TYPES)})",
                    f"表单字段 '{field_id}' 的类型 '{kind}' 不受支持",
                )
            )
            continue
        constraints: dict[str, str | None] = item.get("constraints", {})
        try:
            result.append(
                FormField(
                    id=field_id,
                    label=item.get("label") or field_id,
                    type=kind,
                    required="required" in constraints,
                    readonly="readonly" in constraints,
                    enum=tuple((str(v), str(lb)) for v, lb in item.get("enum", [])),
                    default=item.get("default"),
                    min=_to_float(constraints.get("min")),
                    max=_to_float(constraints.get("max")),
                    minlength=_to_int(constraints.get("minlength")),
                    maxlength=_to_int(constraints.get("maxlength")),
                    properties=MappingProxyType(
                        {str(k): str(v) for k, v in item.get("properties", {}).items()}
                    ),
                )
            )
        except ValueError as exc:
            problems.append(
                problem(
                    task_id,
                    f"form field '{field_id}' has an invalid constraint: {exc}",
                    f"表单字段 '{field_id}' 的校验约束无效：{exc}",
                )
            )
    if problems:
        raise DefinitionError(problems)
    return tuple(result)


def user_task_spec(task_spec: Any) -> UserTaskSpec:
    """Static metadata of a parsed (or deserialized) user task spec, from its extensions."""
    ext: Mapping[str, Any] = getattr(task_spec, "extensions", None) or {}
    groups = ext.get(EXT_PREFIX + "candidateGroups") or ""
    bpmn_id = task_spec.bpmn_id or task_spec.name
    return UserTaskSpec(
        bpmn_id=bpmn_id,
        name=task_spec.bpmn_name or bpmn_id,
        candidate_roles=tuple(g.strip() for g in groups.split(",") if g.strip()),
        assignee=ext.get(EXT_PREFIX + "assignee") or None,
        due_date=ext.get(EXT_PREFIX + "dueDate") or None,
        unit_field=ext.get("unitField") or DEFAULT_UNIT_FIELD,
        form=_form_fields(bpmn_id, ext.get(EXT_FORM) or []),
        documentation=getattr(task_spec, "documentation", None) or None,
    )


def _all_task_specs(spec: Any, subprocess_specs: Mapping[str, Any]) -> Iterator[Any]:
    yield from spec.task_specs.values()
    for sub in subprocess_specs.values():
        if sub is not None:
            yield from sub.task_specs.values()


def _validation_problem(exc: ValidationException, source: str) -> Problem:
    element = exc.id or None
    where = f"{exc.tag} '{exc.id}'" if exc.id else (exc.tag or "")
    line = f" (line {exc.line_number})" if exc.line_number else ""
    text = str(exc.args[0]) if exc.args else str(exc)
    notes = "; ".join(getattr(exc, "__notes__", []) or [])
    message = f"{where}: {text}{line}" if where else f"{text}{line}"
    if notes:
        message += f" ({notes})"
    return problem(element, message, f"流程定义无效：{message}")


def _unexpected_problem(exc: BaseException, element: str | None, source: str) -> Problem:
    where = f"process '{element}'" if element else source
    message = f"{where}: the BPMN could not be read ({type(exc).__name__}: {exc})"
    return problem(element, message, f"无法读取流程定义 {where}（{type(exc).__name__}: {exc}）")


def parse_definitions(xml: bytes, *, source: str = "<upload>") -> list[Definition]:
    """Parse every executable process of a BPMN file; DefinitionError if none or invalid."""
    try:
        return _parse_definitions(xml, source)
    except DefinitionError as exc:
        exc.source = source
        exc.args = (exc._summary(),)
        raise
    except ValidationException as exc:
        raise DefinitionError([_validation_problem(exc, source)], source=source) from None
    except Exception as exc:  # SpiffWorkflow raises raw KeyError/TypeError on odd input (trap 12)
        raise DefinitionError([_unexpected_problem(exc, None, source)], source=source) from None


def _parse_definitions(xml: bytes, source: str) -> list[Definition]:
    root = _parse_xml(xml, source)
    sha = hashlib.sha256(xml).hexdigest()
    processes = root.xpath("./bpmn:process", namespaces=NSMAP)
    if not processes:
        raise DefinitionError(
            [problem(None, "the file contains no process", "文件中没有流程")], source=source
        )
    problems = _unsupported(root) + _rewrite_timers(root)
    if problems:
        raise DefinitionError(problems, source=source)

    executable = [p for p in processes if p.get("isExecutable", "true") == "true"]
    if not executable:
        raise DefinitionError(
            [
                problem(
                    p.get("id"),
                    f"process {p.get('id')} is not executable",
                    f"流程 {p.get('id')} 未标记为可执行（isExecutable）",
                )
                for p in processes
            ],
            source=source,
        )

    parser = _Parser()
    parser.add_bpmn_xml(root, filename=source)
    definitions: list[Definition] = []
    problems = []
    for process in executable:
        process_id = process.get("id")
        try:
            spec = parser.get_spec(process_id)
            subprocess_specs = parser.get_subprocess_specs(process_id)
            user_tasks = {
                ts.bpmn_id: user_task_spec(ts)
                for ts in _all_task_specs(spec, subprocess_specs)
                if isinstance(ts, UserTask) and ts.bpmn_id
            }
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        except ValidationException as exc:
            problems.append(_validation_problem(exc, source))
            continue
        except SpiffWorkflowException as exc:
            problems.append(_unexpected_problem(exc, process_id, source))
            continue
        except Exception as exc:
            problems.append(_unexpected_problem(exc, process_id, source))
            continue
        definitions.append(
            Definition(
                process_id=process_id,
                name=process.get("name") or process_id,
                sha256=sha,
                xml=bytes(xml),
                user_tasks=MappingProxyType(user_tasks),
                _spec=spec,
                _subprocess_specs=MappingProxyType(dict(subprocess_specs)),
            )
        )
    if problems:
        raise DefinitionError(problems, source=source)
    return definitions


def parse_definition(
    xml: bytes, *, source: str = "<upload>", process_id: str | None = None
) -> Definition:
    """Parse exactly one process: the given id, or the file's only executable process."""
    definitions = parse_definitions(xml, source=source)
    if process_id is not None:
        for definition in definitions:
            if definition.process_id == process_id:
                return definition
        raise DefinitionError(
            [
                problem(
                    process_id,
                    f"no executable process '{process_id}' in the file "
                    f"(found: {', '.join(d.process_id for d in definitions)})",
                    f"文件中没有可执行流程 '{process_id}'",
                )
            ],
            source=source,
        )
    if len(definitions) != 1:
        ids = ", ".join(d.process_id for d in definitions)
        raise DefinitionError(
            [
                problem(
                    None,
                    f"the file has {len(definitions)} executable processes ({ids}); name one",
                    f"文件包含 {len(definitions)} 个可执行流程（{ids}），请指定其一",
                )
            ],
            source=source,
        )
    return definitions[0]


def lint_definition(definition: Definition) -> list[Problem]:
    """Advisory checks: refused expressions, exclusive-gateway flows with no condition."""
    root = _parse_xml(definition.xml, definition.process_id)
    problems: list[Problem] = []
    process = root.xpath("./bpmn:process[@id=$pid]", namespaces=NSMAP, pid=definition.process_id)
    if not process:
        return problems
    flows = {f.get("id"): f for f in process[0].iter(f"{{{BPMN_NS}}}sequenceFlow")}
    for gateway in process[0].iter(f"{{{BPMN_NS}}}exclusiveGateway"):
        outgoing = [f for f in flows.values() if f.get("sourceRef") == gateway.get("id")]
        if len(outgoing) < 2:
            continue
        for flow in outgoing:
            condition = flow.find(f"{{{BPMN_NS}}}conditionExpression")
            if flow.get("id") != gateway.get("default") and (
                condition is None or not (condition.text or "").strip()
            ):
                problems.append(
                    problem(
                        flow.get("id"),
                        f"flow '{flow.get('id')}' leaves gateway '{gateway.get('id')}' "
                        "with no condition and is not the default",
                        f"顺序流 '{flow.get('id')}' 从网关 '{gateway.get('id')}' 流出，"
                        "既无条件也不是默认流",
                    )
                )
    for condition in process[0].iter(f"{{{BPMN_NS}}}conditionExpression"):
        text = (condition.text or "").strip()
        error = sandbox.check_source(text) if text else None
        if error:
            flow_id = condition.getparent().get("id")
            problems.append(
                problem(
                    flow_id,
                    f"condition refused: {error}",
                    f"条件表达式不被允许：{error}",
                )
            )
    for script in process[0].iter(f"{{{BPMN_NS}}}script"):
        error = sandbox.check_source(script.text or "", mode="exec")
        if error:
            task_id = script.getparent().get("id")
            problems.append(problem(task_id, f"script refused: {error}", f"脚本不被允许：{error}"))
    return problems
