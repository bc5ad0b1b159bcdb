"""Import of historical petition ledgers (信访台账导入) kept in Excel by the offices (issue 8).

Each ledger row becomes a real petition: the same case, petition row, petitioner, deadlines
and audit events the petition service writes, and the petition's workflow is replayed step
by step with the petition hooks — acceptance, handling, reply, delivery, evaluation — on
the row's own business dates. A workflow runtime with its own clock, set to each step's
date, keeps the process's timers (the evaluation window) from firing before the ledger's
next step; the dates the figures count are the ledger's, so imported closed cases count
in the figures of their own year.

Re-importing creates no duplicates: every imported row stores a natural key (see
`natural_key`) under a unique index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import marshmallow
from openpyxl import Workbook, load_workbook
from openpyxl.comments import Comment
from openpyxl.worksheet.datavalidation import DataValidation
from sqlalchemy import and_, or_, select

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ, SettableClock, local_today
from engine.domain.calendar import DueDate
from engine.domain.deadlines import PETITION_RULES, compute_due
from engine.domain.enums import (
    AcceptanceDecision,
    Category,
    Channel,
    DeliveryMethod,
    HandlingMethod,
    LabelledEnum,
    Rating,
    ReplyOutcome,
    Source,
)
from engine.domain.text import is_repeat_matter, valid_id_number, valid_phone
from engine.errors import FengqiaoError, ValidationError
from engine.persistence.db import UnitOfWork
from engine.persistence.models import (
    Case,
    Deadline,
    Petition,
    Petitioner,
    PetitionImport,
    Task,
    Timer,
    Unit,
)
from engine.services import pii
from engine.services.access import Actor, require_admin
from engine.services.audit import record_case_event
from engine.services.calendar import load_calendar
from engine.services.case_types import HookContext
from engine.services.cases import apply_snapshot, next_case_no, start_case
from engine.services.deadlines import set_deadline
from engine.services.excel import Column, prepare_sheet, workbook_bytes, write_row
from engine.services.petitions import (
    PETITION_PREFIX,
    PETITION_TYPE,
    WINDOW_KINDS,
    close_unevaluated,
)
from engine.workflow import WorkflowRuntime, form_schema

MAX_ROWS = 20_000
HEADER_SCAN_ROWS = 10  # the header row is found among the first rows (titles may precede it)
MAX_FILE_BYTES = 20 * 1024 * 1024
IMPORTED_NOTE = "（历史台账导入，详见原台账）"


# -- the common ledger layout ------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerColumn:
    """A column of the ledger: key, Chinese header, accepted aliases, whether required, help."""

    key: str
    header: str
    width: int
    required: bool = False
    aliases: tuple[str, ...] = ()
    help_zh: str = ""
    help_en: str = ""
    example: Any = None


LEDGER_COLUMNS: tuple[LedgerColumn, ...] = (
    LedgerColumn(
        "source_ref",
        "原编号",
        14,
        aliases=("编号", "序号", "source_ref"),
        help_zh="原台账中的编号（可选，仅作记录）",
        help_en="Number in the old ledger (optional)",
        example="2022-001",
    ),
    LedgerColumn(
        "received_on",
        "收到日期",
        12,
        True,
        ("登记日期", "来访日期", "received_on"),
        "信访件收到日期，如 2022-03-05",
        "Date received, e.g. 2022-03-05",
        date(2022, 3, 5),
    ),
    LedgerColumn(
        "name",
        "信访人",
        10,
        True,
        ("信访人姓名", "姓名", "name"),
        "信访人（或代表）姓名",
        "Petitioner's (or representative's) name",
        "王大伟",
    ),
    LedgerColumn(
        "id_number",
        "身份证号",
        20,
        aliases=("身份证号码", "id_number"),
        help_zh="18位居民身份证号（可选）",
        help_en="Resident ID number (optional)",
    ),
    LedgerColumn(
        "phone",
        "联系电话",
        14,
        aliases=("电话", "phone"),
        help_zh="手机或固定电话（可选）",
        help_en="Phone (optional)",
    ),
    LedgerColumn("address", "住址", 16, aliases=("地址", "address"), example="东风村3组"),
    LedgerColumn(
        "village",
        "村（社区）",
        12,
        aliases=("村(社区)", "村社区", "所属村（社区）", "village"),
        help_zh="村或社区的名称或代码；须为系统中已有的村（社区）",
        help_en="Name or code of a village/community known to the system",
        example="东风村",
    ),
    LedgerColumn(
        "channel",
        "信访形式",
        8,
        True,
        ("信访渠道", "渠道", "channel"),
        "走访 / 来信 / 网上 / 电话 / 传真",
        "visit / letter / online / phone / fax",
        "走访",
    ),
    LedgerColumn(
        "category",
        "信访类别",
        10,
        True,
        ("类别", "category"),
        "建议意见 / 检举控告 / 申诉求决",
        "suggestion / accusation / claim",
        "申诉求决",
    ),
    LedgerColumn(
        "source",
        "来源",
        10,
        aliases=("信访来源", "source"),
        help_zh="直接受理（默认）/ 上级交办 / 转送",
        help_en="direct (default) / assigned / forwarded",
        example="直接受理",
    ),
    LedgerColumn(
        "assigned_ref",
        "交办文号",
        14,
        aliases=("assigned_ref",),
        help_zh="上级交办件的文号",
        help_en="Reference of a case assigned from above",
    ),
    LedgerColumn(
        "assigned_due_on",
        "交办期限",
        12,
        aliases=("assigned_due_on",),
        help_zh="上级交办的办结期限（仅上级交办件）",
        help_en="The district's due date (assigned only)",
    ),
    LedgerColumn(
        "proxy_agent",
        "信访代理人",
        10,
        aliases=("代理人", "proxy_agent"),
        help_zh="代为提出的信访代理人姓名",
        help_en="Petition proxy who filed it",
    ),
    LedgerColumn(
        "headcount",
        "人数",
        6,
        aliases=("来访人数", "headcount"),
        help_zh="人数（多人信访），默认1",
        help_en="Number of people (default 1)",
        example=1,
    ),
    LedgerColumn(
        "subject",
        "信访事项",
        30,
        True,
        ("事项", "标题", "subject"),
        "信访事项（标题）",
        "The matter (title)",
        "东风村土地承包经营权纠纷",
    ),
    LedgerColumn(
        "request",
        "主要诉求",
        30,
        aliases=("诉求", "主要内容", "request"),
        help_zh="诉求内容；留空则同信访事项",
        help_en="The request; defaults to the matter",
        example="请求确认本户承包地边界",
    ),
    LedgerColumn(
        "decision",
        "受理情况",
        10,
        aliases=("受理决定", "decision"),
        help_zh="受理 / 不予受理 / 转送；留空表示尚未作出受理决定",
        help_en="accept / not_accept / forward; empty if not yet decided",
        example="受理",
    ),
    LedgerColumn(
        "decided_on",
        "受理日期",
        12,
        aliases=("告知日期", "decided_on"),
        help_zh="作出受理决定（告知）的日期",
        help_en="Date of the acceptance decision",
        example=date(2022, 3, 10),
    ),
    LedgerColumn(
        "responsible_unit",
        "责任单位",
        14,
        aliases=("承办单位", "responsible_unit"),
        help_zh="受理件的责任单位名称或代码",
        help_en="Responsible unit (name or code) if accepted",
        example="东风村",
    ),
    LedgerColumn(
        "reason",
        "不予受理或转送理由",
        16,
        aliases=("理由", "reason"),
        help_zh="不予受理或转送时必填",
        help_en="Required when not accepted or forwarded",
    ),
    LedgerColumn(
        "forward_to",
        "转送机关",
        14,
        aliases=("forward_to",),
        help_zh="转送时必填",
        help_en="Required when forwarded",
    ),
    LedgerColumn(
        "handling_method",
        "办理方式",
        10,
        aliases=("handling_method",),
        help_zh="调查核实（默认）/ 调解 / 听证",
        help_en="investigation (default) / mediation / hearing",
        example="调解",
    ),
    LedgerColumn(
        "outcome",
        "处理结果",
        10,
        aliases=("办理结果", "outcome"),
        help_zh="支持 / 解释说明 / 不予支持；已答复的必填",
        help_en="support / explain / not_support; required once replied",
        example="支持",
    ),
    LedgerColumn(
        "reply_text",
        "答复意见",
        24,
        aliases=("处理意见", "reply_text"),
        help_zh="处理意见书要点（可选）",
        help_en="Summary of the written reply (optional)",
    ),
    LedgerColumn(
        "delivered_on",
        "答复日期",
        12,
        aliases=("送达日期", "答复送达日期", "delivered_on"),
        help_zh="处理意见书送达日期",
        help_en="Date the reply was delivered",
        example=date(2022, 4, 20),
    ),
    LedgerColumn(
        "delivery_method",
        "送达方式",
        10,
        aliases=("delivery_method",),
        help_zh="直接送达（默认）/ 邮寄送达 / 网上送达 / 短信送达",
        help_en="in_person (default) / post / online / sms",
        example="直接送达",
    ),
    LedgerColumn(
        "rating",
        "评价",
        10,
        aliases=("满意度", "满意度评价", "rating"),
        help_zh="满意 / 基本满意 / 不满意；留空表示未评价",
        help_en="satisfied / basically_satisfied / dissatisfied; empty if not evaluated",
        example="满意",
    ),
    LedgerColumn(
        "evaluated_on",
        "评价日期",
        12,
        aliases=("evaluated_on",),
        help_zh="评价日期；留空则按答复日期",
        help_en="Date of the evaluation; defaults to the reply date",
        example=date(2022, 4, 25),
    ),
)
COLUMNS_BY_KEY: Mapping[str, LedgerColumn] = {c.key: c for c in LEDGER_COLUMNS}

# Words offices write for the same value (beside the labels and the English values).
SYNONYMS: Mapping[type[LabelledEnum], Mapping[str, str]] = {
    Channel: {
        "来访": "visit",
        "走访": "visit",
        "网上信访": "online",
        "网信": "online",
        "来电": "phone",
        "电话": "phone",
        "信件": "letter",
    },
    Source: {"直接": "direct", "交办": "assigned", "上级交办": "assigned", "转来": "forwarded"},
    AcceptanceDecision: {"已受理": "accept", "不受理": "not_accept", "转办": "forward"},
    HandlingMethod: {"调查": "investigation", "调查核实": "investigation", "人民调解": "mediation"},
    ReplyOutcome: {"解释": "explain", "不支持": "not_support"},
    DeliveryMethod: {
        "直接": "in_person",
        "当面": "in_person",
        "当面送达": "in_person",
        "邮寄": "post",
        "网上": "online",
        "短信": "sms",
    },
    Rating: {"非常满意": "satisfied"},
}
# Form fields of the petition's tasks, named by the ledger column they come from.
FIELD_COLUMNS: Mapping[str, str] = {
    "decision": "decision",
    "decided_on": "decided_on",
    "responsible_unit_id": "responsible_unit",
    "reason": "reason",
    "forward_to": "forward_to",
    "method": "handling_method",
    "outcome": "outcome",
    "delivered_on": "delivered_on",
    "delivery_method": "delivery_method",
    "rating": "rating",
    "evaluated_on": "evaluated_on",
    "received_on": "received_on",
}


def _msg(lang: str, en: str, zh: str) -> str:
    return en if lang == "en" else zh


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


# -- reading the workbook ---------------------------------------------------------------------


def _header_key(value: Any) -> str | None:
    if value is None:
        return None
    text = _norm(str(value)).rstrip("*＊").lower()
    for column in LEDGER_COLUMNS:
        names = (column.header, column.key, *column.aliases)
        if any(text == _norm(n).lower() for n in names):
            return column.key
    return None


@dataclass(frozen=True)
class LedgerRows:
    """The rows read from a workbook: (sheet row number, {column key: cell value})."""

    rows: list[tuple[int, dict[str, Any]]]
    header_row: int
    unknown_headers: list[str]


def read_ledger(data: bytes, lang: str = "zh") -> LedgerRows:
    """Find the header row, map headers to columns and read every non-empty row."""
    if len(data) > MAX_FILE_BYTES:
        raise ValidationError(
            "file too large", {"file": [_msg(lang, "The file exceeds 20 MB.", "文件超过 20 MB。")]}
        )
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not xlsx
        raise ValidationError(
            "not an xlsx workbook",
            {"file": [_msg(lang, "Not an Excel (.xlsx) file.", "不是 Excel（.xlsx）文件。")]},
        ) from exc
    ws = wb.worksheets[0]
    header_row = 0
    mapping: dict[int, str] = {}
    unknown: list[str] = []
    out: list[tuple[int, dict[str, Any]]] = []
    for number, cells in enumerate(ws.iter_rows(values_only=True), start=1):
        if not header_row:
            keys = {i: _header_key(v) for i, v in enumerate(cells)}
            if "received_on" in keys.values() and "name" in keys.values():
                header_row = number
                mapping = {i: k for i, k in keys.items() if k is not None}
                unknown = [
                    str(v) for i, v in enumerate(cells) if v is not None and i not in mapping
                ]
            elif number >= HEADER_SCAN_ROWS:
                break
            continue
        if all(v is None or str(v).strip() == "" for v in cells):
            continue
        row = {mapping[i]: v for i, v in enumerate(cells) if i in mapping}
        out.append((number, row))
        if len(out) > MAX_ROWS:
            raise ValidationError(
                "too many rows",
                {
                    "file": [
                        _msg(
                            lang,
                            f"At most {MAX_ROWS} rows per file.",
                            f"每个文件最多 {MAX_ROWS} 行。",
                        )
                    ]
                },
            )
    wb.close()
    if not header_row:
        raise ValidationError(
            "no header row",
            {
                "file": [
                    _msg(
                        lang,
                        "No header row with 收到日期 and 信访人 in the first rows.",
                        "前几行中未找到含“收到日期”“信访人”的表头。",
                    )
                ]
            },
        )
    missing = [c.header for c in LEDGER_COLUMNS if c.required and c.key not in mapping.values()]
    if missing:
        raise ValidationError(
            "missing columns",
            {
                "file": [
                    _msg(
                        lang,
                        f"Missing columns: {', '.join(missing)}.",
                        f"缺少列：{'、'.join(missing)}。",
                    )
                ]
            },
        )
    return LedgerRows(out, header_row, unknown)


# -- one row: parse and check -----------------------------------------------------------------


@dataclass
class ParsedRow:
    """A ledger row with typed values, ready to import."""

    number: int
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def fail(self, key: str, message: str) -> None:
        """Record a problem with one column of the row."""
        self.errors.setdefault(key, []).append(message)

    def get(self, key: str) -> Any:
        """A parsed value (None when empty)."""
        return self.values.get(key)


_DATE_TEXT = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


def parse_date(value: Any) -> date | None:
    """A ledger date: an Excel date, or text such as 2022-03-05, 2022/3/5, 2022年3月5日."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    match = _DATE_TEXT.match(unicodedata.normalize("NFKC", str(value)).strip())
    if not match:
        raise ValueError(str(value))
    return date(int(match[1]), int(match[2]), int(match[3]))


