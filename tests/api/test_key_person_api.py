"""The key-person endpoints: register, list, read (masked / revealed), scope, reopen, export."""

from __future__ import annotations

import io
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.persistence.models import AuditEvent, KeyPerson, Unit


def unit(services: Services, code: str) -> int:
    with services.uow() as uow:
        found = uow.session.scalar(select(Unit.id).where(Unit.code == code))
        assert found is not None
        return int(found)


def body(services: Services, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "张三",
        "id_number": "11010519491231002X",
        "phone": "13800138000",
        "village_id": unit(services, "V01"),
        "source": "district_assigned",
        "assigned_ref": "区信联〔2026〕3号",
        "core_demand": "要求解决宅基地纠纷",
    }
    data.update(overrides)
    return data


def register(client: Any, auth: Any, services: Services, **overrides: Any) -> dict[str, Any]:
    resp = client.post(
        "/api/v1/key-persons", json=body(services, **overrides), headers=auth("clerk")
    )
    assert resp.status_code == 201, resp.get_json()
    return dict(resp.get_json())


def form_team(client: Any, auth: Any, services: Services, kp: dict[str, Any]) -> None:
    [task] = kp["open_tasks"]
    assert task["bpmn_id"] == "form_team"
    leader = client.get("/api/v1/me", headers=auth("leader")).get_json()["id"]
    resp = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={
            "data": {
                "lead_leader_id": leader,
                "responsible_unit_id": unit(services, "S01-SFS"),
                "member_user_ids": "handler_sfs",
                "other_members": "李警官 民警",
                "approved_on": "2026-03-02",
            }
        },
        headers=auth("leader"),
    )
    assert resp.status_code == 200, resp.get_json()


def test_register_and_read_a_key_person_file(client: Any, auth: Any, services: Services) -> None:
    kp = register(client, auth, services)
    assert kp["status"] == "forming_team"
    assert kp["id_number_masked"].startswith("1101")
    assert "11010519491231002X" not in str(kp)
    form_team(client, auth, services, kp)
    resp = client.get(f"/api/v1/key-persons/{kp['id']}", headers=auth("handler_sfs"))
    assert resp.status_code == 200
    view = resp.get_json()
    assert view["status"] == "assessing"
    assert view["team"]["responsible_unit_name"] == "司法所"
    assert {m["role"] for m in view["team"]["members"]} == {"包案领导", "专班成员", "民警"}
    assert view["open_tasks"][0]["bpmn_id"] == "assess"
    assert "id_number" not in view


def test_bad_registration_is_422_with_field_messages(
    client: Any, auth: Any, services: Services
) -> None:
    resp = client.post(
        "/api/v1/key-persons",
        json=body(services, id_number="110105194912310039", source="gossip"),
        headers=auth("clerk"),
    )
    assert resp.status_code == 422
    assert "source" in str(resp.get_json())
    resp = client.post(
        "/api/v1/key-persons", json=body(services, id_number="123"), headers=auth("clerk")
    )
    assert resp.status_code == 422
    assert "id_number" in resp.get_json()["errors"]
    resp = client.post("/api/v1/key-persons", json=body(services), headers=auth("handler"))
    assert resp.status_code == 403
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(KeyPerson)) == 0
    register(client, auth, services)
    resp = client.post("/api/v1/key-persons", json=body(services), headers=auth("clerk"))
    assert resp.status_code == 409


def test_outsiders_get_404_and_lists_hide_the_file(
    client: Any, auth: Any, services: Services
) -> None:
    kp = register(client, auth, services)
    form_team(client, auth, services, kp)
    for username in ("handler_v01", "handler", "leader_v01"):
        resp = client.get(f"/api/v1/key-persons/{kp['id']}", headers=auth(username))
        assert resp.status_code == 404, username
        listed = client.get("/api/v1/key-persons", headers=auth(username)).get_json()
        assert listed["total"] == 0, username
    for username in ("supervisor", "clerk", "leader", "handler_sfs"):
        listed = client.get("/api/v1/key-persons", headers=auth(username)).get_json()
        assert [i["id"] for i in listed["items"]] == [kp["id"]], username
    assert client.get("/api/v1/key-persons").status_code == 401


