"""Case types as data (issue 11): a YAML file beside the BPMN says what code used to say.

A case type is its process, its intake form, its deadline rules (DOMAIN.md §2: length in
days or working days from a business-date field, extension with a maximum, clock restart
on correction, excluded periods), redirect rules (close the case as redirected and open a
case of another type), its KPI mapping and its number prefix. `parse_case_type` validates
a file into a CaseTypeSpec; `DataCaseHooks` runs it through the generic task cycle;
`DataCaseTypeStore` serves deployed versions (table `case_type_definitions`) to the case
type registry so deployments survive restarts; a reports section computes the declared
KPIs with SQL. The format is documented in workflows/README.casetype.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from datetime import time as dtime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import marshmallow
import yaml
from sqlalchemy import Engine, and_, func, select

from engine.clock import LOCAL_TZ
from engine.domain.calendar import DueDate, WorkingCalendar
from engine.domain.deadlines import (
    ALL_RULES,
    DeadlineRule,
    RuleViolation,
    check_business_date,
    compute_due,
)
from engine.domain.kpi import Ratio
from engine.errors import NotFoundError, ValidationError
from engine.persistence.db import UnitOfWork
from engine.persistence.models import Case, CaseTypeDefinition, Deadline, Task, Unit
from engine.services.case_types import CaseType, CaseTypeRegistry, HookContext
from engine.services.petition_counts import RESERVED_KINDS
from engine.services.reports import Figure, Period, register_labels, register_section
from engine.workflow import (
    Definition,
    FormField,
    HumanTask,
    Snapshot,
    check_expression,
    evaluate_condition,
    form_schema,
    json_schema,
)
from engine.workflow.forms import FIELD_TYPES

if TYPE_CHECKING:
    from engine.bootstrap import Services

log = logging.getLogger(__name__)

FORMAT = "fengqiao.case-type/1"
MAX_CASE_TYPE_BYTES = 256 * 1024
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,49}$")
PREFIX_RE = re.compile(r"^[A-Z]{1,6}$")
FIELD_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
KPI_RE = re.compile(r"^[a-z][a-z0-9_]{1,59}$")
ACTIONS = ("start", "restart", "set", "extend", "exclude", "meet", "drop")
UNITS = ("days", "working_days")
KPI_KINDS = ("count", "ratio", "deadline_rate")
STATUSES = ("running", "waiting", "completed", "cancelled", "error")


# -- the format ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadlineAction:
    """What happens to a deadline when a case starts or a task completes (optionally `when`)."""

    action: str
    task: str | None  # None: when the case starts
    when: str | None = None
    date_field: str | None = None  # start/restart/meet: the business date
    from_field: str | None = None  # exclude: first day of the excluded period
    to_field: str | None = None  # exclude: last day
    days_field: str | None = None  # extend: how many days/working days
    max_days: int | None = None  # extend: legal maximum
    max_times: int | None = None  # extend: how often


@dataclass(frozen=True)
class DeadlineSpec:
    """One deadline rule of a case type, with the events that set, move and meet it."""

    kind: str
    length: int | None
    unit: str
    counted_from: str
    source: str
    label_zh: str
    label_en: str
    setting: str | None
    setting_key_field: str | None
    tasks: tuple[str, ...]
    on: tuple[DeadlineAction, ...]

    def rule(self) -> DeadlineRule:
        """This deadline as an engine.domain rule (for compute_due)."""
        return DeadlineRule(
            kind=self.kind,
            length=self.length,
            unit="working_days" if self.unit == "working_days" else "days",
            counted_from=self.counted_from,
            source=self.source,
            label_zh=self.label_zh,
            label_en=self.label_en,
            setting=self.setting,
        )


@dataclass(frozen=True)
class RedirectSpec:
    """Close the case as redirected (e.g. a petition dressed up as a disclosure request)."""

    task: str
    when: str
    outcome: str
    drop_deadlines: tuple[str, ...]
    open_case_type: str | None
    open_case_data: Mapping[str, str]
    open_case_title_field: str | None
    optional: bool


@dataclass(frozen=True)
class KpiSpec:
    """One KPI computed from this case type's cases: a count, a ratio or a deadline rate."""

    key: str
    label_zh: str
    label_en: str
    kind: str
    date_field: str | None
    where: Mapping[str, tuple[str, ...]]
    numerator: Mapping[str, tuple[str, ...]]
    deadline: str | None