def parse_choice(enum: type[LabelledEnum], value: Any) -> str | None:
    """An enum value from its Chinese label, English value or label, or a common synonym."""
    if value is None or not str(value).strip():
        return None
    text = _norm(str(value))
    for member in enum:
        if text.lower() in (member.value, member.label("en").lower(), _norm(member.label("zh"))):
            return member.value
    synonym = SYNONYMS.get(enum, {}).get(text)
    if synonym is not None:
        return synonym
    raise ValueError(text)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFKC", str(value)).strip()


@dataclass(frozen=True)
class UnitRef:
    """What the import needs of a unit, kept after its session closed."""

    id: int
    code: str
    name: str
    kind: str
    path: str
    parent_id: int | None


class _Units:
    """Villages and units by name and code, loaded once per import."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.by_id: dict[int, UnitRef] = {}
        self.by_name: dict[str, list[UnitRef]] = {}
        self.by_code: dict[str, UnitRef] = {}
        for row in uow.session.scalars(select(Unit).where(Unit.active.is_(True))):
            unit = UnitRef(row.id, row.code, row.name, row.kind, row.path, row.parent_id)
            self.by_id[unit.id] = unit
            self.by_code[unit.code.upper()] = unit
            self.by_name.setdefault(_norm(unit.name), []).append(unit)

    def find(self, text: str, kinds: Sequence[str] | None = None) -> UnitRef | None:
        """The unit of that code or name (of the given kinds); None if unknown or ambiguous."""
        unit = self.by_code.get(text.upper())
        if unit is not None and (kinds is None or unit.kind in kinds):
            return unit
        found = [u for u in self.by_name.get(_norm(text), []) if kinds is None or u.kind in kinds]
        return found[0] if len(found) == 1 else None

    def street_of(self, unit: UnitRef) -> UnitRef:
        """The street above a village (or the unit itself if none)."""
        ids = [int(x) for x in unit.path.strip("/").split("/") if x]
        for uid in reversed(ids):
            above = self.by_id.get(uid)
            if above is not None and above.kind == "street":
                return above
        parent = self.by_id.get(unit.parent_id or 0)
        return parent or unit


_ENUM_COLUMNS: Mapping[str, type[LabelledEnum]] = {
    "channel": Channel,
    "category": Category,
    "source": Source,
    "decision": AcceptanceDecision,
    "handling_method": HandlingMethod,
    "outcome": ReplyOutcome,
    "delivery_method": DeliveryMethod,
    "rating": Rating,
}
_DATE_COLUMNS = ("received_on", "assigned_due_on", "decided_on", "delivered_on", "evaluated_on")
_TEXT_LIMITS: Mapping[str, int] = {
    "source_ref": 100,
    "name": 100,
    "address": 300,
    "assigned_ref": 100,
    "proxy_agent": 100,
    "subject": 300,
    "request": 8000,
    "reason": 4000,
    "forward_to": 200,
    "reply_text": 8000,
    "village": 200,
    "responsible_unit": 200,
    "id_number": 30,
    "phone": 30,
}


def parse_row(
    number: int,
    raw: Mapping[str, Any],
    units: _Units,
    office: UnitRef | None,
    today: date,
    lang: str,
) -> ParsedRow:
    """Type and check one row; every problem is recorded against its column."""
    row = ParsedRow(number)
    for key, limit in _TEXT_LIMITS.items():
        text = _text(raw.get(key))
        if len(text) > limit:
            row.fail(key, _msg(lang, f"At most {limit} characters.", f"不超过 {limit} 个字。"))
        row.values[key] = text or None
    for key in _DATE_COLUMNS:
        try:
            day = parse_date(raw.get(key))
        except ValueError:
            row.fail(
                key,
                _msg(
                    lang,
                    f"Not a date: {_text(raw.get(key))!r}; use YYYY-MM-DD.",
                    f"日期无法识别：“{_text(raw.get(key))}”，请写作 2022-03-05。",
                ),
            )
            continue
        except (TypeError, OverflowError):
            row.fail(key, _msg(lang, "Not a valid date.", "日期无效。"))
            continue
        if day is not None and day > today:
            row.fail(key, _msg(lang, f"{day} is in the future.", f"{day} 晚于今天。"))
        row.values[key] = day
    for key, enum in _ENUM_COLUMNS.items():
        try:
            row.values[key] = parse_choice(enum, raw.get(key))
        except ValueError:
            allowed = "、".join(m.label("zh") for m in enum)
            row.fail(
                key,
                _msg(
                    lang,
                    f"Unknown value {_text(raw.get(key))!r}; use one of {allowed}.",
                    f"无法识别“{_text(raw.get(key))}”，应为：{allowed}。",
                ),
            )
    headcount = raw.get("headcount")
    row.values["headcount"] = 1
    if headcount not in (None, ""):
        try:
            row.values["headcount"] = int(float(_text(headcount)))
            if not 1 <= row.values["headcount"] <= 100_000:
                raise ValueError
        except ValueError:
            row.fail(
                "headcount", _msg(lang, "A whole number of people, 1 or more.", "人数应为正整数。")
            )

    for key in ("received_on", "name", "channel", "category", "subject"):
        if row.get(key) is None and key not in row.errors:
            row.fail(key, _msg(lang, "Required.", "必填。"))
    id_number = row.get("id_number")
    if id_number and not valid_id_number(pii.normalize_id_number(id_number)):
        row.fail("id_number", _msg(lang, "Not a valid resident ID number.", "身份证号码无效。"))
    phone = row.get("phone")
    if phone and not (valid_phone(phone) or valid_phone(pii.normalize_phone(phone))):
        row.fail("phone", _msg(lang, "Not a valid phone number.", "电话号码无效。"))

    village_text = row.get("village")
    if village_text:
        village = units.find(village_text, ("village", "community"))
        if village is None:
            row.fail(
                "village",
                _msg(
                    lang,
                    f"Unknown village or community {village_text!r}.",
                    f"系统中没有村（社区）“{village_text}”。",
                ),
            )
        else:
            row.values["village_unit"] = village
    registering = office
    if registering is None and row.get("village_unit") is not None:
        registering = units.street_of(row.values["village_unit"])
    if registering is None and "village" not in row.errors:
        row.fail(
            "village",
            _msg(
                lang,
                "Give the village, or choose the registering office.",
                "请填写村（社区），或在导入时选择登记单位。",
            ),
        )
    elif registering is not None:
        row.values["office"] = registering
        village_unit = row.get("village_unit")
        if village_unit is not None and not village_unit.path.startswith(registering.path):
            row.fail(
                "village",
                _msg(
                    lang,
                    "The village is not under the registering office.",
                    "该村（社区）不在登记单位辖区内。",
                ),
            )
    responsible_text = row.get("responsible_unit")
    if responsible_text:
        unit = units.find(responsible_text)
        if unit is None:
            row.fail(
                "responsible_unit",
                _msg(
                    lang,
                    f"Unknown unit {responsible_text!r}.",
                    f"系统中没有单位“{responsible_text}”。",
                ),
            )
        else:
            row.values["responsible_unit_id"] = unit.id

    source = row.get("source") or Source.direct.value
    row.values["source"] = source
    if row.get("assigned_due_on") is not None and source != Source.assigned.value:
        row.fail(
            "assigned_due_on",
            _msg(
                lang, "Only petitions assigned from above carry one.", "仅上级交办件填写交办期限。"
            ),
        )
    _check_steps(row, lang)
    return row


def _check_steps(row: ParsedRow, lang: str) -> None:
    """The later columns must tell a story the process allows (the hooks check the dates)."""
    decision = row.get("decision")
    later = [k for k in ("delivered_on", "outcome", "rating") if row.get(k) is not None]
    if decision is None:
        if row.get("decided_on") is not None:
            row.fail(
                "decision",
                _msg(
                    lang, "A decision date without a decision.", "填写了受理日期但未填写受理情况。"
                ),
            )
        for key in later:
            row.fail(
                key,
                _msg(
                    lang,
                    "Only an accepted petition is replied to.",
                    "未受理的信访件不能有答复或评价。",
                ),
            )
        return
    if row.get("decided_on") is None and "decided_on" not in row.errors:
        row.fail("decided_on", _msg(lang, "Required with a decision.", "填写受理情况时必填。"))
    if decision != AcceptanceDecision.accept.value:
        for key in later:
            row.fail(
                key,
                _msg(
                    lang,
                    "Only an accepted petition is replied to.",
                    "不予受理或转送的信访件不能有答复或评价。",
                ),
            )
        return
    if row.get("rating") is not None and row.get("delivered_on") is None:
        row.fail(
            "delivered_on",
            _msg(lang, "A rating needs the reply's delivery date.", "有评价时须填写答复日期。"),
        )
    if row.get("delivered_on") is not None and row.get("outcome") is None:
        row.fail(
            "outcome",
            _msg(lang, "Required once the reply was delivered.", "已答复的须填写处理结果。"),
        )


def natural_key(cipher: pii.PiiCipher, row: ParsedRow) -> str:
    """sha256 of: received date | petitioner (keyed ID-number hash, else name) | subject.

    Whitespace is ignored and full-width characters are folded (NFKC), so the same row typed
    again, or exported and re-imported, yields the same key."""
    id_number = row.get("id_number")
    person = (
        "id:" + pii.id_number_hash(cipher, id_number)
        if id_number
        else "name:" + _norm(row.get("name") or "")
    )
    return _key_of(row.get("received_on"), person, row.get("subject") or "")


def _key_of(received: date, person: str, subject: str) -> str:
    text = f"{received.isoformat()}|{person}|{_norm(subject)}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def rekey_imports(
    services: Services, old: pii.PiiCipher, *, dry_run: bool = False
) -> dict[str, int]:
    """After a PII key rotation: recompute the natural keys built on the old ID-number hash.

    A key is rewritten only when the stored one is exactly what the old key gives for the
    petition's received date, first petitioner and subject, so keys built on a name (which
    no key changes) and rows edited since are left alone. Run after `pii.rotate_key`."""
    new = pii.cipher_for(services.settings)
    counts = {"imports": 0, "rekeyed": 0}
    with services.uow() as uow:
        rows = uow.session.execute(
            select(PetitionImport, Petition.received_on, Petition.subject, Petitioner.id_number_enc)
            .join(Petition, Petition.case_id == PetitionImport.petition_id)
            .join(
                Petitioner,
                and_(Petitioner.petition_id == Petition.case_id, Petitioner.position == 0),
            )
            .where(Petitioner.id_number_enc.is_not(None))
        ).all()
        for record, received, subject, sealed in rows:
            counts["imports"] += 1
            token = str(sealed)  # the query keeps only petitioners with an ID number
            opener = new if pii.key_id_of(token) == new.key_id else old
            number = opener.decrypt(token)
            before = _key_of(received, "id:" + pii.id_number_hash(old, number), subject)
            if record.natural_key != before:
                continue
            record.natural_key = _key_of(received, "id:" + pii.id_number_hash(new, number), subject)
            counts["rekeyed"] += 1
        if not dry_run:
            uow.commit()
    return counts


# -- one row: write it ------------------------------------------------------------------------


class RowFailed(Exception):
    """A row could not be imported: {column key: [messages]}."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12, 0), LOCAL_TZ)