def test_generic_case_task_and_deadline_endpoints_hide_the_file_from_outsiders(
    client: Any, auth: Any, services: Services
) -> None:
    kp = register(client, auth, services)
    form_team(client, auth, services, kp)
    case_id = kp["case_id"]
    assess = client.get(f"/api/v1/key-persons/{kp['id']}", headers=auth("handler_sfs")).get_json()
    task_id = assess["open_tasks"][0]["id"]
    # A street handler holds a role covering the file's unit but is not on the team.
    for path in (f"/api/v1/cases/{case_id}", f"/api/v1/tasks/{task_id}"):
        assert client.get(path, headers=auth("handler")).status_code == 404, path
        assert client.get(path, headers=auth("handler_sfs")).status_code == 200, path
    listed = client.get("/api/v1/cases?case_type=stabilization", headers=auth("handler")).get_json()
    assert listed["total"] == 0
    tasks = client.get("/api/v1/tasks", headers=auth("handler")).get_json()
    assert task_id not in [t["id"] for t in tasks["items"]]
    tasks = client.get("/api/v1/tasks", headers=auth("handler_sfs")).get_json()
    assert task_id in [t["id"] for t in tasks["items"]]


def test_revealing_the_id_number_is_audited(client: Any, auth: Any, services: Services) -> None:
    kp = register(client, auth, services)
    resp = client.get(f"/api/v1/key-persons/{kp['id']}?reveal=true", headers=auth("supervisor"))
    assert resp.status_code == 200
    assert resp.get_json()["id_number"] == "11010519491231002X"
    with services.uow() as uow:
        count = uow.session.scalar(select(func.count()).where(AuditEvent.action == "pii.revealed"))
    assert count == 1


def test_list_filters_and_reopen_refuses_an_open_file(
    client: Any, auth: Any, services: Services
) -> None:
    kp = register(client, auth, services)
    headers = auth("clerk")
    assert (
        client.get("/api/v1/key-persons?status=forming_team", headers=headers).get_json()["total"]
        == 1
    )
    assert (
        client.get("/api/v1/key-persons?risk_level=high", headers=headers).get_json()["total"] == 0
    )
    assert client.get("/api/v1/key-persons?status=nonsense", headers=headers).status_code == 422
    v02 = unit(services, "V02")
    assert (
        client.get(f"/api/v1/key-persons?village_id={v02}", headers=headers).get_json()["total"]
        == 0
    )
    resp = client.post(
        f"/api/v1/key-persons/{kp['id']}/reopen", json={"reason": "复访"}, headers=headers
    )
    assert resp.status_code == 409
    resp = client.post(
        f"/api/v1/key-persons/{kp['id']}/reopen",
        json={"reason": "复访"},
        headers=auth("handler_v01"),
    )
    assert resp.status_code == 404


def test_candidates_endpoint(client: Any, auth: Any) -> None:
    resp = client.get("/api/v1/key-persons/candidates", headers=auth("clerk"))
    assert resp.status_code == 200
    assert resp.get_json() == {"items": [], "total": 0}
    assert (
        client.get("/api/v1/key-persons/candidates", headers=auth("handler_v01")).status_code == 403
    )


def test_the_ledger_export_is_a_printable_workbook_in_chinese(
    client: Any, auth: Any, services: Services
) -> None:
    kp = register(client, auth, services)
    form_team(client, auth, services, kp)
    register(
        client,
        auth,
        services,
        name="李四",
        id_number="110105194912310038",
        phone="13900139000",
        village_id=unit(services, "V02"),
        source="screening",
    )
    resp = client.get("/api/v1/exports/key-person-ledger.xlsx", headers=auth("clerk"))
    assert resp.status_code == 200
    assert resp.mimetype.endswith("spreadsheetml.sheet")
    wb = load_workbook(io.BytesIO(resp.data))
    ws = wb.active
    assert ws is not None
    assert ws["A1"].value == "重点信访人员管控风险研判台账"
    assert str(ws["A2"].value).startswith("生成时间：2026-03-02 09:00")
    headers = [c.value for c in ws[3]]
    assert headers[:5] == ["序号", "姓名", "身份证号", "联系电话", "所属村（社区）"]
    assert "风险等级" in headers and "包案领导" in headers and "最近联系" in headers
    assert ws.freeze_panes == "C4"
    assert ws.page_setup.orientation == "landscape"
    assert int(ws.page_setup.paperSize) == int(ws.PAPERSIZE_A4)
    assert ws.column_dimensions["H"].width == 30
    rows = [[c.value for c in r] for r in ws.iter_rows(min_row=4)]
    assert [r[1] for r in rows] == ["张三", "李四"]
    assert rows[0][2] != "11010519491231002X"  # masked
    assert rows[0][16]  # the lead leader's name
    assert rows[0][17] == "司法所"
    assert rows[1][10] == "未研判"
    # An outsider's export holds no rows.
    resp = client.get("/api/v1/exports/key-person-ledger.xlsx", headers=auth("handler_v01"))
    outsider = load_workbook(io.BytesIO(resp.data)).active
    assert outsider is not None
    assert outsider.max_row == 3