@dataclass(frozen=True)
class CaseTypeSpec:
    """A validated case-type file."""

    name: str
    process_id: str
    prefix: str
    label_zh: str
    label_en: str
    title_field: str | None
    intake_form: tuple[FormField, ...]
    deadlines: tuple[DeadlineSpec, ...]
    redirects: tuple[RedirectSpec, ...]
    kpis: tuple[KpiSpec, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    def deadline(self, kind: str) -> DeadlineSpec | None:
        """The deadline of that kind."""
        return next((d for d in self.deadlines if d.kind == kind), None)


class _Problems:
    """Collects problems as {path: [en, zh]} (the 422 `errors` shape)."""

    def __init__(self, prefix: str = "") -> None:
        self.items: dict[str, list[str]] = {}
        self.prefix = prefix

    def add(self, path: str, en: str, zh: str) -> None:
        key = f"{self.prefix}{path}"
        self.items.setdefault(key, []).extend([en, zh])

    def __bool__(self) -> bool:
        return bool(self.items)


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors/aliases: an alias bomb is never expanded."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.constructor.ConstructorError(
                None, None, "aliases are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


def load_case_type_file(text: bytes, *, filename: str) -> dict[str, Any]:
    """Read a case-type YAML (or JSON) file into a mapping; ValidationError if unreadable."""
    if len(text) > MAX_CASE_TYPE_BYTES:
        raise ValidationError(
            f"{filename}: file too large",
            {filename: [f"larger than {MAX_CASE_TYPE_BYTES // 1024} KB", "文件过大"]},
        )
    try:
        raw = yaml.load(text.decode("utf-8"), Loader=_NoAliasLoader)  # noqa: S506 - SafeLoader
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValidationError(
            f"{filename}: not valid YAML",
            {filename: [f"not valid YAML: {message}", f"不是有效的 YAML：{message}"]},
        ) from None
    if not isinstance(raw, dict):
        raise ValidationError(
            f"{filename}: not a case type",
            {filename: ["a case type file must be a mapping", "案件类型文件必须是键值映射"]},
        )
    return raw


def _label(raw: Any, path: str, problems: _Problems) -> tuple[str, str]:
    if isinstance(raw, str) and raw.strip():
        return raw, raw
    if isinstance(raw, dict):
        zh, en = raw.get("zh"), raw.get("en")
        if isinstance(zh, str) and zh.strip() and isinstance(en, str) and en.strip():
            return zh, en
    problems.add(path, "give a label as {zh: ..., en: ...}", "请以 {zh: ..., en: ...} 形式填写名称")
    return "", ""


def _opt_str(raw: Mapping[str, Any], key: str, path: str, problems: _Problems) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.add(f"{path}.{key}", "must be a non-empty text", "必须是非空文本")
        return None
    return value.strip()


def _opt_int(
    raw: Mapping[str, Any], key: str, path: str, problems: _Problems, *, low: int = 0
) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        problems.add(
            f"{path}.{key}", f"must be a whole number ≥ {low}", f"必须是不小于 {low} 的整数"
        )
        return None
    return value


def _field_name(
    raw: Mapping[str, Any], key: str, path: str, problems: _Problems, *, required: bool = False
) -> str | None:
    value = _opt_str(raw, key, path, problems)
    if value is None:
        if required:
            problems.add(f"{path}.{key}", "is required", "必填")
        return None
    if not FIELD_RE.match(value):
        problems.add(
            f"{path}.{key}",
            f"'{value}' is not a field name (lower case letters, digits, _)",
            f"'{value}' 不是有效的字段名（小写字母、数字、下划线）",
        )
        return None
    return value


def _condition(raw: Mapping[str, Any], path: str, problems: _Problems) -> str | None:
    text = _opt_str(raw, "when", path, problems)
    if text is None:
        return None
    error = check_expression(text)
    if error is not None:
        problems.add(f"{path}.when", f"condition refused: {error}", f"条件表达式不被允许：{error}")
        return None
    return text


def _intake_form(raw: Any, problems: _Problems) -> tuple[FormField, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add("intake_form", "must be a list of fields", "必须是字段列表")
        return ()
    fields: list[FormField] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        path = f"intake_form[{i}]"
        if not isinstance(item, dict):
            problems.add(path, "must be a mapping", "必须是键值映射")
            continue
        field_id = _field_name(item, "id", path, problems, required=True)
        if field_id is None:
            continue
        if field_id in seen:
            problems.add(path, f"duplicate field '{field_id}'", f"字段 '{field_id}' 重复")
            continue
        seen.add(field_id)
        kind = item.get("type", "string")
        if kind not in FIELD_TYPES:
            problems.add(
                f"{path}.type",
                f"type '{kind}' is not one of {', '.join(FIELD_TYPES)}",
                f"类型 '{kind}' 不受支持",
            )
            continue
        values = item.get("values") or {}
        if kind == "enum" and (not isinstance(values, dict) or not values):
            problems.add(f"{path}.values", "an enum needs values {id: label}", "枚举字段需要选项")
            continue
        label_zh, _label_en = _label(item.get("label", field_id), f"{path}.label", problems)
        fields.append(
            FormField(
                id=field_id,
                label=label_zh or field_id,
                type=str(kind),
                required=bool(item.get("required", False)),
                enum=tuple((str(k), str(v)) for k, v in values.items()) if kind == "enum" else (),
                minlength=_opt_int(item, "minlength", path, problems),
                maxlength=_opt_int(item, "maxlength", path, problems),
                min=_opt_int(item, "min", path, problems, low=-(10**12)),
                max=_opt_int(item, "max", path, problems, low=-(10**12)),
            )
        )
    return tuple(fields)


def _actions(raw: Any, path: str, problems: _Problems) -> tuple[DeadlineAction, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add(path, "must be a list of events", "必须是事件列表")
        return ()
    out: list[DeadlineAction] = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            problems.add(where, "must be a mapping", "必须是键值映射")
            continue
        action = item.get("action")
        if action not in ACTIONS:
            problems.add(
                f"{where}.action",
                f"action must be one of {', '.join(ACTIONS)}",
                f"动作必须是 {', '.join(ACTIONS)} 之一",
            )
            continue
        task = _opt_str(item, "task", where, problems)
        event = item.get("event")
        if task is None and event != "started":
            problems.add(
                where,
                "say when: task: <user task id> or event: started",
                "请指明触发时机：task: <用户任务 id> 或 event: started",
            )
            continue
        if task is not None and event is not None:
            problems.add(where, "give either task or event, not both", "task 与 event 只能二选一")
            continue
        spec = DeadlineAction(
            action=str(action),
            task=task,
            when=_condition(item, where, problems),
            date_field=_field_name(item, "date_field", where, problems),
            from_field=_field_name(item, "from_field", where, problems),
            to_field=_field_name(item, "to_field", where, problems),
            days_field=_field_name(item, "days_field", where, problems),
            max_days=_opt_int(item, "max_days", where, problems, low=1),
            max_times=_opt_int(item, "max_times", where, problems, low=1),
        )
        needs = {
            "restart": ("date_field",),
            "set": ("date_field",),
            "meet": ("date_field",),
            "exclude": ("from_field", "to_field"),
            "extend": ("days_field", "max_days"),
        }.get(spec.action, ())
        missing = [n for n in needs if getattr(spec, n) is None]
        for name in missing:
            problems.add(
                f"{where}.{name}",
                f"action '{spec.action}' needs {name}",
                f"动作 '{spec.action}' 需要 {name}",
            )
        if not missing:
            out.append(spec)
    return tuple(out)


def _deadlines(raw: Any, problems: _Problems) -> tuple[DeadlineSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add("deadlines", "must be a list", "必须是列表")
        return ()
    out: list[DeadlineSpec] = []
    kinds: set[str] = set()
    for i, item in enumerate(raw):
        path = f"deadlines[{i}]"
        if not isinstance(item, dict):
            problems.add(path, "must be a mapping", "必须是键值映射")
            continue
        for key in item:
            if key not in _DEADLINE_KEYS:
                problems.add(f"{path}.{key}", f"unknown key '{key}'", f"未知的键 '{key}'")
        base: DeadlineRule | None = None
        rule_name = item.get("rule")
        if rule_name is not None:
            base = ALL_RULES.get(str(rule_name))
            if base is None:
                problems.add(
                    f"{path}.rule",
                    f"no statutory rule '{rule_name}' (known: {', '.join(sorted(ALL_RULES))})",
                    f"没有名为 '{rule_name}' 的法定期限规则",
                )
                continue
        kind = _field_name(item, "kind", path, problems) or (base.kind if base else None)
        if kind is None:
            problems.add(f"{path}.kind", "is required", "必填")
            continue
        if kind in kinds:
            problems.add(f"{path}.kind", f"duplicate deadline '{kind}'", f"期限 '{kind}' 重复")
            continue
        if kind in RESERVED_KINDS:
            problems.add(
                f"{path}.kind",
                f"deadline kind '{kind}' is reserved for petitions (their KPIs count it); "
                "give this deadline a kind of its own",
                f"期限类型 '{kind}' 为信访件专用（其统计口径按此计算），请另起名称",
            )
            continue
        kinds.add(kind)
        length = _opt_int(item, "length", path, problems, low=1)
        if length is None and base is not None:
            length = base.length
        unit = item.get("unit", base.unit if base else "days")
        if unit not in UNITS:
            problems.add(
                f"{path}.unit",
                "unit must be days or working_days",
                "单位必须是 days 或 working_days",
            )
            continue
        counted_from = _field_name(item, "counted_from", path, problems) or (
            base.counted_from if base else None
        )
        source = _opt_str(item, "source", path, problems) or (base.source if base else None)
        if counted_from is None:
            problems.add(f"{path}.counted_from", "is required", "必填（起算日期字段）")
            continue
        if source is None:
            problems.add(
                f"{path}.source",
                "every deadline cites its source (law article, setting or practice)",
                "每个期限都必须注明依据（法规条款、设置或惯例）",
            )
            continue
        if "label" in item:
            label_zh, label_en = _label(item["label"], f"{path}.label", problems)
        elif base is not None:
            label_zh, label_en = base.label_zh, base.label_en
        else:
            label_zh, label_en = _label(None, f"{path}.label", problems)
        setting = _opt_str(item, "setting", path, problems) or (base.setting if base else None)
        if length is None and setting is None:
            problems.add(
                f"{path}.length", "give a length or a setting", "请填写期限长度或对应的设置项"
            )
            continue
        tasks_raw = item.get("tasks", [])
        if not isinstance(tasks_raw, list) or not all(isinstance(t, str) for t in tasks_raw):
            problems.add(
                f"{path}.tasks", "must be a list of user task ids", "必须是用户任务 id 列表"
            )
            tasks_raw = []
        out.append(
            DeadlineSpec(
                kind=kind,
                length=length,
                unit=str(unit),
                counted_from=counted_from,
                source=source[:100],
                label_zh=label_zh,
                label_en=label_en,
                setting=setting,
                setting_key_field=_field_name(item, "setting_key_field", path, problems),
                tasks=tuple(tasks_raw),
                on=_actions(item.get("events"), f"{path}.events", problems),
            )
        )
    return tuple(out)


def _redirects(raw: Any, problems: _Problems) -> tuple[RedirectSpec, ...]:
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out: list[RedirectSpec] = []
    for i, item in enumerate(items):
        path = f"redirects[{i}]"
        if not isinstance(item, dict):
            problems.add(path, "must be a mapping", "必须是键值映射")
            continue
        task = _opt_str(item, "task", path, problems)
        when = _condition(item, path, problems)
        if task is None or when is None:
            problems.add(path, "a redirect needs task and when", "转办规则需要 task 和 when")
            continue
        target = item.get("open_case") or {}
        if not isinstance(target, dict):
            problems.add(f"{path}.open_case", "must be a mapping", "必须是键值映射")
            continue
        mapping = target.get("data") or {}
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
        ):
            problems.add(
                f"{path}.open_case.data",
                "must map target fields to source fields",
                "必须是“目标字段: 来源字段”的映射",
            )
            mapping = {}
        drops = item.get("drop_deadlines", [])
        if not isinstance(drops, list):
            problems.add(f"{path}.drop_deadlines", "must be a list", "必须是列表")
            drops = []
        out.append(
            RedirectSpec(
                task=task,
                when=when,
                outcome=_opt_str(item, "outcome", path, problems) or "redirected",
                drop_deadlines=tuple(str(d) for d in drops),
                open_case_type=_opt_str(target, "case_type", f"{path}.open_case", problems),
                open_case_data=MappingProxyType(dict(mapping)),
                open_case_title_field=_field_name(
                    target, "title_field", f"{path}.open_case", problems
                ),
                optional=bool(target.get("optional", False)),
            )
        )
    return tuple(out)


def _where(raw: Any, path: str, problems: _Problems) -> Mapping[str, tuple[str, ...]]:
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, dict):
        problems.add(
            path, "must map fields to a value or a list of values", "必须是“字段: 取值”的映射"
        )
        return MappingProxyType({})
    out: dict[str, tuple[str, ...]] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not (key == "status" or FIELD_RE.match(key)):
            problems.add(f"{path}.{key}", "not a field name", "不是有效的字段名")
            continue
        values = value if isinstance(value, list) else [value]
        if not values or not all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in values
        ):
            problems.add(f"{path}.{key}", "values must be texts", "取值必须是文本")
            continue
        if key == "status" and not set(map(str, values)) <= set(STATUSES):
            problems.add(f"{path}.{key}", f"status is one of {', '.join(STATUSES)}", "状态取值无效")
            continue
        out[key] = tuple(str(v) for v in values)
    return MappingProxyType(out)


def _kpis(raw: Any, deadline_kinds: set[str], problems: _Problems) -> tuple[KpiSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add("kpis", "must be a list", "必须是列表")
        return ()
    out: list[KpiSpec] = []
    keys: set[str] = set()
    for i, item in enumerate(raw):
        path = f"kpis[{i}]"
        if not isinstance(item, dict):
            problems.add(path, "must be a mapping", "必须是键值映射")
            continue
        key = _opt_str(item, "key", path, problems)
        if key is None or not KPI_RE.match(key) or key in keys:
            problems.add(
                f"{path}.key", "a unique key (lower case, digits, _)", "需要唯一的指标键名"
            )
            continue
        keys.add(key)
        kind = item.get("kind")
        if kind not in KPI_KINDS:
            problems.add(f"{path}.kind", f"kind is one of {', '.join(KPI_KINDS)}", "指标类型无效")
            continue
        label_zh, label_en = _label(item.get("label"), f"{path}.label", problems)
        deadline = _opt_str(item, "deadline", path, problems)
        if kind == "deadline_rate" and deadline not in deadline_kinds:
            problems.add(
                f"{path}.deadline",
                f"name one of this case type's deadlines ({', '.join(sorted(deadline_kinds))})",
                "请填写本案件类型的期限之一",
            )
            continue
        numerator = _where(item.get("numerator"), f"{path}.numerator", problems)
        if kind == "ratio" and not numerator:
            problems.add(
                f"{path}.numerator", "a ratio needs a numerator filter", "比率指标需要分子条件"
            )
            continue
        out.append(
            KpiSpec(
                key=key,
                label_zh=label_zh,
                label_en=label_en,
                kind=str(kind),
                date_field=_field_name(item, "date_field", path, problems),
                where=_where(item.get("where"), f"{path}.where", problems),
                numerator=numerator,
                deadline=deadline,
            )
        )
    return tuple(out)


_DEADLINE_KEYS = frozenset(
    {
        "kind",
        "rule",
        "length",
        "unit",
        "counted_from",
        "source",
        "label",
        "setting",
        "setting_key_field",
        "tasks",
        "events",
    }
)
_KNOWN_KEYS = frozenset(
    {
        "format",
        "name",
        "process",
        "prefix",
        "label",
        "title_field",
        "intake_form",
        "deadlines",
        "redirects",
        "kpis",
        "description",
    }
)


def parse_case_type(raw: Mapping[str, Any], *, filename: str = "casetype.yaml") -> CaseTypeSpec:
    """Validate a case-type mapping; ValidationError lists every problem by path (en, zh)."""
    problems = _Problems(prefix=f"{filename}:")
    fmt = raw.get("format", FORMAT)
    if fmt != FORMAT:
        problems.add(
            "format", f"unsupported format '{fmt}' (use {FORMAT})", f"不支持的格式 '{fmt}'"
        )
    for key in raw:
        if key not in _KNOWN_KEYS:
            problems.add(str(key), f"unknown key '{key}'", f"未知的键 '{key}'")
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.add(
            "name",
            "a name of lower case letters, digits and _",
            "名称须由小写字母、数字和下划线组成",
        )
        name = ""
    process = raw.get("process", name)
    if not isinstance(process, str) or not process:
        problems.add("process", "the BPMN process id is required", "必须填写 BPMN 流程 id")
        process = ""
    prefix = raw.get("prefix")
    if not isinstance(prefix, str) or not PREFIX_RE.match(prefix):
        problems.add(
            "prefix", "a number prefix of 1-6 capital letters", "案件编号前缀须为 1-6 个大写字母"
        )
        prefix = ""
    label_zh, label_en = _label(raw.get("label"), "label", problems)
    title_field = _field_name(raw, "title_field", "", problems)
    intake = _intake_form(raw.get("intake_form"), problems)
    deadlines = _deadlines(raw.get("deadlines"), problems)
    redirects = _redirects(raw.get("redirects"), problems)
    kpis = _kpis(raw.get("kpis"), {d.kind for d in deadlines}, problems)
    if problems:
        raise ValidationError(f"{filename}: the case type has errors", problems.items)
    return CaseTypeSpec(
        name=str(name),
        process_id=str(process),
        prefix=str(prefix),
        label_zh=label_zh,
        label_en=label_en,
        title_field=title_field,
        intake_form=intake,
        deadlines=deadlines,
        redirects=redirects,
        kpis=kpis,
        raw=MappingProxyType(dict(raw)),
    )


def check_against_process(spec: CaseTypeSpec, definition: Definition, *, filename: str) -> None:
    """Every task and field the case type names exists in its process (422 otherwise)."""
    problems = _Problems(prefix=f"{filename}:")
    tasks = definition.user_tasks
    known_fields = {f.id for f in spec.intake_form}
    for meta in tasks.values():
        known_fields.update(f.id for f in meta.form)

    def need_task(task: str | None, path: str) -> None:
        if task is not None and task not in tasks:
            problems.add(
                path,
                f"'{task}' is not a user task of process '{definition.process_id}'",
                f"'{task}' 不是流程 '{definition.process_id}' 的用户任务",
            )

    def need_field(name: str | None, path: str) -> None:
        if name is not None and name not in known_fields:
            problems.add(
                path,
                f"field '{name}' is in no form of this case type",
                f"字段 '{name}' 不在本案件类型的任何表单中",
            )

    for i, deadline in enumerate(spec.deadlines):
        need_field(deadline.counted_from, f"deadlines[{i}].counted_from")
        for task in deadline.tasks:
            need_task(task, f"deadlines[{i}].tasks")
        for j, action in enumerate(deadline.on):
            where = f"deadlines[{i}].events[{j}]"
            need_task(action.task, f"{where}.task")
            for attr in ("date_field", "from_field", "to_field", "days_field"):
                need_field(getattr(action, attr), f"{where}.{attr}")
    for i, redirect in enumerate(spec.redirects):
        need_task(redirect.task, f"redirects[{i}].task")
        for target, source in redirect.open_case_data.items():
            need_field(source, f"redirects[{i}].open_case.data.{target}")
    for i, kpi in enumerate(spec.kpis):
        need_field(kpi.date_field, f"kpis[{i}].date_field")
    if problems:
        raise ValidationError(f"{filename}: the case type does not fit its process", problems.items)


# -- the generic hooks -----------------------------------------------------------------------


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.astimezone(LOCAL_TZ).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _end_of_day(day: date) -> datetime:
    return datetime.combine(day, dtime(23, 59, 59), LOCAL_TZ).astimezone(UTC)


def _truthy(expression: str | None, data: Mapping[str, Any], element: str) -> bool:
    if expression is None:
        return True
    try:
        return bool(evaluate_condition(expression, data, element=element))
    except Exception:
        return False  # a condition on data the case does not have yet is simply not met


def _violation(exc: RuleViolation, lang: str) -> ValidationError:
    return ValidationError(exc.message(lang), {exc.field: [exc.message(lang)]})


class DataCaseHooks:
    """CaseHooks driven by a CaseTypeSpec: intake check, deadlines, redirects."""

    def __init__(self, spec: CaseTypeSpec) -> None:
        self.spec = spec

    # intake -------------------------------------------------------------------------------

    def validate_intake(self, data: Mapping[str, Any], *, today: date, lang: str = "zh") -> None:
        """The intake form's rules on the data a case starts with (422 naming each field)."""
        if not self.spec.intake_form:
            return
        ids = {f.id for f in self.spec.intake_form}
        subset = {k: v for k, v in data.items() if k in ids and v is not None}
        try:
            form_schema(self.spec.intake_form)().load(subset)
        except marshmallow.ValidationError as exc:
            errors = exc.messages if isinstance(exc.messages, dict) else {"data": exc.messages}
            raise ValidationError("the intake form has errors", errors) from exc
        for spec in self.spec.intake_form:
            if spec.type == "date" and subset.get(spec.id):
                day = _as_date(subset[spec.id])
                if day is not None:
                    try:
                        check_business_date(day, today=today, not_before=None, field=spec.id)
                    except RuleViolation as exc:
                        raise _violation(exc, lang) from exc

    # CaseHooks ------------------------------------------------------------------------------

    def before_complete(
        self, ctx: HookContext, case: Case, task: Task, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Check the business dates and extension limits this task's deadline events use."""
        merged = {**(case.data or {}), **data}
        today = ctx.now.astimezone(LOCAL_TZ).date()
        lang = "en" if ctx.actor.language.startswith("en") else "zh"
        extras: dict[str, Any] = {}
        for deadline in self.spec.deadlines:
            start = _as_date(merged.get(deadline.counted_from))
            for action in self._triggered(deadline, task.bpmn_id, merged):
                for name in (action.date_field, action.from_field, action.to_field):
                    if name is None or action.action in ("start", "set"):
                        continue  # start/set dates may lie ahead (e.g. a rectification period)
                    day = _as_date(merged.get(name))
                    if day is None:
                        msg = ("Enter this date.", "请填写该日期。")
                        raise ValidationError(msg[0], {name: [msg[1] if lang == "zh" else msg[0]]})
                    try:
                        check_business_date(day, today=today, not_before=start, field=name)
                    except RuleViolation as exc:
                        raise _violation(exc, lang) from exc
                if action.action == "exclude":
                    first = _as_date(merged.get(action.from_field or ""))
                    last = _as_date(merged.get(action.to_field or ""))
                    if first and last and last < first:
                        en = f"{action.to_field} is before {action.from_field}"
                        zh = f"{action.to_field} 早于 {action.from_field}"
                        raise ValidationError(
                            en, {action.to_field or "": [zh if lang == "zh" else en]}
                        )
                if action.action == "extend":
                    extras.update(self._check_extension(deadline, action, case, merged, lang))
        return extras

    def _check_extension(
        self,
        deadline: DeadlineSpec,
        action: DeadlineAction,
        case: Case,
        merged: Mapping[str, Any],
        lang: str,
    ) -> dict[str, Any]:
        name = action.days_field or ""
        raw = merged.get(name)
        days = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        limit = action.max_days or 0
        unit_en = "working days" if deadline.unit == "working_days" else "days"
        unit_zh = "个工作日" if deadline.unit == "working_days" else "日"
        if days is None or not 1 <= days <= limit:
            en = f"an extension is 1 to {limit} {unit_en} ({deadline.source})"
            zh = f"延长期限应为 1 至 {limit}{unit_zh}（{deadline.source}）"
            raise ValidationError(en, {name: [zh if lang == "zh" else en]})
        counter = f"{deadline.kind}_extensions"
        times = int((case.data or {}).get(counter) or 0)
        if action.max_times is not None and times >= action.max_times:
            en = f"'{deadline.label_en}' can be extended only {action.max_times} time(s)"
            zh = f"“{deadline.label_zh}”最多只能延长 {action.max_times} 次"
            raise ValidationError(en, {name: [zh if lang == "zh" else en]})
        return {counter: times + 1}

    def after_complete(
        self, ctx: HookContext, case: Case, task: Task, data: Mapping[str, Any], snapshot: Snapshot
    ) -> None:
        """Set, move, meet or drop deadlines; redirect; keep open tasks' due times in step."""
        merged = {**(case.data or {}), **data}
        calendar: WorkingCalendar | None = None
        for deadline in self.spec.deadlines:
            for action in self._triggered(deadline, task.bpmn_id, merged):
                if calendar is None:
                    from engine.services.calendar import load_calendar

                    calendar = load_calendar(ctx.uow)
                self._apply(ctx, case, deadline, action, merged, calendar)
        for redirect in self.spec.redirects:
            if redirect.task == task.bpmn_id and _truthy(
                redirect.when, merged, f"redirect on '{task.bpmn_id}'"
            ):
                self._redirect(ctx, case, redirect, merged)
        self._refresh_task_dues(ctx, case)

    def task_due(self, ctx: HookContext, case: Case, task: HumanTask) -> datetime | None:
        """A task governed by a deadline is due at the end of its due day; else its BPMN due."""
        if case.audit_seq <= 1:
            # The first tasks of a new case (only 'case.started' is on its trail): check the
            # intake and start its deadlines. Idempotent when several tasks open at once.
            self._on_start(ctx, case)
        due = self._deadline_due(ctx.uow, case, task.bpmn_id)
        return due if due is not None else task.due_at

    # internals ------------------------------------------------------------------------------

    def _triggered(
        self, deadline: DeadlineSpec, bpmn_id: str | None, data: Mapping[str, Any]
    ) -> list[DeadlineAction]:
        return [
            a
            for a in deadline.on
            if a.task is not None
            and a.task == bpmn_id
            and _truthy(a.when, data, f"deadline '{deadline.kind}' on '{bpmn_id}'")
        ]

    def _on_start(self, ctx: HookContext, case: Case) -> None:
        data = case.data or {}
        lang = "en" if ctx.actor.language.startswith("en") else "zh"
        self.validate_intake(data, today=ctx.now.astimezone(LOCAL_TZ).date(), lang=lang)
        if self.spec.title_field and not case.title and data.get(self.spec.title_field):
            case.title = str(data[self.spec.title_field])[:300]
        from engine.services.calendar import load_calendar

        calendar: WorkingCalendar | None = None
        for deadline in self.spec.deadlines:
            for action in deadline.on:
                if action.task is None and _truthy(
                    action.when, data, f"deadline '{deadline.kind}'"
                ):
                    calendar = calendar or load_calendar(ctx.uow)
                    self._apply(ctx, case, deadline, action, data, calendar)
        ctx.uow.session.flush()

    def _length(self, ctx: HookContext, deadline: DeadlineSpec, data: Mapping[str, Any]) -> int:
        if deadline.setting:
            from engine.services.settings import get_setting

            try:
                value = get_setting(ctx.uow, deadline.setting)
            except NotFoundError:  # a setting this installation does not define
                value = None
            if isinstance(value, dict) and deadline.setting_key_field:
                value = value.get(str(data.get(deadline.setting_key_field)))
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        if deadline.length is None:
            raise ValidationError(
                f"no length for deadline '{deadline.kind}'",
                {deadline.kind: [f"“{deadline.label_zh}”没有可用的期限长度"]},
            )
        return deadline.length

    def _apply(
        self,
        ctx: HookContext,
        case: Case,
        deadline: DeadlineSpec,
        action: DeadlineAction,
        data: Mapping[str, Any],
        calendar: WorkingCalendar,
    ) -> None:
        from engine.services.deadlines import drop_deadline, meet_deadline, set_deadline

        uow = ctx.uow
        row = uow.session.scalars(
            select(Deadline).where(Deadline.case_id == case.id, Deadline.kind == deadline.kind)
        ).first()
        if action.action in ("start", "restart"):
            start = _as_date(data.get(action.date_field or deadline.counted_from))
            if start is None:
                return
            due = compute_due(
                deadline.rule(), start, calendar, length_override=self._length(ctx, deadline, data)
            )
            if row is not None and row.met_on is not None:
                row.met_on = None  # a restarted clock is pending again
            set_deadline(uow, case, deadline.kind, due, source=deadline.source)
        elif action.action == "set":
            due_on = _as_date(data.get(action.date_field or ""))
            if due_on is None:
                return
            if row is not None and row.met_on is not None:
                row.met_on = None
            set_deadline(
                uow,
                case,
                deadline.kind,
                DueDate(due_on, not calendar.is_verified(due_on)),
                source=deadline.source,
            )
        elif action.action == "extend" and row is not None:
            days = int(data.get(action.days_field or "") or 0)
            due = self._add(calendar, deadline, row.due_on, days)
            set_deadline(uow, case, deadline.kind, due, source=deadline.source)
        elif action.action == "exclude" and row is not None:
            first = _as_date(data.get(action.from_field or ""))
            last = _as_date(data.get(action.to_field or ""))
            if first is None or last is None or last < first:
                return
            if deadline.unit == "working_days":
                # The period's working days, both ends included, are not counted.
                days = calendar.working_days_between(first, last) + int(
                    calendar.is_working_day(first)
                )
            else:
                days = (last - first).days + 1
            due = self._add(calendar, deadline, row.due_on, days)
            set_deadline(uow, case, deadline.kind, due, source=deadline.source)
        elif action.action == "meet":
            met_on = _as_date(data.get(action.date_field or ""))
            if met_on is not None:
                meet_deadline(uow, case, deadline.kind, met_on)
        elif action.action == "drop":
            drop_deadline(uow, case, deadline.kind)
        uow.session.flush()

    @staticmethod
    def _add(calendar: WorkingCalendar, deadline: DeadlineSpec, due_on: date, days: int) -> DueDate:
        if days <= 0:
            return DueDate(due_on, not calendar.is_verified(due_on))
        if deadline.unit == "working_days":
            return calendar.add_working_days(due_on, days)
        return calendar.add_calendar_days(due_on, days)

    def _deadline_due(self, uow: UnitOfWork, case: Case, bpmn_id: str) -> datetime | None:
        kinds = [d.kind for d in self.spec.deadlines if bpmn_id in d.tasks]
        if not kinds or case.id is None:
            return None
        due_on = uow.session.scalar(
            select(func.min(Deadline.due_on)).where(
                Deadline.case_id == case.id,
                Deadline.kind.in_(kinds),
                Deadline.met_on.is_(None),
            )
        )
        return _end_of_day(due_on) if due_on is not None else None

    def _refresh_task_dues(self, ctx: HookContext, case: Case) -> None:
        governed = {t for d in self.spec.deadlines for t in d.tasks}
        if not governed:
            return
        for row in ctx.uow.session.scalars(
            select(Task).where(
                Task.case_id == case.id, Task.status == "open", Task.bpmn_id.in_(governed)
            )
        ):
            due = self._deadline_due(ctx.uow, case, row.bpmn_id)
            if due is not None:
                row.due_at = due

    def _redirect(
        self, ctx: HookContext, case: Case, redirect: RedirectSpec, data: Mapping[str, Any]
    ) -> None:
        from engine.services.audit import record_case_event
        from engine.services.deadlines import drop_deadline

        for kind in redirect.drop_deadlines:
            drop_deadline(ctx.uow, case, kind)
        detail: dict[str, Any] = {"outcome": redirect.outcome}
        if redirect.open_case_type:
            child = self._open_child(ctx, case, redirect, data)
            if child is None:
                detail["open_case"] = None
                detail["note"] = f"case type '{redirect.open_case_type}' is not deployed"
            else:
                detail.update(
                    child_case_id=child.id,
                    child_case_no=child.case_no,
                    child_case_type=child.case_type,
                )
        record_case_event(
            ctx.uow, case, "case.redirected", actor_id=ctx.actor.user_id, at=ctx.now, detail=detail
        )

    def _open_child(
        self, ctx: HookContext, case: Case, redirect: RedirectSpec, data: Mapping[str, Any]
    ) -> Case | None:
        from engine.services.cases import start_case

        target = ctx.services.case_types.get(redirect.open_case_type or "")
        try:
            ctx.services.definitions.latest(ctx.uow, target.process_id)
        except NotFoundError:
            if redirect.optional:
                return None
            raise ValidationError(
                f"case type '{target.name}' is not deployed",
                {"redirect": [f"案件类型 '{target.name}' 尚未部署，无法转办"]},
            ) from None
        child_data = {
            key: data[source]
            for key, source in redirect.open_case_data.items()
            if data.get(source) is not None
        }
        title_field = redirect.open_case_title_field
        title = str(data.get(title_field) or "") if title_field else case.title
        child, _snapshot = start_case(
            ctx.services,
            ctx.uow,
            ctx.actor,
            target,
            unit_id=case.unit_id,
            data=child_data,
            title=title,
            now=ctx.now,
            parent_case_id=case.id,
        )
        return child


def case_type_of(spec: CaseTypeSpec) -> CaseType:
    """The registry entry of a data case type."""
    return CaseType(
        name=spec.name,
        process_id=spec.process_id,
        prefix=spec.prefix,
        label_zh=spec.label_zh,
        label_en=spec.label_en,
        hooks=DataCaseHooks(spec),
    )


# -- storage and the registry ----------------------------------------------------------------


def canonical_sha256(raw: Mapping[str, Any]) -> str:
    """The version key of a case type: sha256 of its canonical JSON."""
    text = json.dumps(raw, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def store_case_type(
    uow: UnitOfWork,
    spec: CaseTypeSpec,
    *,
    source: str,
    filename: str,
    at: datetime,
    actor_id: int | None,
) -> CaseTypeDefinition:
    """Save a validated case type as a new version (an identical file adds no version)."""
    session = uow.session
    sha = canonical_sha256(spec.raw)
    row = session.scalars(
        select(CaseTypeDefinition).where(
            CaseTypeDefinition.name == spec.name, CaseTypeDefinition.sha256 == sha
        )
    ).first()
    if row is not None:
        return row
    latest = session.scalar(
        select(func.max(CaseTypeDefinition.version)).where(CaseTypeDefinition.name == spec.name)
    )
    row = CaseTypeDefinition(
        name=spec.name,
        version=(latest or 0) + 1,
        sha256=sha,
        process_id=spec.process_id,
        prefix=spec.prefix,
        label_zh=spec.label_zh,
        label_en=spec.label_en,
        source=source,
        spec=json.loads(json.dumps(dict(spec.raw), default=str)),
        filename=filename,
        deployed_at=at,
        deployed_by_id=actor_id,
    )
    session.add(row)
    session.flush()
    return row


class DataCaseTypeStore:
    """Serves the latest deployed version of each data case type to the registry.

    Reads go through a raw autocommit connection (never a second BEGIN IMMEDIATE on SQLite
    while the caller's transaction holds the write lock) and are refreshed at most every
    `ttl` seconds, so a case type deployed by another process appears without a restart.
    """

    def __init__(self, engine: Engine, *, ttl: float = 2.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._lock = threading.Lock()
        self._heads: dict[str, int] = {}
        self._types: dict[int, CaseType] = {}
        self._checked = 0.0

    def resolve(self, name: str) -> CaseType | None:
        """The data case type of that name, if one is deployed."""
        now = time.monotonic()
        if now - self._checked > self._ttl:
            self._refresh()
            self._checked = now
        row_id = self._heads.get(name)
        return self._types.get(row_id) if row_id is not None else None

    def remember(self, row: CaseTypeDefinition) -> CaseType:
        """Use a version this process just deployed (after its transaction commits)."""
        spec = parse_case_type(row.spec, filename=row.filename)
        case_type = case_type_of(spec)
        with self._lock:
            if row.id >= self._heads.get(row.name, 0):
                self._heads[row.name] = row.id
            self._types[row.id] = case_type
        return case_type

    def all(self) -> list[CaseType]:
        """Every deployed data case type (latest versions)."""
        self._refresh()
        self._checked = time.monotonic()
        return [self._types[i] for i in self._heads.values() if i in self._types]

    def _refresh(self) -> None:
        try:
            heads = self._read("SELECT name, MAX(id) FROM case_type_definitions GROUP BY name")
        except Exception:  # table not created yet (before `db upgrade`): no data types
            return
        wanted = [int(i) for _n, i in heads if int(i) not in self._types]
        loaded: dict[int, CaseType] = {}
        for row_id in wanted:
            rows = self._read(
                "SELECT filename, spec FROM case_type_definitions WHERE id = :id", id=row_id
            )
            if not rows:
                continue
            filename, spec_json = rows[0]
            raw = json.loads(spec_json) if isinstance(spec_json, str) else spec_json
            try:
                loaded[row_id] = case_type_of(parse_case_type(raw, filename=filename))
            except ValidationError as exc:
                log.error("stored case type %s no longer validates: %s", filename, exc.errors)
        with self._lock:
            self._types.update(loaded)
            self._heads = {str(n): int(i) for n, i in heads if int(i) in self._types}

    def _read(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            if self._engine.dialect.name == "postgresql":
                sql = sql.replace(":id", "%(id)s")
            cursor.execute(sql, params)
            result = [tuple(r) for r in cursor.fetchall()]
            cursor.close()
            raw.rollback()
            return result
        finally:
            raw.close()


_STORES: dict[int, DataCaseTypeStore] = {}


def attach_data_case_types(services: Services) -> DataCaseTypeStore:
    """Let the services' case-type registry find case types deployed as data."""
    store = DataCaseTypeStore(services.engine)
    registry: CaseTypeRegistry = services.case_types
    registry.add_resolver(store.resolve)
    _STORES[id(services)] = store
    return store


def data_store(services: Services) -> DataCaseTypeStore:
    """The store attached to these services (attaching one if bootstrap did not)."""
    store = _STORES.get(id(services))
    if store is None:
        store = attach_data_case_types(services)
    return store


def list_case_types(services: Services, lang: str = "zh") -> list[dict[str, Any]]:
    """Every case type: those in code and those deployed as data, with their intake forms."""
    out: dict[str, dict[str, Any]] = {}
    for ct in services.case_types.all():
        out[ct.name] = _case_type_view(ct, source="code")
    for ct in data_store(services).all():
        if ct.name not in out:
            out[ct.name] = _case_type_view(ct, source="data")
    return sorted(out.values(), key=lambda v: str(v["name"]))


def _case_type_view(ct: CaseType, *, source: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": ct.name,
        "process_id": ct.process_id,
        "prefix": ct.prefix,
        "label_zh": ct.label_zh,
        "label_en": ct.label_en,
        "source": source,
        "intake_form": None,
        "deadlines": [],
        "kpis": [],
    }
    hooks = ct.hooks
    if isinstance(hooks, DataCaseHooks):
        spec = hooks.spec
        view["intake_form"] = {
            "fields": [
                {
                    "id": f.id,
                    "label": f.label,
                    "type": f.type,
                    "required": f.required,
                    "enum": [{"id": v, "label": lb} for v, lb in f.enum],
                }
                for f in spec.intake_form
            ],
            "json_schema": json_schema(spec.intake_form),
        }
        view["deadlines"] = [
            {
                "kind": d.kind,
                "length": d.length,
                "unit": d.unit,
                "counted_from": d.counted_from,
                "source": d.source,
                "label_zh": d.label_zh,
                "label_en": d.label_en,
            }
            for d in spec.deadlines
        ]
        view["kpis"] = [
            {"key": k.key, "kind": k.kind, "label_zh": k.label_zh, "label_en": k.label_en}
            for k in spec.kpis
        ]
    return view


# -- KPI mapping -----------------------------------------------------------------------------


def _latest_specs(uow: UnitOfWork) -> list[CaseTypeSpec]:
    head = (
        select(CaseTypeDefinition.name, func.max(CaseTypeDefinition.id).label("id"))
        .group_by(CaseTypeDefinition.name)
        .subquery()
    )
    rows = uow.session.scalars(
        select(CaseTypeDefinition).join(head, head.c.id == CaseTypeDefinition.id)
    ).all()
    specs: list[CaseTypeSpec] = []
    for row in rows:
        try:
            specs.append(parse_case_type(row.spec, filename=row.filename))
        except ValidationError:
            continue
    return specs


def _filters(spec: CaseTypeSpec, where: Mapping[str, tuple[str, ...]]) -> list[Any]:
    conditions: list[Any] = []
    for key, values in where.items():
        if key == "status":
            conditions.append(Case.status.in_(values))
        else:
            conditions.append(Case.data[key].as_string().in_(values))
    return conditions


def _count(
    uow: UnitOfWork, spec: CaseTypeSpec, kpi: KpiSpec, period: Period, extra: list[Any]
) -> int:
    stmt = (
        select(func.count(Case.id))
        .join(Unit, Unit.id == Case.unit_id)
        .where(Case.case_type == spec.name, Unit.path.startswith(period.unit_path))
    )
    if kpi.date_field:
        day = Case.data[kpi.date_field].as_string()
        stmt = stmt.where(day >= period.date_from.isoformat(), day <= period.date_to.isoformat())
    else:
        start = datetime.combine(period.date_from, dtime(0, 0), LOCAL_TZ)
        end = datetime.combine(period.date_to, dtime(23, 59, 59), LOCAL_TZ)
        stmt = stmt.where(Case.created_at >= start, Case.created_at <= end)
    for condition in _filters(spec, kpi.where) + extra:
        stmt = stmt.where(condition)
    return int(uow.session.scalar(stmt) or 0)


def _deadline_rate(uow: UnitOfWork, spec: CaseTypeSpec, kpi: KpiSpec, period: Period) -> Ratio:
    base = (
        select(func.count(Deadline.id))
        .join(Case, Case.id == Deadline.case_id)
        .join(Unit, Unit.id == Case.unit_id)
        .where(
            Case.case_type == spec.name,
            Deadline.kind == kpi.deadline,
            Deadline.due_on >= period.date_from,
            Deadline.due_on <= period.date_to,
            Unit.path.startswith(period.unit_path),
            *_filters(spec, kpi.where),
        )
    )
    due = int(uow.session.scalar(base) or 0)
    met = int(
        uow.session.scalar(
            base.where(and_(Deadline.met_on.is_not(None), Deadline.met_on <= Deadline.due_on))
        )
        or 0
    )
    return Ratio(met, due)


def _has_cases(uow: UnitOfWork, case_type: str) -> bool:
    return (
        uow.session.scalar(select(Case.id).where(Case.case_type == case_type).limit(1)) is not None
    )


def case_type_figures(uow: UnitOfWork, period: Period) -> dict[str, Figure]:
    """The KPIs every deployed data case type declares, for a period and unit."""
    figures: dict[str, Figure] = {}
    for spec in _latest_specs(uow):
        if spec.kpis and not _has_cases(uow, spec.name):
            # Nothing to count: spare the JSON scans (the planner may not know the type is empty).
            for kpi in spec.kpis:
                figures[kpi.key] = 0 if kpi.kind == "count" else Ratio(0, 0)
            continue
        for kpi in spec.kpis:
            if kpi.kind == "count":
                figures[kpi.key] = _count(uow, spec, kpi, period, [])
            elif kpi.kind == "ratio":
                denominator = _count(uow, spec, kpi, period, [])
                numerator = _count(uow, spec, kpi, period, _filters(spec, kpi.numerator))
                figures[kpi.key] = Ratio(min(numerator, denominator), denominator)
            else:
                figures[kpi.key] = _deadline_rate(uow, spec, kpi, period)
    return figures


def kpi_labels(uow: UnitOfWork) -> dict[str, dict[str, str]]:
    """Labels of the data-declared KPIs (key -> {zh, en})."""
    return {
        kpi.key: {"zh": kpi.label_zh, "en": kpi.label_en}
        for spec in _latest_specs(uow)
        for kpi in spec.kpis
    }


register_section("case_types_data", case_type_figures)
register_labels(kpi_labels)

__all__ = [
    "FORMAT",
    "CaseTypeSpec",
    "DataCaseHooks",
    "DataCaseTypeStore",
    "DeadlineAction",
    "DeadlineSpec",
    "KpiSpec",
    "RedirectSpec",
    "attach_data_case_types",
    "canonical_sha256",
    "case_type_figures",
    "case_type_of",
    "check_against_process",
    "kpi_labels",
    "list_case_types",
    "load_case_type_file",
    "parse_case_type",
    "store_case_type",
]
