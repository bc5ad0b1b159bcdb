"""Screening through the HTTP API: rounds, hazards, scope, errors, KPIs and the Excel ledger."""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Any

from openpyxl import load_workbook

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.services import screening
from engine.services.screening_demo import seed_screening
from engine.services.screening_export import HEADER_ROW, LEDGER_COLUMNS, ledger_row_values
from tests.service.test_screening_year import at, unit_id

HAZARD = {
    "dispute_type": "neighbour",
    "parties": "李秀英、王桂兰",
    "involved_count": 2,
    "summary": "邻里排水沟堵塞引发纠纷",
    "risk_level": "low",
    "criminal_risk": False,
    "measures": "村调委会调解",
    "method": "people_mediation",
    "responsible_person": "孙干事",
}


def _open(services: Services, clock: SettableClock) -> None:
    clock.set(at(date(2026, 3, 2)))
    screening.open_rounds_for_month(services, "2026-03", clock.now())


def _round_id(client: Any, auth: Any, code_unit: int) -> int:
    resp = client.get(
        f"/api/v1/screening/rounds?month=2026-03&unit_id={code_unit}", headers=auth("supervisor")
    )
    assert resp.status_code == 200, resp.get_json()
    return int(resp.get_json()["items"][0]["id"])


def test_rounds_are_listed_in_scope_with_their_status(
    client: Any, auth: Any, services: Services, clock: SettableClock
) -> None:
    _open(services, clock)
    everyone = client.get("/api/v1/screening/rounds?month=2026-03", headers=auth("supervisor"))
    assert everyone.status_code == 200
    body = everyone.get_json()
    assert body["total"] == 28
    first = body["items"][0]
    assert set(first) >= {
        "id",
        "unit_id",
        "month",
        "due_on",
        "status",
        "zero_report",
        "hazard_count",
        "submitted_on",
        "signed_on",
    }
    assert first["due_on"] == "2026-03-25"
    assert {i["status"] for i in body["items"]} == {"open"}
    mine = client.get("/api/v1/screening/rounds?month=2026-03", headers=auth("reporter_v01"))
    assert [i["unit_id"] for i in mine.get_json()["items"]] == [unit_id(services, "V01")]
    bad = client.get("/api/v1/screening/rounds?month=2026-13", headers=auth("supervisor"))
    assert bad.status_code == 422
    assert "month" in str(bad.get_json()["errors"])
    assert client.get("/api/v1/screening/rounds?month=2026-03").status_code == 401


def test_adding_a_hazard_answers_with_its_ledger_number(
    client: Any, auth: Any, services: Services, clock: SettableClock
) -> None:
    _open(services, clock)
    v01 = unit_id(services, "V01")
    round_id = _round_id(client, auth, v01)
    body = dict(HAZARD, responsible_unit_id=v01)
    resp = client.post(
        f"/api/v1/screening/rounds/{round_id}/hazards", json=body, headers=auth("reporter_v01")
    )
    assert resp.status_code == 201, resp.get_json()
    entry = resp.get_json()
    assert entry["ledger_no"] == "JF-2026-000001"
    assert entry["time_limit_on"] == "2026-04-01"
    assert entry["status"] == "open"

    # Bad input: 422 with field messages, nothing written.
    bad = client.post(
        f"/api/v1/screening/rounds/{round_id}/hazards",
        json=dict(body, risk_level="extreme", involved_count=0),
        headers=auth("reporter_v01"),
    )
    assert bad.status_code == 422
    assert set(bad.get_json()["errors"]) >= {"risk_level", "involved_count"}
    # Another village's reporter: 404; a reporter-less role in scope: 403.
    other = client.post(
        f"/api/v1/screening/rounds/{round_id}/hazards", json=body, headers=auth("reporter_v02")
    )
    assert other.status_code == 404
    refused = client.post(
        f"/api/v1/screening/rounds/{round_id}/hazards", json=body, headers=auth("supervisor")
    )
    assert refused.status_code == 403

    listed = client.get(
        "/api/v1/screening/hazards?month=2026-03&risk_level=low", headers=auth("supervisor")
    ).get_json()
    assert [h["ledger_no"] for h in listed["items"]] == ["JF-2026-000001"]
    assert listed["total"] == 1
    detail = client.get(
        f"/api/v1/screening/hazards/{entry['id']}", headers=auth("handler_v01")
    ).get_json()
    assert detail["case"]["open_tasks"][0]["bpmn_id"] == "resolve"
    note = client.post(
        f"/api/v1/screening/hazards/{entry['id']}/notes",
        json={"text": "已上门了解情况"},
        headers=auth("handler_v01"),
    )
    assert note.status_code == 201
    rounds = client.get(
        f"/api/v1/screening/rounds?month=2026-03&unit_id={v01}", headers=auth("reporter_v01")
    ).get_json()
    assert rounds["items"][0]["hazard_count"] == 1

    # The zero report contradicts the ledger: 422 through the task API as well.
    task = client.get(
        f"/api/v1/tasks?case_id={rounds['items'][0]['case_id']}", headers=auth("reporter_v01")
    ).get_json()["items"][0]
    zero = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": {"zero_report": True, "reported_on": "2026-03-02"}},
        headers=auth("reporter_v01"),
    )
    assert zero.status_code == 422
    assert "zero_report" in zero.get_json()["errors"]


