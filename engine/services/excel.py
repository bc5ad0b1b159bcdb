"""Excel ledgers (台账) the offices print and file: one look for every export (issue 8).

Every sheet has a title row, a generated-at stamp, Chinese column headers that stay frozen
and repeat on each printed page, set column widths, and an A4-landscape page fitted to the
paper's width. The petition ledger (信访台账) is built here; the screening and key-person
ledgers can use the same writer (`ledger_sheet`).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import select

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ
from engine.domain.enums import (
    AcceptanceDecision,
    Category,
    Channel,
    DeliveryMethod,
    HandlingMethod,
    Rating,
    ReplyOutcome,
    Source,
)
from engine.persistence.models import Petition, Unit
from engine.services import petitions
from engine.services.access import Actor

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER_ROW = 3  # rows 1-2: title and generated-at stamp; row 3: the column headers
MAX_ROWS = 20_000  # a ledger is a printable list, not a database dump
PAGE_SIZE = 200  # GET /petitions' largest page

_THIN = Side(style="thin", color="808080")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
_WRAP = Alignment(wrap_text=True, vertical="top")
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)


@dataclass(frozen=True)
class Column:
    """A ledger column: its Chinese header and its width in characters."""

    header: str
    width: int


def generated_stamp(generated_at: datetime, extra: str = "") -> str:
    """The stamp under the title: when and by what the sheet was produced (Beijing time)."""
    local = generated_at.astimezone(LOCAL_TZ)
    stamp = f"生成时间：{local:%Y-%m-%d %H:%M}（北京时间）  由枫桥系统导出"
    return f"{stamp}  {extra}" if extra else stamp


def prepare_sheet(
    ws: Worksheet,
    title: str,
    stamp: str,
    columns: Sequence[Column],
    *,
    freeze_columns: int = 0,
) -> None:
    """Title, stamp, headers, widths, frozen header rows and the A4-landscape print setup."""
    last = get_column_letter(len(columns))
    ws["A1"] = title
    ws["A1"].font = Font(bold=True, size=14)
    ws["A1"].alignment = Alignment(horizontal="center", vertical="center")
    ws.merge_cells(f"A1:{last}1")
    ws["A2"] = stamp
    ws["A2"].font = Font(size=9, color="595959")
    ws.merge_cells(f"A2:{last}2")
    ws.row_dimensions[1].height = 24
    for col, column in enumerate(columns, start=1):
        cell = ws.cell(row=HEADER_ROW, column=col, value=column.header)
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
        cell.alignment = _CENTER
        cell.border = _BORDER
        ws.column_dimensions[get_column_letter(col)].width = column.width
    ws.freeze_panes = ws.cell(row=HEADER_ROW + 1, column=1 + freeze_columns)
    ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.5
    ws.oddFooter.center.text = "第 &P 页，共 &N 页"


def write_row(ws: Worksheet, row: int, values: Sequence[Any]) -> None:
    """One bordered, wrapped data row; dates shown as YYYY-MM-DD."""
    for col, value in enumerate(values, start=1):
        cell = ws.cell(row=row, column=col, value=None if value == "" else value)
        cell.border = _BORDER
        cell.alignment = _WRAP
        if isinstance(value, date):
            cell.number_format = "yyyy-mm-dd"


def ledger_sheet(
    wb: Workbook,
    sheet_name: str,
    title: str,
    columns: Sequence[Column],
    rows: Iterable[Sequence[Any]],
    *,
    generated_at: datetime,
    stamp_extra: str = "",
    freeze_columns: int = 0,
) -> Worksheet:
    """Add (or fill the first empty) sheet with a ready-to-print ledger."""
    existing = wb.active
    if existing is not None and existing.max_row == 1 and existing["A1"].value is None:
        ws = existing
        ws.title = sheet_name
    else:
        ws = wb.create_sheet(sheet_name)
    prepare_sheet(
        ws,
        title,
        generated_stamp(generated_at, stamp_extra),
        columns,
        freeze_columns=freeze_columns,
    )
    line = HEADER_ROW + 1
    for values in rows:
        write_row(ws, line, values)
        line += 1
    return ws


def workbook_bytes(wb: Workbook) -> bytes:
    """The workbook as an .xlsx file's bytes."""
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def write_ledger(
    sheet_name: str,
    title: str,
    columns: Sequence[Column],
    rows: Iterable[Sequence[Any]],
    *,
    generated_at: datetime,
    stamp_extra: str = "",
    freeze_columns: int = 0,
) -> bytes:
    """A one-sheet ledger workbook as bytes."""
    wb = Workbook()
    ledger_sheet(
        wb,
        sheet_name,
        title,
        columns,
        rows,
        generated_at=generated_at,
        stamp_extra=stamp_extra,
        freeze_columns=freeze_columns,
    )
    return workbook_bytes(wb)


