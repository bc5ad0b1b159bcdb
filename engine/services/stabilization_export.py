"""The key-person risk ledger (管控风险研判台账) as an Excel workbook (issue 4, issue 8).

One row per person with the latest assessment; Chinese headers, frozen header rows, set
column widths, A4-landscape print setup and a generated-at stamp. ID and phone numbers are
masked: the ledger is a list, and whole numbers are only shown (and audited) on the file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from openpyxl import Workbook
from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.clock import LOCAL_TZ
from engine.domain.enums import KeyPersonSource, RiskLevel
from engine.persistence.models import (
    KeyPerson,
    KeyPersonMember,
    KeyPersonPetition,
    KeyPersonRiskEntry,
)
from engine.services.access import Actor
from engine.services.excel import (
    HEADER_ROW,
    Column,
    generated_stamp,
    prepare_sheet,
    workbook_bytes,
    write_row,
)
from engine.services.stabilization import (
    STATUS_LABELS,
    KeyPersonFilter,
    key_person_query,
    unit_names,
    user_names,
)

MAX_ROWS = 20_000

# (header, width in characters)
COLUMNS: tuple[tuple[str, int], ...] = (
    ("序号", 6),
    ("姓名", 10),
    ("身份证号", 20),
    ("联系电话", 14),
    ("所属村（社区）", 12),
    ("人员来源", 10),
    ("交办文号", 16),
    ("主要诉求", 30),
    ("信访次数", 8),
    ("赴省/进京次数", 10),
    ("风险等级", 8),
    ("研判日期", 12),
    ("研判意见", 30),
    ("管控措施", 26),
    ("化解方案", 28),
    ("方案期限", 12),
    ("包案领导", 10),
    ("责任单位", 12),
    ("专班成员", 22),
    ("最近联系", 12),
    ("下次联系", 12),
    ("联系是否逾期", 8),
    ("敏感节点管控方案", 24),
    ("状态", 10),
    ("销号日期", 12),
)


def ledger_rows(services: Services, actor: Actor, flt: KeyPersonFilter) -> list[list[Any]]:
    """The ledger's rows for the files the caller may see, in registration order."""
    with services.uow() as uow:
        people = list(
            uow.session.scalars(key_person_query(actor, flt).order_by(KeyPerson.id).limit(MAX_ROWS))
        )
        ids = [p.id for p in people]
        if not ids:
            return []
        latest_id = (
            select(func.max(KeyPersonRiskEntry.id))
            .where(KeyPersonRiskEntry.key_person_id.in_(ids))
            .group_by(KeyPersonRiskEntry.key_person_id)
        )
        latest = {
            r.key_person_id: r
            for r in uow.session.scalars(
                select(KeyPersonRiskEntry).where(KeyPersonRiskEntry.id.in_(latest_id))
            )
        }
        petition_counts = {
            int(r[0]): int(r[1])
            for r in uow.session.execute(
                select(KeyPersonPetition.key_person_id, func.count())
                .where(KeyPersonPetition.key_person_id.in_(ids))
                .group_by(KeyPersonPetition.key_person_id)
            )
        }
        members: dict[int, list[str]] = {}
        for m in uow.session.scalars(
            select(KeyPersonMember)
            .where(KeyPersonMember.key_person_id.in_(ids), KeyPersonMember.active.is_(True))
            .order_by(KeyPersonMember.id)
        ):
            members.setdefault(m.key_person_id, []).append(f"{m.name}（{m.role}）")
        units = unit_names(
            uow, {p.village_id for p in people} | {p.responsible_unit_id or 0 for p in people}
        )
        leaders = user_names(uow, {p.lead_leader_id or 0 for p in people})
        rows: list[list[Any]] = []
        for index, p in enumerate(people, start=1):
            entry = latest.get(p.id)
            rows.append(
                [
                    index,
                    p.name,
                    p.id_number_masked,
                    p.phone_masked,
                    units.get(p.village_id),
                    KeyPersonSource(p.source).label(),
                    p.assigned_ref,
                    p.core_demand,
                    petition_counts.get(p.id, 0),
                    f"{p.escalations_province}/{p.escalations_capital}",
                    RiskLevel(p.risk_level).label() if p.risk_level else "未研判",
                    entry.assessed_on if entry else None,
                    entry.assessment if entry else p.assessment,
                    p.measures,
                    p.plan,
                    p.plan_due_on,
                    leaders.get(p.lead_leader_id or 0),
                    units.get(p.responsible_unit_id or 0),
                    "、".join(members.get(p.id, [])),
                    p.last_contact_on,
                    p.next_contact_on,
                    "是" if p.contact_overdue_since else "否",
                    p.sensitive_plan,
                    STATUS_LABELS.get(p.status, p.status),
                    p.signed_off_on,
                ]
            )
        return rows


def build_key_person_ledger(rows: list[list[Any]], *, generated_at: datetime) -> bytes:
    """The workbook: title, stamp, headers and one row per person, ready to print."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "管控风险研判台账"
    prepare_sheet(
        ws,
        "重点信访人员管控风险研判台账",
        generated_stamp(generated_at, f"共 {len(rows)} 人"),
        [Column(header, width) for header, width in COLUMNS],
        freeze_columns=2,  # headers and names stay visible
    )
    for r, values in enumerate(rows, start=HEADER_ROW + 1):
        write_row(ws, r, values)
    return workbook_bytes(wb)


def export_key_person_ledger(
    services: Services, actor: Actor, flt: KeyPersonFilter
) -> tuple[bytes, str]:
    """GET /exports/key-person-ledger.xlsx: the workbook and its file name."""
    now = services.clock.now()
    rows = ledger_rows(services, actor, flt)
    local = now.astimezone(LOCAL_TZ)
    return build_key_person_ledger(rows, generated_at=now), f"管控风险研判台账-{local:%Y%m%d}.xlsx"
