"""Importing historical petition ledgers (issue 8): good and bad rows, re-import, dry run,
all-or-nothing, and imported closed cases counting in the figures of their own year."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.persistence.models import Case, Deadline, Petition, PetitionImport, Task
from engine.services import annual_report, petition_import, petitions
from engine.services.petition_import import LEDGER_COLUMNS, import_petitions
from tests.service.petition_support import ID_WANG, actor

HEADERS = [c.header for c in LEDGER_COLUMNS]


def ledger(rows: list[dict[str, Any]], *, title: bool = True) -> bytes:
    """A workbook in the common layout (a title row above the headers, as offices keep them)."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    if title:
        ws.append(["示范街道信访事项登记台账"])
    ws.append(HEADERS)
    for row in rows:
        ws.append([row.get(c.key) for c in LEDGER_COLUMNS])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


CLOSED = {
    "source_ref": "2022-001",
    "received_on": date(2022, 3, 7),
    "name": "王大伟",
    "id_number": ID_WANG,
    "phone": "13800138000",
    "village": "东风村",
    "channel": "走访",
    "category": "申诉求决",
    "proxy_agent": "村信访代理员",
    "subject": "东风村土地承包经营权纠纷",
    "request": "请求确认本户承包地边界",
    "decision": "受理",
    "decided_on": "2022-03-10",
    "responsible_unit": "V01",
    "handling_method": "调解",
    "outcome": "支持",
    "delivered_on": "2022/4/20",
    "delivery_method": "直接送达",
    "rating": "满意",
    "evaluated_on": "2022年4月25日",
}
NOT_ACCEPTED = {
    "received_on": "2022-05-06",
    "name": "李四",
    "village": "V02",
    "channel": "来信",
    "category": "建议意见",
    "subject": "红旗村路灯维修建议",
    "decision": "不予受理",
    "decided_on": "2022-05-09",
    "reason": "已进入诉讼程序",
}
UNEVALUATED = {
    "received_on": "2022-06-01",
    "name": "赵六",
    "village": "东风村",
    "channel": "online",
    "category": "claim",
    "source": "上级交办",
    "assigned_ref": "区信交〔2022〕5号",
    "assigned_due_on": "2022-07-15",
    "subject": "东风村拖欠工程款",
    "decision": "受理",
    "decided_on": "2022-06-02",
    "responsible_unit": "东风村",
    "outcome": "解释说明",
    "delivered_on": "2022-07-01",
}
BAD_DATE = {**NOT_ACCEPTED, "name": "钱七", "received_on": "2022-13-45"}
UNKNOWN_VILLAGE = {**NOT_ACCEPTED, "name": "孙八", "village": "不存在村"}
NO_NAME = {**NOT_ACCEPTED, "name": None, "subject": "无名信访"}


def good_and_bad() -> bytes:
    # Sheet rows: 1 title, 2 headers, 3.. data.
    return ledger(
        [CLOSED, NOT_ACCEPTED, BAD_DATE, UNKNOWN_VILLAGE, NO_NAME, dict(CLOSED), UNEVALUATED]
    )


def count(services: Services, model: Any) -> int:
    with services.uow() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(model)) or 0)