@dataclass
class _Replay:
    """The services with a workflow runtime of its own clock, set to each step's date."""

    services: Services
    clock: SettableClock

    @classmethod
    def of(cls, services: Services) -> _Replay:
        """A replay runtime beside the real one; everything else is shared."""
        clock = SettableClock(services.clock.now())
        runtime = WorkflowRuntime(clock, script_time_limit=services.settings.script_time_limit)
        return cls(dataclasses.replace(services, runtime=runtime), clock)


def _complete(
    replay: _Replay,
    uow: UnitOfWork,
    actor: Actor,
    case: Case,
    bpmn_id: str,
    data: dict[str, Any],
    on: date,
    now: datetime,
) -> None:
    """Complete the case's open task as tasks.complete_task does, inside this transaction."""
    services = replay.services
    replay.clock.set(_noon(on))
    task = uow.session.scalars(
        select(Task).where(Task.case_id == case.id, Task.bpmn_id == bpmn_id, Task.status == "open")
    ).first()
    if task is None:
        raise RowFailed({"": [f"the petition has no open task {bpmn_id}"]})
    case_type = services.case_types.get(case.case_type)
    deployed = services.definitions.get(uow, case.definition_id)
    spec = deployed.definition.user_tasks.get(bpmn_id)
    given = {k: v for k, v in data.items() if v is not None}
    try:
        clean: dict[str, Any] = form_schema(spec.form if spec is not None else ())().load(given)
    except marshmallow.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"": exc.messages}
        raise RowFailed({str(k): [str(m) for m in v] for k, v in messages.items()}) from exc
    ctx = HookContext(services, uow, actor, now)
    clean.update(case_type.hooks.before_complete(ctx, case, task, clean))
    snapshot = services.runtime.complete(deployed.definition, case.state, task.spiff_id, clean)
    task.status = "completed"
    task.completed_at = now
    task.completed_by_id = actor.user_id or None
    task.assignee_id = task.assignee_id or actor.user_id or None
    record_case_event(
        uow,
        case,
        "task.completed",
        actor_id=actor.user_id,
        at=now,
        detail={
            "task_id": task.id,
            "task": bpmn_id,
            "name": task.name,
            "data": clean,
            "imported": True,
        },
    )
    apply_snapshot(ctx, case, case_type, snapshot)
    case_type.hooks.after_complete(ctx, case, task, clean, snapshot)


