"""Deadline rules as data, and the arithmetic that applies them (DOMAIN.md §2, §6).

Every statutory rule names its source. Lengths marked configurable in DOMAIN.md are defaults
here; callers pass the configured value through ``length_override``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType
from typing import Literal

from engine.domain.calendar import DueDate, WorkingCalendar
from engine.domain.enums import DeadlineState, ReviewLevel, RiskLevel, WarningLevel

Unit = Literal["days", "working_days"]


class RuleViolation(ValueError):
    """A business rule refused a value; carries the offending field and en/zh messages."""

    def __init__(self, field: str, message_en: str, message_zh: str) -> None:
        """Record the field and both messages; ``str()`` gives the English one."""
        super().__init__(message_en)
        self.field = field
        self.message_en = message_en
        self.message_zh = message_zh

    def message(self, lang: str = "zh") -> str:
        """Return the message in ``lang`` ('en', otherwise Chinese)."""
        return self.message_en if lang == "en" else self.message_zh


@dataclass(frozen=True)
class DeadlineRule:
    """One deadline: how long, in which unit, from which business date, on what authority."""

    kind: str
    length: int | None  # None: the due date is given (e.g. by the district), not computed
    unit: Unit
    counted_from: str
    source: str
    label_zh: str
    label_en: str
    setting: str | None = None  # name of the setting that may override ``length``

    def label(self, lang: str = "zh") -> str:
        """Return the rule's label in ``lang``."""
        return self.label_en if lang == "en" else self.label_zh


def _table(*rules: DeadlineRule) -> Mapping[str, DeadlineRule]:
    """Index rules by kind, refusing duplicates."""
    table: dict[str, DeadlineRule] = {}
    for rule in rules:
        if rule.kind in table:
            raise RuntimeError(f"duplicate deadline rule {rule.kind!r}")
        table[rule.kind] = rule
    return MappingProxyType(table)


# ---- petitions: 信访工作条例 (2022) ----------------------------------------------------------

MAX_EXTENSION_DAYS = 30  # 信访工作条例 Art. 34: extension of at most 30 days
MAX_EXTENSIONS = 1  # 信访工作条例 Art. 34: extension granted once, with the head's approval
DEFAULT_EVALUATION_WINDOW_DAYS = 15  # [configurable] DOMAIN.md §6, no national rule
DEFAULT_WARNING_DAYS = 3  # [configurable] DOMAIN.md §6, yellow-card lead time

PETITION_RULES: Mapping[str, DeadlineRule] = _table(
    DeadlineRule(
        kind="register_forward",
        length=15,  # 信访工作条例 Art. 22
        unit="days",
        counted_from="received_on",
        source="信访工作条例 Art. 22",
        label_zh="登记并转送交办",
        label_en="Register and forward/assign",
    ),
    DeadlineRule(
        kind="acceptance_notice",
        length=15,  # 信访工作条例 Art. 23
        unit="days",
        counted_from="received_on",
        source="信访工作条例 Art. 23",
        label_zh="受理告知",
        label_en="Acceptance notice",
    ),
    DeadlineRule(
        kind="remit_objection",
        length=5,  # 信访工作条例 Art. 23: 5 working days
        unit="working_days",
        counted_from="received_on",
        source="信访工作条例 Art. 23",
        label_zh="职权异议",
        label_en="Objection: outside remit",
    ),
    DeadlineRule(
        kind="reply",
        length=60,  # 信访工作条例 Art. 34
        unit="days",
        counted_from="decided_on",
        source="信访工作条例 Art. 34",
        label_zh="办结答复",
        label_en="Written reply",
    ),
    DeadlineRule(
        kind="evaluation_window",
        length=DEFAULT_EVALUATION_WINDOW_DAYS,
        unit="days",
        counted_from="delivered_on",
        source="setting (DOMAIN.md §6)",
        label_zh="满意度评价期限",
        label_en="Evaluation window",
        setting="evaluation_window_days",
    ),
    DeadlineRule(
        kind="review_request_window",
        length=30,  # 信访工作条例 Art. 35
        unit="days",
        counted_from="delivered_on",
        source="信访工作条例 Art. 35",
        label_zh="复查申请期限",
        label_en="Review request window",
    ),
    DeadlineRule(
        kind="review_decision",
        length=30,  # 信访工作条例 Art. 35
        unit="days",
        counted_from="requested_on",
        source="信访工作条例 Art. 35",
        label_zh="复查意见",
        label_en="Review decision",
    ),
    DeadlineRule(
        kind="re_review_request_window",
        length=30,  # 信访工作条例 Art. 36
        unit="days",
        counted_from="delivered_on",
        source="信访工作条例 Art. 36",
        label_zh="复核申请期限",
        label_en="Re-review request window",
    ),
    DeadlineRule(
        kind="re_review_decision",
        length=30,  # 信访工作条例 Art. 36; hearing time is not counted (pass ``paused_days``)
        unit="days",
        counted_from="requested_on",
        source="信访工作条例 Art. 36",
        label_zh="复核意见",
        label_en="Re-review decision",
    ),
    DeadlineRule(
        kind="suggestion_feedback",
        length=30,  # 信访条例 (2005) Art. 36, kept as the default
        unit="days",
        counted_from="received_on",
        source="信访条例 (2005) Art. 36",
        label_zh="建议意见书面反馈",
        label_en="Feedback on a suggestion",
        setting="suggestion_feedback_days",
    ),
    DeadlineRule(
        kind="assigned",
        length=None,  # the district's own due date, given with the assignment
        unit="days",
        counted_from="assigned_on",
        source="上级交办 (due date set by the district)",
        label_zh="上级交办期限",
        label_en="Due date set by the district",
    ),
)

