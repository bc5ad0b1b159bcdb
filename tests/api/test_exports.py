"""Excel exports and the annual report over HTTP (issue 8): each workbook opens with openpyxl,
has Chinese headers, frozen header rows, A4-landscape print setup, a generated-at stamp,
and cells that match what the API lists."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.services.excel import HEADER_ROW, PETITION_LEDGER_COLUMNS
from engine.services.petition_import import LEDGER_COLUMNS
from tests.service.petition_support import accept, at, register, unit_id
from tests.service.test_petition_import import good_and_bad

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def sheet(data: bytes, index: int = 0) -> Worksheet:
    ws = load_workbook(io.BytesIO(data)).worksheets[index]
    assert isinstance(ws, Worksheet)
    return ws


def assert_printable(ws: Worksheet, headers: list[str]) -> None:
    """Headers on row 3, frozen below them, repeated on each page, A4 landscape, one page wide."""
    assert [c.value for c in ws[HEADER_ROW]][: len(headers)] == headers
    assert str(ws.freeze_panes).endswith(str(HEADER_ROW + 1))
    assert ws.print_title_rows == f"${HEADER_ROW}:${HEADER_ROW}"
    assert ws.page_setup.orientation == "landscape"
    assert int(ws.page_setup.paperSize) == int(ws.PAPERSIZE_A4) == 9
    assert ws.page_setup.fitToWidth == 1 and ws.sheet_properties.pageSetUpPr.fitToPage
    assert str(ws["A2"].value).startswith("生成时间：2026-03-02 09:00（北京时间）")
    assert all(ws.column_dimensions[c.column_letter].width for c in ws[HEADER_ROW])


def test_petition_ledger_is_filtered_like_the_list(
    client: Any, auth: Any, services: Services, clock: SettableClock
) -> None:
    at(clock, date(2026, 2, 10))
    first = register(services, received_on="2026-02-10")
    accept(services, first["id"], "2026-02-10")
    at(clock, date(2026, 3, 2), 9)
    register(
        services,
        received_on="2026-03-01",
        channel="letter",
        petitioners=[{"name": "李四"}],
        subject="红旗村道路破损",
        request="请求维修",
        village_id=unit_id(services, "V02"),
    )
    listed = client.get("/api/v1/petitions?received_from=2026-03-01", headers=auth("clerk"))
    assert listed.get_json()["total"] == 1

    resp = client.get(
        "/api/v1/exports/petition-ledger.xlsx?received_from=2026-03-01", headers=auth("clerk")
    )
    assert resp.status_code == 200 and resp.mimetype == XLSX
    assert "attachment" in resp.headers["Content-Disposition"]
    ws = sheet(resp.data)
    assert ws.title == "信访台账" and ws["A1"].value == "信访事项登记台账"
    assert_printable(ws, [c.header for c in PETITION_LEDGER_COLUMNS])
    assert ws.freeze_panes == "C4"  # number and case number stay visible
    item = listed.get_json()["items"][0]
    row = {
        c.header: ws.cell(row=4, column=i).value for i, c in enumerate(PETITION_LEDGER_COLUMNS, 1)
    }
    assert row["编号"] == item["case_no"]
    assert row["收到日期"].date() == date(2026, 3, 1)
    assert (row["信访人"], row["村（社区）"], row["信访形式"], row["状态"]) == (
        "李四",
        "红旗村",
        "来信",
        "待受理",
    )
    assert ws.cell(row=5, column=1).value is None  # one petition only
    everything = sheet(
        client.get("/api/v1/exports/petition-ledger.xlsx", headers=auth("clerk")).data
    )
    assert [everything.cell(row=r, column=3).value.date() for r in (4, 5)] == [
        date(2026, 3, 1),
        date(2026, 2, 10),
    ]
    assert everything.cell(row=5, column=17).value == "东风村"  # responsible unit
    # A village sees only its own petitions, in the export as in the list.
    v02 = sheet(client.get("/api/v1/exports/petition-ledger.xlsx", headers=auth("leader_v02")).data)
    assert [v02.cell(row=r, column=4).value for r in (4, 5)] == ["李四", None]


def test_annual_report_json_and_workbook(client: Any, auth: Any, services: Services) -> None:
    import_resp = client.post(
        "/api/v1/imports/petitions?dry_run=false",
        data={"file": (io.BytesIO(good_and_bad()), "2022台账.xlsx")},
        headers=auth("admin"),
        content_type="multipart/form-data",
    )
    assert import_resp.status_code == 200, import_resp.get_json()
    body = client.get("/api/v1/reports/annual?year=2022", headers=auth("supervisor")).get_json()
    assert body["from"] == "2022-01-01" and body["to"] == "2022-12-31"
    figures = {f["key"]: f for g in body["groups"] for f in g["figures"]}
    assert figures["received"]["value"] == 3
    assert figures["evaluation_rate"]["numerator"] == 1
    assert figures["evaluation_rate"]["denominator"] == 2
    assert figures["evaluation_rate"]["display"] == "50.0%"
    assert figures["leader_ownership_resolution_rate"]["display"] == "—"
    assert figures["received"]["definition_en"].startswith("Petitions registered")

    resp = client.get("/api/v1/reports/annual.xlsx?year=2022", headers=auth("supervisor"))
    assert resp.status_code == 200 and resp.mimetype == XLSX
    ws = sheet(resp.data)
    assert_printable(ws, ["序号", "指标", "数值", "分子", "分母", "口径说明", "Definition"])
    rows = {ws.cell(row=r, column=2).value: r for r in range(4, ws.max_row + 1)}
    line = rows["参评率"]
    assert [ws.cell(row=line, column=c).value for c in (3, 4, 5)] == ["50.0%", 1, 2]
    assert ws.cell(row=rows["包案化解率"], column=3).value == "—"
    assert ws.cell(row=rows["　其中：走访"], column=3).value == 1

    assert (
        client.get("/api/v1/reports/annual?year=1990", headers=auth("supervisor")).status_code
        == 422
    )
    other = client.get(
        f"/api/v1/reports/annual?year=2022&unit_id={unit_id(services, 'S01')}",
        headers=auth("leader_v01"),
    )
    assert other.status_code == 404


def test_import_template_and_admin_upload(client: Any, auth: Any) -> None:
    resp = client.get("/api/v1/imports/petitions/template.xlsx", headers=auth("admin"))
    assert resp.status_code == 200 and resp.mimetype == XLSX
    ws = sheet(resp.data)
    headers = [c.header + ("*" if c.required else "") for c in LEDGER_COLUMNS]
    assert [c.value for c in ws[HEADER_ROW]] == headers
    assert ws.page_setup.orientation == "landscape" and ws.freeze_panes == "A4"
    assert ws.cell(row=4, column=3).value == "王大伟"  # the example row
    help_ws = sheet(resp.data, 1)
    assert help_ws.title == "填写说明" and help_ws.cell(row=5, column=1).value == "收到日期"

    # The template itself (with its example row) imports: dry run by default, nothing written.
    dry = client.post(
        "/api/v1/imports/petitions",
        data={"file": (io.BytesIO(resp.data), "template.xlsx")},
        headers=auth("admin"),
        content_type="multipart/form-data",
    )
    assert dry.status_code == 200, dry.get_json()
    assert (dry.get_json()["would_import"], dry.get_json()["committed"]) == (1, False)
    assert client.get("/api/v1/petitions", headers=auth("clerk")).get_json()["total"] == 0

    report = client.post(
        "/api/v1/imports/petitions/report.xlsx",
        data={"file": (io.BytesIO(good_and_bad()), "x.xlsx")},
        headers=auth("admin"),
        content_type="multipart/form-data",
    )
    assert report.status_code == 200
    failed = sheet(report.data)
    assert [failed.cell(row=r, column=1).value for r in range(4, 8)] == [5, 6, 7, 8]

    for user in ("clerk", "supervisor"):
        refused = client.post(
            "/api/v1/imports/petitions",
            data={"file": (io.BytesIO(good_and_bad()), "x.xlsx")},
            headers=auth(user),
            content_type="multipart/form-data",
        )
        assert refused.status_code == 403
    missing = client.post("/api/v1/imports/petitions", headers=auth("admin"))
    assert missing.status_code == 422 and "file" in missing.get_json()["errors"]


def _login(client: Any, username: str) -> str:
    """Log in through the pages' form; return a CSRF token for later posts."""
    import re

    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    resp = client.post(
        "/login", data={"username": username, "password": "demo1234", "csrf_token": token[1]}
    )
    assert resp.status_code == 302
    return str(token[1])