def _historical_repeat(
    uow: UnitOfWork,
    id_hash: str | None,
    name: str,
    phone_hash: str | None,
    matter: str,
    received_on: date,
) -> Petition | None:
    """An earlier petition of the same person on a similar matter still open on that date."""
    conditions: list[Any] = []
    if id_hash:
        conditions.append(Petitioner.id_number_hash == id_hash)
    if phone_hash:
        conditions.append(and_(Petitioner.phone_hash == phone_hash, Petitioner.name == name))
    if not conditions:
        return None
    candidates = uow.session.scalars(
        select(Petition)
        .where(
            Petition.case_id.in_(select(Petitioner.petition_id).where(or_(*conditions))),
            Petition.received_on <= received_on,
            or_(
                Petition.closed_on.is_(None),
                Petition.closed_on >= received_on,
                Petition.not_to_be_accepted_again.is_(True),
            ),
        )
        .order_by(Petition.received_on.desc(), Petition.case_id.desc())
        .limit(50)
    )
    for candidate in candidates:
        if is_repeat_matter(matter, f"{candidate.subject} {candidate.request}"):
            return candidate
    return None


def import_historical_petition(
    replay: _Replay,
    uow: UnitOfWork,
    actor: Actor,
    row: ParsedRow,
    *,
    key: str,
    file_name: str,
    now: datetime,
    today: date,
) -> Case:
    """Write one ledger row as a petition and replay its workflow on the row's dates."""
    services = replay.services
    session = uow.session
    cipher = pii.cipher_for(services.settings)
    office: UnitRef = row.values["office"]
    village: UnitRef | None = row.get("village_unit")
    received: date = row.get("received_on")
    subject: str = row.get("subject")
    request: str = row.get("request") or subject
    source: str = row.get("source")
    calendar = load_calendar(uow)
    acceptance = compute_due(PETITION_RULES["acceptance_notice"], received, calendar)
    remit = compute_due(PETITION_RULES["remit_objection"], received, calendar)
    replay.clock.set(_noon(received))
    case, _snapshot = start_case(
        services,
        uow,
        actor,
        services.case_types.get(PETITION_TYPE),
        unit_id=office.id,
        data={
            "unit_id": office.id,
            "received_on": received.isoformat(),
            "channel": row.get("channel"),
            "category": row.get("category"),
            "source": source,
            "village_id": village.id if village else None,
            "acceptance_due_on": acceptance.due_on.isoformat(),
            "remit_objection_due_on": remit.due_on.isoformat(),
        },
        title=subject,
        now=now,
        case_no=next_case_no(uow, PETITION_PREFIX, received.year),
    )
    id_number = row.get("id_number")
    phone = row.get("phone")
    protected_id = pii.protect_id_number(cipher, id_number) if id_number else None
    protected_phone = pii.protect_phone(cipher, phone) if phone else None
    repeat = _historical_repeat(
        uow,
        protected_id.hash if protected_id else None,
        row.get("name"),
        protected_phone.hash if protected_phone else None,
        f"{subject} {request}",
        received,
    )
    petition = Petition(
        case_id=case.id,
        unit_id=office.id,
        channel=row.get("channel"),
        received_on=received,
        category=row.get("category"),
        source=source,
        assigned_ref=row.get("assigned_ref"),
        assigned_due_on=row.get("assigned_due_on"),
        proxy_agent=row.get("proxy_agent"),
        subject=subject,
        request=request,
        village_id=village.id if village else None,
        headcount=row.get("headcount"),
        status="registered",
        repeat_of_id=repeat.case_id if repeat else None,
        not_to_be_accepted_again=False,
        reply_returns=0,
        created_at=now,
    )
    session.add(petition)
    session.flush()
    session.add(
        Petitioner(
            petition_id=case.id,
            position=0,
            name=row.get("name"),
            address=row.get("address"),
            id_number_enc=protected_id.enc if protected_id else None,
            id_number_hash=protected_id.hash if protected_id else None,
            id_number_masked=protected_id.masked if protected_id else None,
            phone_enc=protected_phone.enc if protected_phone else None,
            phone_hash=protected_phone.hash if protected_phone else None,
            phone_masked=protected_phone.masked if protected_phone else None,
            is_representative=row.get("headcount") > 1,
        )
    )
    set_deadline(
        uow,
        case,
        "acceptance_notice",
        acceptance,
        source=PETITION_RULES["acceptance_notice"].source,
    )
    set_deadline(
        uow, case, "remit_objection", remit, source=PETITION_RULES["remit_objection"].source
    )
    assigned_due: date | None = row.get("assigned_due_on")
    if assigned_due is not None:
        set_deadline(
            uow,
            case,
            "assigned",
            DueDate(assigned_due, not calendar.is_verified(assigned_due)),
            source=PETITION_RULES["assigned"].source,
        )
    detail = {
        "channel": row.get("channel"),
        "received_on": received.isoformat(),
        "petitioners": 1,
        "repeat_of": repeat.case_id if repeat else None,
        "repeat_of_barred": False,
    }
    record_case_event(
        uow, case, "petition.registered", actor_id=actor.user_id, at=now, detail=detail
    )
    record_case_event(
        uow,
        case,
        "petition.imported",
        actor_id=actor.user_id,
        at=now,
        detail={"file": file_name, "row": row.number, "source_ref": row.get("source_ref")},
    )
    session.add(
        PetitionImport(
            natural_key=key,
            petition_id=case.id,
            source_file=file_name[:255],
            source_row=row.number,
            source_ref=row.get("source_ref"),
            imported_by_id=actor.user_id or None,
            imported_at=now,
        )
    )
    session.flush()
    _replay_steps(replay, uow, actor, case, row, now)
    _settle(replay, uow, actor, case, petition, now, today)
    return case