def test_good_rows_are_imported_and_bad_rows_reported_with_reasons(services: Services) -> None:
    admin = actor(services, "admin")
    report = import_petitions(services, admin, good_and_bad(), "2022台账.xlsx")
    by_row = {r.row: r for r in report.rows}
    assert [(r.row, r.status) for r in report.rows] == [
        (3, "imported"),
        (4, "imported"),
        (5, "failed"),
        (6, "failed"),
        (7, "failed"),
        (8, "failed"),
        (9, "imported"),
    ]
    assert "收到日期：日期无法识别：“2022-13-45”，请写作 2022-03-05。" in by_row[5].messages()
    assert by_row[6].messages() == ["村（社区）：系统中没有村（社区）“不存在村”。"]
    assert by_row[7].messages() == ["信访人：必填。"]
    assert by_row[8].messages() == ["与本文件第 3 行重复。"]
    assert report.committed
    assert count(services, PetitionImport) == 3

    clerk = actor(services, "clerk")
    closed = petitions.get_petition(services, clerk, _petition_id(services, by_row[3].case_no))
    assert by_row[3].case_no == "XF-2022-000001"
    assert closed["status"] == "evaluated" and closed["case_status"] == "completed"
    assert closed["rating"] == "satisfied" and closed["evaluated_on"] == date(2022, 4, 25)
    assert closed["proxy_agent"] == "村信访代理员"
    assert closed["petitioners"][0]["id_number"] == "1101**********1233"
    deadlines = {d["kind"]: d for d in closed["deadlines"]}
    assert deadlines["acceptance_notice"]["state"] == "met"
    assert deadlines["acceptance_notice"]["met_on"] == date(2022, 3, 10)
    assert deadlines["reply"]["met_on"] == date(2022, 4, 20)
    assert deadlines["reply"]["state"] == "met"
    assert deadlines["review_request_window"]["state"] == "missed"  # lapsed, quietly

    refused = petitions.get_petition(services, clerk, _petition_id(services, by_row[4].case_no))
    assert (refused["status"], refused["closed_on"]) == ("not_accepted", date(2022, 5, 9))
    lapsed = petitions.get_petition(services, clerk, _petition_id(services, by_row[9].case_no))
    assert lapsed["status"] == "not_evaluated" and lapsed["case_status"] == "completed"
    assert lapsed["source"] == "assigned"
    # Nothing of the imported cases is left to do, and no warning will be raised for them.
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Task).where(
            Task.status == "open")) == 0  # fmt: skip
        pending = uow.session.scalar(
            select(func.count()).select_from(Deadline).where(Deadline.state == "pending")
        )
    assert pending == 0


def test_imported_closed_cases_count_in_the_figures_of_their_own_year(
    services: Services,
) -> None:
    import_petitions(services, actor(services, "admin"), good_and_bad(), "2022台账.xlsx")
    report = annual_report.annual_report(services, actor(services, "admin"), 2022)
    figures = annual_report.flat_figures(report)
    assert figures["received"]["value"] == 3
    assert figures["assigned_from_above"]["value"] == 1
    assert figures["via_proxy"]["value"] == 1
    channels = {i["key"]: i["value"] for i in figures["by_channel"]["items"]}
    assert (channels["visit"], channels["letter"], channels["online"]) == (1, 1, 1)
    assert (figures["accepted_on_time_rate"]["numerator"],
            figures["accepted_on_time_rate"]["denominator"]) == (3, 3)  # fmt: skip
    assert figures["replied_on_time_rate"]["display"] == "100.0%"
    assert (figures["evaluation_rate"]["numerator"], figures["evaluation_rate"]["denominator"]) == (
        1,
        2,
    )
    assert figures["evaluation_rate"]["display"] == "50.0%"
    assert figures["satisfaction_rate"]["display"] == "100.0%"
    assert (
        annual_report.flat_figures(
            annual_report.annual_report(services, actor(services, "admin"), 2023)
        )["received"]["value"]
        == 0
    )


def test_reimporting_the_same_file_adds_nothing(services: Services) -> None:
    admin = actor(services, "admin")
    import_petitions(services, admin, good_and_bad(), "2022台账.xlsx")
    before = (count(services, Petition), count(services, Case), count(services, Deadline))
    again = import_petitions(services, admin, good_and_bad(), "2022台账-副本.xlsx")
    assert again.count("imported") == 0
    assert again.count("skipped") == 3
    assert again.count("failed") == 4
    assert again.rows[0].messages() == ["已导入为 XF-2022-000001，跳过。"]
    assert (count(services, Petition), count(services, Case), count(services, Deadline)) == before


