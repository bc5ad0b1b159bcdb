"""The monthly screening ledger (矛盾纠纷排查化解台账) as an Excel workbook (issue 5, issue 8).

One sheet per unit plus a summary sheet (汇总), Chinese headers, frozen header rows, set
column widths, A4-landscape print setup and a generated-at stamp.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook
from sqlalchemy import select

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ
from engine.domain.enums import ResolutionMethod, RiskLevel, RoundStatus
from engine.errors import NotFoundError
from engine.persistence.models import Unit
from engine.services.access import Actor
from engine.services.excel import (
    HEADER_ROW,
    Column,
    generated_stamp,
    prepare_sheet,
    workbook_bytes,
    write_row,
)
from engine.services.screening import ledger_rows, list_rounds, parse_month

HAZARD_STATUS_ZH = {
    "open": "化解中",
    "pending_confirmation": "待单位确认",
    "pending_approval": "待平安办审批",
    "signed_off": "已销号",
}

# (header, width in characters, key of the ledger row or a function of it)
LEDGER_COLUMNS: tuple[tuple[str, int], ...] = (
    ("序号", 6),
    ("台账编号", 16),
    ("排查日期", 12),
    ("来源", 10),
    ("村（社区）/单位", 14),
    ("纠纷类型", 11),
    ("当事人", 18),
    ("涉及人数", 8),
    ("简要情况", 32),
    ("风险等级", 8),
    ("民转刑风险", 8),
    ("化解措施", 24),
    ("化解方式", 11),
    ("责任单位", 14),
    ("责任人", 10),
    ("包案领导", 10),
    ("化解时限", 12),
    ("化解进展", 26),
    ("状态", 12),
    ("是否结转", 8),
    ("销号日期", 12),
)

SUMMARY_COLUMNS: tuple[tuple[str, int], ...] = (
    ("序号", 6),
    ("单位", 18),
    ("报送截止日", 12),
    ("报送状态", 10),
    ("是否逾期", 8),
    ("零报告", 8),
    ("上报日期", 12),
    ("签批日期", 12),
    ("本月新增隐患", 10),
    ("上月结转隐患", 10),
    ("本月销号", 10),
    ("超期未销号", 10),
)

_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


def ledger_row_values(index: int, h: dict[str, Any]) -> list[Any]:
    """One ledger entry as the cells of its row, in LEDGER_COLUMNS order."""
    status = HAZARD_STATUS_ZH.get(h["status"], h["status"])
    if h["overdue"]:
        status += "（超期）"
    return [
        index,
        h["ledger_no"],
        h["found_on"],
        h["source"],
        h["unit_name"],
        h["dispute_type_label"],
        h["parties"],
        h["involved_count"],
        h["summary"],
        RiskLevel(h["risk_level"]).label(),
        "是" if h["criminal_risk"] else "否",
        h["measures"],
        ResolutionMethod(h["method"]).label(),
        h["responsible_unit_name"],
        h["responsible_person"],
        h["owning_leader"],
        h["time_limit_on"],
        h["progress"],
        status,
        "是" if h["carried_over"] else "否",
        h["signed_off_on"],
    ]


def _month_label(first: date) -> str:
    return f"{first.year}年{first.month}月"


def _sheet_title(name: str, taken: set[str]) -> str:
    base = _BAD_SHEET_CHARS.sub("_", name)[:28] or "单位"
    title, n = base, 2
    while title in taken:
        title = f"{base[:26]}({n})"
        n += 1
    taken.add(title)
    return title


def _columns(spec: tuple[tuple[str, int], ...]) -> list[Column]:
    return [Column(header, width) for header, width in spec]


def build_screening_ledger(
    rounds: list[dict[str, Any]],
    entries: list[dict[str, Any]],
    *,
    month: str,
    generated_at: datetime,
) -> bytes:
    """The workbook: a summary sheet, then one ledger sheet per unit (by unit code)."""
    first = parse_month(month)
    label = _month_label(first)
    stamp = generated_stamp(generated_at)
    by_unit: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        by_unit[entry["unit_id"]].append(entry)
    units: dict[int, tuple[str, str]] = {
        r["unit_id"]: (r["unit_code"], r["unit_name"]) for r in rounds
    }
    for entry in entries:
        units.setdefault(entry["unit_id"], (entry.get("unit_code") or "", entry["unit_name"]))
    round_of = {r["unit_id"]: r for r in rounds}

    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = "汇总"
    prepare_sheet(summary, f"{label}矛盾纠纷排查汇总表", stamp, _columns(SUMMARY_COLUMNS))
    taken = {"汇总"}
    row = HEADER_ROW + 1
    for index, (unit_id, (_code, name)) in enumerate(
        sorted(units.items(), key=lambda item: (item[1][0], item[0])), start=1
    ):
        rnd = round_of.get(unit_id)
        mine = by_unit.get(unit_id, [])
        new = sum(1 for e in mine if not e["carried_over"])
        carried = sum(1 for e in mine if e["carried_over"])
        signed = sum(
            1
            for e in mine
            if e["signed_off_on"] is not None and e["signed_off_on"].strftime("%Y-%m") == month
        )
        overdue = sum(1 for e in mine if e["overdue"])
        write_row(
            summary,
            row,
            [
                index,
                name,
                rnd["due_on"] if rnd else None,
                RoundStatus(rnd["status"]).label() if rnd else "未开启",
                ("是" if rnd["late"] else "否") if rnd else "",
                ("是" if rnd["zero_report"] else "否")
                if rnd and rnd["zero_report"] is not None
                else "",
                rnd["submitted_on"] if rnd else None,
                rnd["signed_on"] if rnd else None,
                new,
                carried,
                signed,
                overdue,
            ],
        )
        row += 1

        ws = wb.create_sheet(_sheet_title(name, taken))
        prepare_sheet(ws, f"{name} {label}矛盾纠纷排查化解台账", stamp, _columns(LEDGER_COLUMNS))
        line = HEADER_ROW + 1
        if rnd is not None and rnd["zero_report"] and not mine:
            ws.cell(row=line, column=1, value="本月零报告：未排查出矛盾纠纷。")
            ws.merge_cells(start_row=line, start_column=1, end_row=line, end_column=9)
        for n, entry in enumerate(mine, start=1):
            write_row(ws, line, ledger_row_values(n, entry))
            line += 1

    return workbook_bytes(wb)


def export_screening_ledger(
    services: Services, actor: Actor, month: str, unit_id: int | None = None
) -> tuple[bytes, str]:
    """GET /exports/screening-ledger.xlsx: the month's ledger in the caller's scope."""
    now = services.clock.now()
    today = now.astimezone(LOCAL_TZ).date()
    parse_month(month)
    with services.uow() as uow:
        if unit_id is not None:
            unit = uow.session.get(Unit, unit_id)
            if unit is None or not actor.covers(unit.path):
                raise NotFoundError("unit not found")
        rounds = list_rounds(uow, actor, month=month, unit_id=unit_id, today=today)
        entries = ledger_rows(uow, actor, month, unit_id, today)
        codes = dict(
            uow.session.execute(
                select(Unit.id, Unit.code).where(Unit.id.in_({e["unit_id"] for e in entries}))
            ).all()
        )
    for entry in entries:
        entry["unit_code"] = codes.get(entry["unit_id"], "")
    data = build_screening_ledger(rounds, entries, month=month, generated_at=now)
    return data, f"screening-ledger-{month}.xlsx"