def _replay_steps(
    replay: _Replay, uow: UnitOfWork, actor: Actor, case: Case, row: ParsedRow, now: datetime
) -> None:
    """Acceptance, handling, reply, delivery and evaluation, each on its ledger date."""
    decision = row.get("decision")
    if decision is None:
        return
    decided: date = row.get("decided_on")
    data: dict[str, Any] = {"decision": decision, "decided_on": decided.isoformat()}
    if decision == AcceptanceDecision.accept.value:
        data["responsible_unit_id"] = row.get("responsible_unit_id")
    else:
        data["reason"] = row.get("reason")
        data["forward_to"] = row.get("forward_to")
    _complete(replay, uow, actor, case, "decide_acceptance", data, decided, now)
    delivered: date | None = row.get("delivered_on")
    if decision != AcceptanceDecision.accept.value or delivered is None:
        return
    method = row.get("handling_method") or HandlingMethod.investigation.value
    _complete(
        replay,
        uow,
        actor,
        case,
        "handle",
        {"method": method, "findings": IMPORTED_NOTE, "request_extension": False},
        delivered,
        now,
    )
    _complete(
        replay,
        uow,
        actor,
        case,
        "draft_reply",
        {"outcome": row.get("outcome"), "reply_text": row.get("reply_text") or IMPORTED_NOTE},
        delivered,
        now,
    )
    _complete(replay, uow, actor, case, "approve_reply", {"approve": True}, delivered, now)
    _complete(
        replay,
        uow,
        actor,
        case,
        "deliver_reply",
        {
            "delivered_on": delivered.isoformat(),
            "delivery_method": row.get("delivery_method") or DeliveryMethod.in_person.value,
        },
        delivered,
        now,
    )
    rating = row.get("rating")
    if rating is not None:
        evaluated: date = row.get("evaluated_on") or delivered
        _complete(
            replay,
            uow,
            actor,
            case,
            "record_evaluation",
            {"rating": rating, "evaluated_on": evaluated.isoformat()},
            evaluated,
            now,
        )


