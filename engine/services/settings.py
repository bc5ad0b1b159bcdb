"""Business settings of DOMAIN.md §6: defaults here, admin overrides in the `settings` table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from engine.errors import NotFoundError, ValidationError
from engine.persistence.db import UnitOfWork
from engine.persistence.models import SettingValue
from engine.services.access import Actor, require_admin
from engine.services.audit import record_event


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its default, type and labels."""

    key: str
    default: Any
    kind: str  # int | bool | str | list | dict
    label_zh: str
    label_en: str


FIVE_CLEAR = ["基本情况清楚", "诉求清楚", "问题症结清楚", "现实表现清楚", "责任及措施清楚"]
FIVE_REDO = ["重新梳理", "重新调查", "重新评估", "重新制定方案", "重新明确责任"]

SPECS: dict[str, SettingSpec] = {
    s.key: s
    for s in [
        SettingSpec(
            "warning_days", 3, "int", "黄牌预警提前天数", "Yellow-warning lead time (days)"
        ),
        SettingSpec(
            "evaluation_window_days",
            15,
            "int",
            "评价期限（送达后天数）",
            "Evaluation window (days after delivery)",
        ),
        SettingSpec(
            "basic_satisfied_counts",
            True,
            "bool",
            "基本满意计入满意",
            "基本满意 counts as satisfied",
        ),
        SettingSpec(
            "screening_start_day", 1, "int", "排查开始日（每月）", "Screening start day of month"
        ),
        SettingSpec(
            "screening_due_day",
            25,
            "int",
            "排查上报截止日（每月）",
            "Screening report due day of month",
        ),
        SettingSpec(
            "screening_reminder_days",
            3,
            "int",
            "排查截止前提醒天数",
            "Screening reminder lead (days)",
        ),
        SettingSpec(
            "contact_cadence_days",
            {"high": 7, "medium": 14, "low": 30},
            "dict",
            "联系频次（天）",
            "Contact cadence by risk level (days)",
        ),
        SettingSpec("five_clear_items", FIVE_CLEAR, "list", "五清楚事项", "Five-clear checklist"),
        SettingSpec("five_redo_items", FIVE_REDO, "list", "五重新事项", "Five-redo checklist"),
        SettingSpec(
            "sensitive_periods", [], "list", "敏感节点（起止日期）", "Sensitive periods (start/end)"
        ),
        SettingSpec(
            "hazard_time_limit_days",
            {"high": 7, "medium": 15, "low": 30},
            "dict",
            "隐患化解时限（天）",
            "Hazard time limit by risk level (days)",
        ),
        SettingSpec(
            "signoff_unit_code", "S01-ZZ", "str", "销号审批单位代码", "Unit that approves sign-off"
        ),
        SettingSpec("sms_quiet_hours", "22:00-07:00", "str", "短信免打扰时段", "SMS quiet hours"),
        SettingSpec("digest_time", "08:30", "str", "每日汇总发送时间", "Daily digest time"),
    ]
}

_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "bool": bool,
    "str": str,
    "list": list,
    "dict": dict,
}


def get_setting(uow: UnitOfWork, key: str) -> Any:
    """The admin's value of a setting, else its default."""
    spec = SPECS.get(key)
    if spec is None:
        raise NotFoundError(f"unknown setting '{key}'")
    row = uow.session.get(SettingValue, key)
    return spec.default if row is None else row.value


def all_settings(uow: UnitOfWork) -> dict[str, Any]:
    """Every setting with its current value."""
    stored = {r.key: r.value for r in uow.session.scalars(select(SettingValue))}
    return {k: stored.get(k, s.default) for k, s in SPECS.items()}


def set_settings(
    uow: UnitOfWork, actor: Actor, values: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """Change settings (admin); each value is type-checked; unknown keys are refused."""
    require_admin(actor)
    errors: dict[str, list[str]] = {}
    for key, value in values.items():
        spec = SPECS.get(key)
        if spec is None:
            errors[key] = ["Unknown setting."]
        elif not isinstance(value, _TYPES[spec.kind]) or (
            spec.kind == "int" and isinstance(value, bool)
        ):
            errors[key] = [f"Must be of type {spec.kind}."]
        elif spec.kind == "int" and not 0 <= int(str(value)) <= 366:
            errors[key] = ["Must be between 0 and 366."]
    if errors:
        raise ValidationError("invalid settings", errors)
    for key, value in values.items():
        row = uow.session.get(SettingValue, key)
        if row is None:
            uow.session.add(SettingValue(key=key, value=value, updated_at=now))
        else:
            row.value = value
            row.updated_at = now
    record_event(
        uow, "settings.changed", actor_id=actor.user_id, at=now, detail={"values": dict(values)}
    )
    return all_settings(uow)