# ---- government information disclosure: 政府信息公开条例 (2019) ------------------------------

OGI_RULES: Mapping[str, DeadlineRule] = _table(
    DeadlineRule(
        kind="ogi_reply",
        length=20,  # 政府信息公开条例 Art. 33: 20 working days; consultation time not counted
        unit="working_days",
        counted_from="received_on",
        source="政府信息公开条例 Art. 31, 33",
        label_zh="依申请公开答复",
        label_en="Disclosure reply",
    ),
    DeadlineRule(
        kind="ogi_extension",
        length=20,  # 政府信息公开条例 Art. 33: extension ≤ 20 working days, approved
        unit="working_days",
        counted_from="due_on",
        source="政府信息公开条例 Art. 33",
        label_zh="依申请公开延期",
        label_en="Disclosure extension",
    ),
    DeadlineRule(
        kind="ogi_correction",
        length=7,  # 政府信息公开条例 Art. 30: correction notice within 7 working days
        unit="working_days",
        counted_from="received_on",
        source="政府信息公开条例 Art. 30",
        label_zh="补正告知",
        label_en="Correction notice",
    ),
)

# ---- disputes: 人民调解法 (2011) and practice ---------------------------------------------

MEDIATION_RULES: Mapping[str, DeadlineRule] = _table(
    DeadlineRule(
        kind="mediation_target",
        length=30,  # [practice] 人民调解工作若干规定 (司法部 2002) Art. 33: about one month
        unit="days",
        counted_from="started_on",
        source="人民调解工作若干规定 (司法部 2002) Art. 33 [practice]",
        label_zh="调解期限",
        label_en="Mediation target",
        setting="mediation_target_days",
    ),
    DeadlineRule(
        kind="judicial_confirmation",
        length=30,  # 人民调解法 Art. 33
        unit="days",
        counted_from="effective_on",
        source="人民调解法 Art. 33",
        label_zh="司法确认申请期限",
        label_en="Judicial confirmation window",
    ),
)

# [configurable] DOMAIN.md §6: hazard time limit by risk level (defaults).
DEFAULT_HAZARD_TIME_LIMIT_DAYS: Mapping[RiskLevel, int] = MappingProxyType(
    {RiskLevel.high: 7, RiskLevel.medium: 15, RiskLevel.low: 30}
)

# [configurable] DOMAIN.md §6: contact cadence with key petitioners by risk level (defaults).
DEFAULT_CONTACT_CADENCE_DAYS: Mapping[RiskLevel, int] = MappingProxyType(
    {RiskLevel.high: 7, RiskLevel.medium: 14, RiskLevel.low: 30}
)

HAZARD_RULES: Mapping[str, DeadlineRule] = _table(
    *(
        DeadlineRule(
            kind=f"hazard_{level.value}",
            length=days,
            unit="days",
            counted_from="found_on",
            source="setting (DOMAIN.md §6)",
            label_zh=f"隐患化解时限（{level.label('zh')}风险）",
            label_en=f"Hazard time limit ({level.label('en').lower()} risk)",
            setting="hazard_time_limit_days",
        )
        for level, days in DEFAULT_HAZARD_TIME_LIMIT_DAYS.items()
    )
)

ALL_RULES: Mapping[str, DeadlineRule] = _table(
    *PETITION_RULES.values(),
    *OGI_RULES.values(),
    *MEDIATION_RULES.values(),
    *HAZARD_RULES.values(),
)


def get_rule(kind: str) -> DeadlineRule:
    """Return the rule of ``kind`` from ``ALL_RULES``, raising KeyError naming the kind."""
    try:
        return ALL_RULES[kind]
    except KeyError:
        raise KeyError(f"no deadline rule {kind!r}") from None