def _settle(
    replay: _Replay,
    uow: UnitOfWork,
    actor: Actor,
    case: Case,
    petition: Petition,
    now: datetime,
    today: date,
) -> None:
    """Bring the replayed case to today: fire lapsed timers, close lapsed windows quietly."""
    services = replay.services
    replay.clock.set(now)
    timer = uow.session.get(Timer, case.id)
    if timer is not None and timer.fire_at <= now:
        deployed = services.definitions.get(uow, case.definition_id)
        snapshot = services.runtime.fire_timers(deployed.definition, case.state)
        ctx = HookContext(services, uow, actor, now)
        apply_snapshot(ctx, case, services.case_types.get(case.case_type), snapshot)
    window = uow.session.scalars(
        select(Deadline).where(Deadline.case_id == case.id, Deadline.kind == "evaluation_window")
    ).first()
    if petition.status == "replied" and window is not None and window.due_on < today:
        close_unevaluated(uow, case, petition, now)
    for deadline in uow.session.scalars(
        select(Deadline).where(
            Deadline.case_id == case.id,
            Deadline.kind.in_(WINDOW_KINDS),
            Deadline.state == "pending",
            Deadline.due_on < today,
        )
    ):
        deadline.state = "missed"
    uow.session.flush()


# -- the whole file ---------------------------------------------------------------------------