def test_a_dry_run_changes_nothing(services: Services) -> None:
    admin = actor(services, "admin")
    before = (count(services, Petition), count(services, Case), count(services, PetitionImport))
    report = import_petitions(services, admin, good_and_bad(), "x.xlsx", dry_run=True)
    assert report.count("would_import") == 3 and report.count("failed") == 4
    assert not report.committed
    after = (count(services, Petition), count(services, Case), count(services, PetitionImport))
    assert after == before
    # ... and the real import afterwards gets the same case numbers a dry run would have.
    real = import_petitions(services, admin, good_and_bad(), "x.xlsx")
    assert [r.case_no for r in real.rows if r.status == "imported"] == [
        "XF-2022-000001",
        "XF-2022-000002",
        "XF-2022-000003",
    ]


def test_all_or_nothing_commits_nothing_when_a_row_fails(services: Services) -> None:
    admin = actor(services, "admin")
    report = import_petitions(services, admin, good_and_bad(), "x.xlsx", all_or_nothing=True)
    assert not report.committed and report.count("imported") == 0
    assert count(services, Petition) == 0
    clean = import_petitions(
        services, admin, ledger([CLOSED, NOT_ACCEPTED], title=False), "y.xlsx", all_or_nothing=True
    )
    assert clean.committed and clean.count("imported") == 2
    assert count(services, Petition) == 2


def test_the_failure_report_workbook_lists_each_failed_row_and_why(services: Services) -> None:
    from datetime import UTC, datetime

    report = import_petitions(services, actor(services, "admin"), good_and_bad(), "x.xlsx")
    ws = load_workbook(io.BytesIO(petition_import.report_xlsx(report, datetime.now(UTC)))).active
    assert ws is not None
    assert [c.value for c in ws[3]] == [
        "行号",
        "结果",
        "收到日期",
        "信访人",
        "信访事项",
        "编号",
        "原因",
    ]
    assert [ws.cell(row=r, column=1).value for r in range(4, 8)] == [5, 6, 7, 8]
    assert ws.cell(row=5, column=7).value == "村（社区）：系统中没有村（社区）“不存在村”。"
    assert ws.freeze_panes == "A4"


def test_a_file_without_the_ledger_headers_is_refused(services: Services) -> None:
    import pytest

    from engine.errors import ValidationError

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["姓名", "日期"])
    out = io.BytesIO()
    wb.save(out)
    with pytest.raises(ValidationError) as refused:
        import_petitions(services, actor(services, "admin"), out.getvalue(), "bad.xlsx")
    assert "file" in refused.value.errors
    with pytest.raises(ValidationError):
        import_petitions(services, actor(services, "admin"), b"not a workbook", "bad.xlsx")


def test_only_admins_import(services: Services) -> None:
    import pytest

    from engine.errors import PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        import_petitions(services, actor(services, "clerk"), good_and_bad(), "x.xlsx")
    assert count(services, Petition) == 0


def test_the_cli_shows_progress_prints_failures_and_writes_the_report(
    services: Services, tmp_path: Path, monkeypatch: Any
) -> None:
    import web.cli as cli

    monkeypatch.setattr(cli, "_services", lambda deploy=True, now=None: services)
    source = tmp_path / "2022台账.xlsx"
    source.write_bytes(good_and_bad())
    result = CliRunner().invoke(cli.main, ["import", "petitions", str(source), "--dry-run"])
    assert result.exit_code == 1, result.output
    assert "would import 3" in result.output and "failed 4" in result.output
    assert "row 6 [failed]: 村（社区）：系统中没有村（社区）“不存在村”。" in result.output
    assert (tmp_path / "2022台账.import-report.xlsx").exists()
    assert count(services, Petition) == 0
    result = CliRunner().invoke(cli.main, ["import", "petitions", str(source)])
    assert "imported 3" in result.output
    assert count(services, Petition) == 3


def _petition_id(services: Services, case_no: str | None) -> int:
    with services.uow() as uow:
        found = uow.session.scalar(select(Case.id).where(Case.case_no == case_no))
    assert found is not None, case_no
    return int(found)