# -- the petition ledger (信访台账) ------------------------------------------------------------

PETITION_LEDGER_COLUMNS: tuple[Column, ...] = (
    Column("序号", 6),
    Column("编号", 16),
    Column("收到日期", 12),
    Column("信访人", 12),
    Column("身份证号", 20),
    Column("联系电话", 14),
    Column("村（社区）", 12),
    Column("信访形式", 8),
    Column("信访类别", 10),
    Column("来源", 10),
    Column("交办文号", 14),
    Column("信访代理人", 10),
    Column("人数", 6),
    Column("信访事项", 30),
    Column("受理情况", 10),
    Column("受理日期", 12),
    Column("责任单位", 14),
    Column("办理方式", 10),
    Column("处理结果", 10),
    Column("答复送达日期", 12),
    Column("送达方式", 10),
    Column("评价", 10),
    Column("评价日期", 12),
    Column("状态", 12),
    Column("办结日期", 12),
    Column("是否超期", 8),
    Column("重复信访", 8),
)


def _label(enum: Any, value: str | None) -> str:
    if not value:
        return ""
    try:
        return str(enum(value).label("zh"))
    except ValueError:
        return value


def petition_ledger_rows(
    services: Services, actor: Actor, flt: petitions.PetitionFilter
) -> list[list[Any]]:
    """The ledger's rows: GET /petitions with the same filters and scope, every page."""
    items: list[dict[str, Any]] = []
    page = 1
    while len(items) < MAX_ROWS:
        chunk = petitions.list_petitions(
            services,
            actor,
            petitions.PetitionFilter(
                status=flt.status,
                village_id=flt.village_id,
                overdue=flt.overdue,
                q=flt.q,
                received_from=flt.received_from,
                received_to=flt.received_to,
                unit_id=flt.unit_id,
                page=page,
                per_page=PAGE_SIZE,
            ),
        )
        items.extend(chunk["items"])
        if page * PAGE_SIZE >= chunk["total"]:
            break
        page += 1
    items = items[:MAX_ROWS]
    ids = [int(i["id"]) for i in items]
    extra: dict[int, Petition] = {}
    names: dict[int, str] = {}
    with services.uow() as uow:
        for start in range(0, len(ids), 1000):
            for p in uow.session.scalars(
                select(Petition).where(Petition.case_id.in_(ids[start : start + 1000]))
            ):
                extra[p.case_id] = p
        unit_ids = {i for p in extra.values() for i in (p.village_id, p.responsible_unit_id) if i}
        if unit_ids:
            names = dict(
                uow.session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(unit_ids))).all()  # type: ignore[arg-type]
            )
        rows: list[list[Any]] = []
        for index, item in enumerate(items, start=1):
            p = extra[int(item["id"])]
            people = item["petitioners"]
            rows.append(
                [
                    index,
                    item["case_no"],
                    p.received_on,
                    "、".join(x["name"] for x in people),
                    "、".join(x["id_number"] for x in people if x["id_number"]),
                    "、".join(x["phone"] for x in people if x["phone"]),
                    names.get(p.village_id or 0, ""),
                    _label(Channel, p.channel),
                    _label(Category, p.category),
                    _label(Source, p.source),
                    p.assigned_ref or "",
                    p.proxy_agent or "",
                    p.headcount,
                    p.subject,
                    _label(AcceptanceDecision, p.decision),
                    p.decided_on,
                    names.get(p.responsible_unit_id or 0, ""),
                    _label(HandlingMethod, p.handling_method),
                    _label(ReplyOutcome, p.outcome),
                    p.delivered_on,
                    _label(DeliveryMethod, p.delivery_method),
                    _label(Rating, p.rating),
                    p.evaluated_on,
                    petitions.status_label(p.status, "zh"),
                    p.closed_on,
                    "是" if item["overdue"] else "否",
                    "是" if p.repeat_of_id else "否",
                ]
            )
        return rows


def export_petition_ledger(
    services: Services, actor: Actor, flt: petitions.PetitionFilter
) -> tuple[bytes, str]:
    """GET /exports/petition-ledger.xlsx: the 信访台账 of the petitions the list would show."""
    now = services.clock.now()
    rows = petition_ledger_rows(services, actor, flt)
    local = now.astimezone(LOCAL_TZ)
    span = ""
    if flt.received_from or flt.received_to:
        span = f"收到日期：{flt.received_from or '…'} 至 {flt.received_to or '…'}"
    data = write_ledger(
        "信访台账",
        "信访事项登记台账",
        PETITION_LEDGER_COLUMNS,
        rows,
        generated_at=now,
        stamp_extra=f"{span}  共 {len(rows)} 件".strip(),
        freeze_columns=2,
    )
    return data, f"信访台账-{local:%Y%m%d}.xlsx"