@dataclass
class RowResult:
    """What happened to one ledger row."""

    row: int
    status: str  # imported | would_import | skipped | failed
    case_no: str | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    name: str | None = None
    received_on: Any = None
    subject: str | None = None

    def messages(self) -> list[str]:
        """'column: message' lines for the report."""
        out = []
        for key, messages in self.errors.items():
            column = COLUMNS_BY_KEY.get(FIELD_COLUMNS.get(key, key))
            label = column.header if column is not None else key
            for message in messages:
                out.append(f"{label}：{message}" if label else message)
        return out


@dataclass
class ImportReport:
    """The outcome of one import (or dry run) of a ledger file."""

    file_name: str
    dry_run: bool
    all_or_nothing: bool
    rows: list[RowResult] = field(default_factory=list)
    committed: bool = False

    def count(self, status: str) -> int:
        """How many rows ended with this status."""
        return sum(1 for r in self.rows if r.status == status)

    @property
    def failed(self) -> list[RowResult]:
        """The rows that failed, with their reasons."""
        return [r for r in self.rows if r.status == "failed"]

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "file_name": self.file_name,
            "dry_run": self.dry_run,
            "all_or_nothing": self.all_or_nothing,
            "committed": self.committed,
            "total": len(self.rows),
            "imported": self.count("imported"),
            "would_import": self.count("would_import"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "rows": [
                {
                    "row": r.row,
                    "status": r.status,
                    "case_no": r.case_no,
                    "name": r.name,
                    "received_on": r.received_on,
                    "subject": r.subject,
                    "errors": r.messages(),
                }
                for r in self.rows
            ],
        }


def _errors_of(exc: FengqiaoError) -> dict[str, list[str]]:
    errors = getattr(exc, "errors", None) or {}
    out: dict[str, list[str]] = {}
    for key, value in errors.items():
        if isinstance(value, list):
            out[str(key)] = [str(v) for v in value]
        elif isinstance(value, dict):
            out[str(key)] = [str(v) for v in value.values()]
        else:
            out[str(key)] = [str(value)]
    return out or {"": [exc.message]}


def _existing_registration(uow: UnitOfWork, row: ParsedRow) -> str | None:
    """The case number of a petition already in the system with the same date, matter, name."""
    found = uow.session.scalar(
        select(Case.case_no)
        .join(Petition, Petition.case_id == Case.id)
        .join(Petitioner, Petitioner.petition_id == Petition.case_id)
        .where(
            Petition.received_on == row.get("received_on"),
            Petition.subject == row.get("subject"),
            Petitioner.name == row.get("name"),
        )
        .limit(1)
    )
    return str(found) if found is not None else None