def test_the_printable_annual_report_page(client: Any, services: Services) -> None:
    from engine.services.petition_import import import_petitions
    from tests.service.petition_support import actor

    import_petitions(services, actor(services, "admin"), good_and_bad(), "2022.xlsx")
    _login(client, "supervisor")
    page = client.get(f"/reports/annual?year=2022&unit_id={unit_id(services, 'S01')}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "示范街道 年度报告 2022" in html
    assert '<tr data-figure="evaluation_rate">' in html and "1 / 2" in html and "50.0%" in html
    assert "参评率" in html and "信访人作出评价的件数 / 应参评件数。" in html
    assert "@media print" in html and "size: A4" in html
    client.get("/lang/en")
    english = client.get("/reports/annual?year=2022").get_data(as_text=True)
    assert "Annual report" in english and "Evaluation rate" in english


def test_the_admin_import_page_previews_then_commits(client: Any, services: Services) -> None:
    import re

    _login(client, "admin")
    form = client.get("/admin/imports/petitions").get_data(as_text=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert found is not None and "信访人" in form  # the column documentation
    token = found[1]
    preview = client.post(
        "/admin/imports/petitions",
        data={"csrf_token": token, "action": "preview",
              "file": (io.BytesIO(good_and_bad()), "2022台账.xlsx")},
        content_type="multipart/form-data",
    )  # fmt: skip
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200, html
    assert "试运行：未写入任何数据" in html
    assert "共 7 行：可导入 3 行，已导入 0 行，跳过 0 行，失败 4 行。" in html
    assert "系统中没有村（社区）“不存在村”。" in html
    assert client.get("/api/v1/petitions", headers={}).status_code in (401, 200)
    from engine.persistence.models import Petition
    from tests.service.test_petition_import import count

    assert count(services, Petition) == 0
    upload = re.search(r'name="token" value="([0-9a-f]{32})"', html)
    assert upload is not None
    done = client.post(
        "/admin/imports/petitions",
        data={"csrf_token": token, "action": "commit", "token": upload[1],
              "file_name": "2022台账.xlsx"},
    )  # fmt: skip
    assert done.status_code == 200
    assert "已导入" in done.get_data(as_text=True)
    assert count(services, Petition) == 3
    expired = client.post(
        "/admin/imports/petitions",
        data={"csrf_token": token, "action": "commit", "token": upload[1]},
    )
    assert expired.status_code == 422 and "请重新上传文件。" in expired.get_data(as_text=True)


def test_the_import_page_is_for_admins_only(client: Any) -> None:
    _login(client, "clerk")
    assert client.get("/admin/imports/petitions").status_code == 403