def test_kpi_report_carries_the_screening_figures(
    client: Any, auth: Any, services: Services, clock: SettableClock
) -> None:
    seed_screening(services)
    resp = client.get("/api/v1/reports/kpi?from=2026-02-01&to=2026-03-31", headers=auth("leader"))
    assert resp.status_code == 200, resp.get_json()
    kpis = resp.get_json()["kpis"]
    assert kpis["hazards_found"]["value"] == 4
    assert kpis["zero_reports"]["value"] == 1  # V02's zero report (submitted, not yet signed)
    timeliness = kpis["screening_report_timeliness"]
    assert (timeliness["numerator"], timeliness["denominator"]) == (3, 56)
    signoff = kpis["hazard_signoff_rate"]
    assert (signoff["numerator"], signoff["denominator"]) == (1, 4)
    # Overdue is counted as of the period's end: on 2 March both February hazards are past
    # their limits, the March one (due 17 March) is not yet.
    today = client.get("/api/v1/reports/kpi?from=2026-02-01&to=2026-03-02", headers=auth("leader"))
    assert today.get_json()["kpis"]["hazards_overdue"]["value"] == 2


def test_the_demo_shows_this_month_part_reported(
    client: Any, auth: Any, services: Services, clock: SettableClock
) -> None:
    summary = seed_screening(services)
    assert summary["screening_rounds"] == 56
    rounds = client.get(
        "/api/v1/screening/rounds?month=2026-03", headers=auth("supervisor")
    ).get_json()["items"]
    by_code = {r["unit_code"]: r for r in rounds}
    assert by_code["V01"]["status"] == "signed"
    assert by_code["V02"]["status"] == "submitted" and by_code["V02"]["zero_report"] is True
    assert sum(r["status"] == "open" for r in rounds) == 26
    ledger = client.get(
        "/api/v1/screening/hazards?month=2026-03", headers=auth("supervisor")
    ).get_json()["items"]
    assert sorted((h["unit_name"], h["carried_over"], h["status"]) for h in ledger) == [
        ("东风村", False, "open"),
        ("东风村", True, "open"),
        ("红旗村", True, "open"),
    ]
    february = client.get(
        "/api/v1/screening/hazards?month=2026-02&status=signed_off", headers=auth("supervisor")
    ).get_json()
    assert february["total"] == 1


def test_the_excel_ledger_matches_the_ledger(
    client: Any, auth: Any, services: Services, clock: SettableClock
) -> None:
    seed_screening(services)
    resp = client.get(
        "/api/v1/exports/screening-ledger.xlsx?month=2026-03", headers=auth("supervisor")
    )
    assert resp.status_code == 200
    assert resp.mimetype.endswith("spreadsheetml.sheet")
    assert "screening-ledger-2026-03.xlsx" in resp.headers["Content-Disposition"]
    wb = load_workbook(io.BytesIO(resp.data))
    assert wb.sheetnames[0] == "汇总"
    assert len(wb.sheetnames) == 1 + 28  # a summary plus one sheet per reporting unit
    ledger = client.get(
        "/api/v1/screening/hazards?month=2026-03", headers=auth("supervisor")
    ).get_json()["items"]

    sheet = wb["东风村"]
    assert [c.value for c in sheet[HEADER_ROW]] == [h for h, _w in LEDGER_COLUMNS]
    assert sheet.freeze_panes == f"A{HEADER_ROW + 1}"
    assert sheet.page_setup.orientation == "landscape"
    assert int(sheet.page_setup.paperSize) == int(sheet.PAPERSIZE_A4) == 9
    assert str(sheet["A2"].value).startswith("生成时间：2026-03-02 09:00")
    assert sheet.column_dimensions["I"].width == 32
    rows = [
        [c.value for c in row]
        for row in sheet.iter_rows(min_row=HEADER_ROW + 1)
        if row[0].value is not None
    ]
    expected = [
        ledger_row_values(n, _typed(h))
        for n, h in enumerate([h for h in ledger if h["unit_name"] == "东风村"], start=1)
    ]
    assert [_plain(r) for r in rows] == [_plain(r) for r in expected]
    assert {r[19] for r in rows} == {"是", "否"}  # carried over / found this month

    summary = {row[1].value: [c.value for c in row] for row in wb["汇总"].iter_rows(min_row=4)}
    assert summary["东风村"][3] == "已签批"
    assert summary["东风村"][8:12] == [1, 1, 0, 1]  # new, carried, signed off, overdue
    assert summary["红旗村"][3:6] == ["已上报", "否", "是"]
    assert summary["红旗村"][9] == 1
    assert summary["新桥村"][3] == "进行中"

    zero_sheet = wb["红旗村"]
    assert (
        zero_sheet.cell(row=HEADER_ROW + 1, column=2).value
        == ledger_row_values(1, _typed(next(h for h in ledger if h["unit_name"] == "红旗村")))[1]
    )

    only_v01 = client.get(
        f"/api/v1/exports/screening-ledger.xlsx?month=2026-03&unit_id={unit_id(services, 'V01')}",
        headers=auth("leader_v01"),
    )
    assert load_workbook(io.BytesIO(only_v01.data)).sheetnames == ["汇总", "东风村"]
    assert (
        client.get(
            "/api/v1/exports/screening-ledger.xlsx?month=2026-3", headers=auth("supervisor")
        ).status_code
        == 422
    )


def _typed(h: dict[str, Any]) -> dict[str, Any]:
    """API JSON back to the types the export writes (dates)."""
    out = dict(h)
    for key in ("found_on", "time_limit_on", "signed_off_on"):
        if out.get(key):
            out[key] = date.fromisoformat(out[key])
    return out


def _plain(values: list[Any]) -> list[Any]:
    """openpyxl reads dates back as datetimes and empty cells as None; compare alike."""
    return [v.date() if isinstance(v, datetime) else (None if v == "" else v) for v in values]