def import_petitions(
    services: Services,
    actor: Actor,
    data: bytes,
    file_name: str,
    *,
    dry_run: bool = False,
    all_or_nothing: bool = False,
    unit_id: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """`fengqiao import petitions`: validate every row, import the good ones, report the rest.

    A dry run does everything inside one transaction and rolls it back. With all-or-nothing
    the rows are imported in one transaction committed only if no row failed. Otherwise each
    row is its own transaction. Rows already imported (same natural key) are skipped."""
    require_admin(actor)
    lang = "en" if actor.language.startswith("en") else "zh"
    now = services.clock.now()
    today = local_today(services.clock)
    ledger = read_ledger(data, lang)
    report = ImportReport(file_name, dry_run, all_or_nothing)
    cipher = pii.cipher_for(services.settings)
    replay = _Replay.of(services)
    with services.uow() as uow:
        units = _Units(uow)
        office: UnitRef | None = None
        if unit_id is not None:
            office = units.by_id.get(unit_id)
            if office is None or not actor.covers(office.path):
                raise ValidationError("unknown unit", {"unit_id": ["Unknown unit."]})
    seen: dict[str, int] = {}
    single = dry_run or all_or_nothing
    shared = services.uow() if single else None
    if shared is not None:
        shared.__enter__()
    try:
        for number, raw in ledger.rows:
            row = parse_row(number, raw, units, office, today, lang)
            result = RowResult(
                number,
                "failed",
                name=row.get("name"),
                received_on=row.get("received_on"),
                subject=row.get("subject"),
            )
            report.rows.append(result)
            if row.errors:
                result.errors = row.errors
                if progress:
                    progress(1)
                continue
            key = natural_key(cipher, row)
            if key in seen:
                result.errors = {
                    "": [
                        _msg(
                            lang,
                            f"Duplicate of row {seen[key]} of this file.",
                            f"与本文件第 {seen[key]} 行重复。",
                        )
                    ]
                }
                if progress:
                    progress(1)
                continue
            seen[key] = number
            uow = shared if shared is not None else services.uow().__enter__()
            try:
                _import_one(
                    replay,
                    uow,
                    actor,
                    row,
                    key,
                    result,
                    file_name,
                    now,
                    today,
                    lang,
                    nested=shared is not None,
                )
                if shared is None and result.status == "imported":
                    uow.commit()
            finally:
                if shared is None:
                    uow.__exit__(None, None, None)
            if progress:
                progress(1)
        if shared is not None:
            if dry_run or report.failed:
                for r in report.rows:
                    if r.status == "imported":
                        r.status = "would_import"
            else:
                shared.commit()
                report.committed = True
        else:
            report.committed = report.count("imported") > 0
    finally:
        if shared is not None:
            shared.__exit__(None, None, None)
    return report


def _import_one(
    replay: _Replay,
    uow: UnitOfWork,
    actor: Actor,
    row: ParsedRow,
    key: str,
    result: RowResult,
    file_name: str,
    now: datetime,
    today: date,
    lang: str,
    *,
    nested: bool,
) -> None:
    """Import one checked row; a failure undoes only this row's writes."""
    session = uow.session
    earlier = session.scalar(select(PetitionImport).where(PetitionImport.natural_key == key))
    if earlier is not None:
        case_no = session.scalar(select(Case.case_no).where(Case.id == earlier.petition_id))
        result.status = "skipped"
        result.case_no = case_no
        result.errors = {
            "": [
                _msg(
                    lang, f"Already imported as {case_no}; skipped.", f"已导入为 {case_no}，跳过。"
                )
            ]
        }
        return
    registered = _existing_registration(uow, row)
    if registered is not None:
        result.errors = {
            "": [
                _msg(
                    lang,
                    f"Duplicate: already registered as {registered}.",
                    f"重复：系统中已登记为 {registered}。",
                )
            ]
        }
        return
    savepoint = session.begin_nested() if nested else None
    try:
        case = import_historical_petition(
            replay, uow, actor, row, key=key, file_name=file_name, now=now, today=today
        )
    except FengqiaoError as exc:
        if savepoint is not None:
            savepoint.rollback()
        result.errors = _errors_of(exc)
        return
    except RowFailed as exc:
        if savepoint is not None:
            savepoint.rollback()
        result.errors = exc.errors
        return
    if savepoint is not None:
        savepoint.commit()
    result.status = "imported"
    result.case_no = case.case_no


# -- workbooks: the template and the report of failed rows -----------------------------------


def template_xlsx(generated_at: datetime) -> bytes:
    """The import template: the ledger's columns, an example row and a sheet of explanations."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "信访台账"
    columns = [Column(c.header + ("*" if c.required else ""), c.width) for c in LEDGER_COLUMNS]
    prepare_sheet(
        ws,
        "信访事项登记台账（导入模板）",
        "带 * 的列必填；第4行为示例，导入前请删除。日期写作 2022-03-05。",
        columns,
    )
    for index, column in enumerate(LEDGER_COLUMNS, start=1):
        if column.help_zh:
            ws.cell(row=3, column=index).comment = Comment(
                f"{column.help_zh}\n{column.help_en}", "枫桥"
            )
    write_row(ws, 4, [c.example for c in LEDGER_COLUMNS])
    for key, enum in _ENUM_COLUMNS.items():
        index = [c.key for c in LEDGER_COLUMNS].index(key) + 1
        letter = ws.cell(row=4, column=index).column_letter
        choices = ",".join(m.label("zh") for m in enum)
        check = DataValidation(type="list", formula1=f'"{choices}"', allow_blank=True)
        check.add(f"{letter}4:{letter}{MAX_ROWS}")
        ws.add_data_validation(check)
    help_ws = wb.create_sheet("填写说明")
    prepare_sheet(
        help_ws,
        "填写说明 / Columns",
        "",
        [
            Column("列名", 18),
            Column("必填", 6),
            Column("说明", 50),
            Column("Column", 18),
            Column("Notes", 50),
        ],
    )
    for line, column in enumerate(LEDGER_COLUMNS, start=4):
        write_row(
            help_ws,
            line,
            [
                column.header,
                "是" if column.required else "",
                column.help_zh,
                column.key,
                column.help_en,
            ],
        )
    return workbook_bytes(wb)


REPORT_COLUMNS: tuple[Column, ...] = (
    Column("行号", 6),
    Column("结果", 10),
    Column("收到日期", 12),
    Column("信访人", 10),
    Column("信访事项", 30),
    Column("编号", 16),
    Column("原因", 60),
)
STATUS_ZH = {
    "imported": "已导入",
    "would_import": "可导入",
    "skipped": "已导入过，跳过",
    "failed": "失败",
}


def report_xlsx(report: ImportReport, generated_at: datetime) -> bytes:
    """The rows that failed (and those skipped), with why, as a workbook next to the input."""
    from engine.services.excel import write_ledger

    rows = [
        [
            r.row,
            STATUS_ZH.get(r.status, r.status),
            r.received_on,
            r.name,
            r.subject,
            r.case_no,
            "\n".join(r.messages()),
        ]
        for r in report.rows
        if r.status in ("failed", "skipped")
    ]
    summary = (
        f"文件：{report.file_name}  共 {len(report.rows)} 行，"
        f"导入 {report.count('imported')}，可导入 {report.count('would_import')}，"
        f"跳过 {report.count('skipped')}，失败 {report.count('failed')}"
        + ("（试运行，未写入）" if report.dry_run else "")
    )
    return write_ledger(
        "导入结果",
        "信访台账导入结果：失败和跳过的行",
        REPORT_COLUMNS,
        rows,
        generated_at=generated_at,
        stamp_extra=summary,
    )