def hazard_rule(level: RiskLevel) -> DeadlineRule:
    """Return the default time-limit rule for a hazard of ``level`` (DOMAIN.md §6)."""
    return HAZARD_RULES[f"hazard_{level.value}"]


def compute_due(
    rule: DeadlineRule,
    start: date,
    calendar: WorkingCalendar,
    *,
    length_override: int | None = None,
    paused_days: int = 0,
) -> DueDate:
    """Apply ``rule`` from ``start``; ``paused_days`` (hearing, consultation) are not counted."""
    length = length_override if length_override is not None else rule.length
    if length is None:
        raise RuleViolation(
            "due_on",
            f"the due date of {rule.kind!r} is given, not computed; enter it",
            f"“{rule.label_zh}”的期限由交办方确定，请直接填写到期日",
        )
    if length < 0 or paused_days < 0:
        raise ValueError(f"negative length ({length}) or pause ({paused_days}) for {rule.kind!r}")
    total = length + paused_days
    if rule.unit == "working_days":
        return calendar.add_working_days(start, total)
    return calendar.add_calendar_days(start, total)


def extend(
    due: date,
    days: int,
    calendar: WorkingCalendar,
    *,
    previous_extensions: int = 0,
) -> DueDate:
    """Return the due date after an approved extension, counted from the original due date."""
    # 信访工作条例 Art. 34: at most 30 days, once, counted from the original due date.
    if previous_extensions >= MAX_EXTENSIONS:
        raise RuleViolation(
            "extension",
            "a petition can be extended only once (信访工作条例 Art. 34)",
            "信访事项办理期限只能延长一次（《信访工作条例》第三十四条）",
        )
    if not 1 <= days <= MAX_EXTENSION_DAYS:
        raise RuleViolation(
            "days",
            f"an extension must be 1 to {MAX_EXTENSION_DAYS} days, got {days} "
            "(信访工作条例 Art. 34)",
            f"延长期限应为1至{MAX_EXTENSION_DAYS}日，填写为{days}日（《信访工作条例》第三十四条）",
        )
    return calendar.add_calendar_days(due, days)


def request_window_end(
    delivered_on: date,
    calendar: WorkingCalendar,
    level: ReviewLevel = ReviewLevel.review,
) -> DueDate:
    """Return the last day to request a review (Art. 35) or re-review (Art. 36)."""
    kind = "review_request_window" if level is ReviewLevel.review else "re_review_request_window"
    return compute_due(PETITION_RULES[kind], delivered_on, calendar)


def decision_due(
    requested_on: date,
    calendar: WorkingCalendar,
    level: ReviewLevel = ReviewLevel.review,
    *,
    paused_days: int = 0,
) -> DueDate:
    """Return the due date of a review (Art. 35) or re-review (Art. 36) decision."""
    kind = "review_decision" if level is ReviewLevel.review else "re_review_decision"
    return compute_due(PETITION_RULES[kind], requested_on, calendar, paused_days=paused_days)


def evaluation_window_end(
    delivered_on: date,
    calendar: WorkingCalendar,
    days: int = DEFAULT_EVALUATION_WINDOW_DAYS,
) -> DueDate:
    """Return the last day the petitioner may evaluate the handling (setting, default 15 days)."""
    return compute_due(
        PETITION_RULES["evaluation_window"], delivered_on, calendar, length_override=days
    )


def is_within_window(request_on: date, window_end: date) -> bool:
    """Return True if a request made on ``request_on`` is within a window ending ``window_end``."""
    return request_on <= window_end


def deadline_state(due_on: date, met_on: date | None, today: date) -> DeadlineState:
    """Return met / missed / pending for a deadline given when (if ever) it was met."""
    if met_on is not None:
        return DeadlineState.met if met_on <= due_on else DeadlineState.missed
    return DeadlineState.missed if today > due_on else DeadlineState.pending


def warning_level(due_on: date, today: date, warning_days: int) -> WarningLevel | None:
    """Return the red/yellow card (红黄牌) for an open deadline today, or None."""
    if warning_days < 0:
        raise ValueError(f"warning_days must not be negative, got {warning_days}")
    if today > due_on:
        return WarningLevel.red
    if today >= due_on - timedelta(days=warning_days):
        return WarningLevel.yellow
    return None


def check_business_date(
    value: date,
    *,
    today: date,
    not_before: date | None,
    field: str,
) -> None:
    """Refuse a business date in the future or before the previous step's date."""
    if value > today:
        raise RuleViolation(
            field,
            f"{field}: {value} is in the future (today is {today})",
            f"{field}：{value} 晚于今天（{today}），业务日期不能是将来的日期",
        )
    if not_before is not None and value < not_before:
        raise RuleViolation(
            field,
            f"{field}: {value} is before the previous step ({not_before})",
            f"{field}：{value} 早于上一环节的日期（{not_before}）",
        )
