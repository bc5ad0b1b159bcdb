"""Petitions through the HTTP API: the whole lifecycle, lists, review requests, receptions
and the KPI figures (issue 3)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.persistence.models import Petition
from tests.service.petition_support import ID_WANG, at, petition_body, unit_id


def post_task(client: Any, headers: dict[str, str], task_id: int, data: dict[str, Any]) -> Any:
    return client.post(f"/api/v1/tasks/{task_id}/complete", json={"data": data}, headers=headers)


def next_task(resp: Any, bpmn_id: str) -> int:
    body = resp.get_json()
    assert resp.status_code == 200, body
    tasks = [t for t in body["next_tasks"] if t["bpmn_id"] == bpmn_id]
    assert tasks, body["next_tasks"]
    return int(tasks[0]["id"])


def test_full_lifecycle_through_the_api(
    client: Any, auth: Any, services: Services, clock: SettableClock
) -> None:
    clerk, handler, leader = auth("clerk"), auth("handler"), auth("leader")
    v01 = unit_id(services, "V01")
    body = petition_body(village_id=v01, proxy_agent="东风村信访代理员", facts="邻户建房越界")
    body["received_on"] = "2026-03-02"
    created = client.post("/api/v1/petitions", json=body, headers=clerk)
    assert created.status_code == 201, created.get_json()
    petition = created.get_json()
    assert petition["case_no"] == "XF-2026-000001"
    assert petition["status"] == "registered"
    assert petition["petitioners"][0]["id_number"] == "1101**********1233"
    assert {d["kind"]: d["due_on"] for d in petition["deadlines"]} == {
        "acceptance_notice": "2026-03-17",
        "remit_objection": "2026-03-09",
    }
    [task] = petition["open_tasks"]
    assert task["bpmn_id"] == "decide_acceptance"

    form = client.get(f"/api/v1/tasks/{task['id']}", headers=clerk).get_json()
    assert [f["id"] for f in form["form"]["fields"]][:2] == ["decision", "decided_on"]

    at(clock, date(2026, 3, 3))
    resp = post_task(
        client,
        clerk,
        task["id"],
        {"decision": "accept", "decided_on": "2026-03-03", "responsible_unit_id": v01},
    )
    handle_id = next_task(resp, "handle")

    at(clock, date(2026, 4, 28))
    bad = post_task(
        client,
        auth("handler_v01"),
        handle_id,
        {"findings": "需测绘", "method": "investigation", "request_extension": True,
         "extension_days": 45, "extension_reason": "需委托测绘"},
    )  # fmt: skip
    assert bad.status_code == 422
    assert list(bad.get_json()["errors"]) == ["extension_days"]
    resp = post_task(
        client,
        auth("handler_v01"),
        handle_id,
        {"findings": "需测绘", "method": "investigation", "request_extension": True,
         "extension_days": 20, "extension_reason": "需委托测绘"},
    )  # fmt: skip
    approve_id = next_task(resp, "approve_extension")
    resp = post_task(client, auth("leader_v01"), approve_id, {"approve": True})
    handle_id = next_task(resp, "handle")
    shown = client.get(f"/api/v1/petitions/{petition['id']}", headers=clerk).get_json()
    # 03-03 + 60 = 05-02 (Labour Day) -> 05-06; + 20 days = 05-26.
    assert {d["kind"]: d["due_on"] for d in shown["deadlines"]}["reply"] == "2026-05-26"
    assert shown["extension_days"] == 20

    at(clock, date(2026, 5, 20))
    resp = post_task(
        client, handler, handle_id, {"findings": "测绘完成，边界清楚", "method": "mediation"}
    )
    draft_id = next_task(resp, "draft_reply")
    draft = {"outcome": "support", "reply_text": "支持拆除越界部分", "legal_basis": "民法典"}
    approve_reply = next_task(post_task(client, handler, draft_id, draft), "approve_reply")
    draft_id = next_task(
        post_task(client, leader, approve_reply, {"approve": False, "comment": "补充测绘结论"}),
        "draft_reply",
    )
    approve_reply = next_task(post_task(client, handler, draft_id, draft), "approve_reply")
    deliver_id = next_task(
        post_task(client, leader, approve_reply, {"approve": True}), "deliver_reply"
    )
    future = post_task(
        client, handler, deliver_id, {"delivered_on": "2026-05-21", "delivery_method": "post"}
    )
    assert future.status_code == 422
    assert list(future.get_json()["errors"]) == ["delivered_on"]
    evaluate_id = next_task(
        post_task(
            client, handler, deliver_id, {"delivered_on": "2026-05-20", "delivery_method": "post"}
        ),
        "record_evaluation",
    )
    at(clock, date(2026, 5, 25))
    done = post_task(client, clerk, evaluate_id, {"rating": "basically_satisfied"})
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["case"]["status"] == "completed"

    final = client.get(f"/api/v1/petitions/{petition['id']}", headers=clerk).get_json()
    assert final["status"] == "evaluated"
    assert final["rating"] == "basically_satisfied"
    assert final["evaluated_on"] == "2026-05-25"
    assert final["reply_returns"] == 1
    states = {d["kind"]: (d["state"], d["met_on"]) for d in final["deadlines"]}
    assert states["acceptance_notice"] == ("met", "2026-03-03")
    assert states["reply"] == ("met", "2026-05-20")
    assert states["evaluation_window"] == ("met", "2026-05-25")
    assert "remit_objection" not in states
    actions = [e["action"] for e in final["timeline"]]
    assert actions[:2] == ["case.started", "petition.registered"]
    assert actions.count("task.completed") == 10
    assert "petition.extension_approved" in actions

    kpi = client.get(
        "/api/v1/reports/kpi?from=2026-03-01&to=2026-06-30", headers=auth("supervisor")
    ).get_json()["kpis"]
    assert kpi["received"]["value"] == 1
    assert (
        kpi["replied_on_time_rate"]["numerator"],
        kpi["replied_on_time_rate"]["denominator"],
    ) == (1, 1)
    assert kpi["satisfaction_rate"]["value"] == 1.0
    empty = client.get(
        "/api/v1/reports/kpi?from=2025-01-01&to=2025-01-31", headers=auth("supervisor")
    ).get_json()["kpis"]
    assert empty["accepted_on_time_rate"]["value"] is None
    assert empty["accepted_on_time_rate"]["display"] == "—"


def test_bad_registration_gets_422_with_field_messages_and_writes_nothing(
    client: Any, auth: Any, services: Services
) -> None:
    body = petition_body(channel="pigeon", petitioners=[{"name": f"p{i}"} for i in range(6)])
    resp = client.post("/api/v1/petitions", json=body, headers=auth("clerk"))
    assert resp.status_code == 422
    assert "channel" in resp.get_json()["errors"]
    resp = client.post(
        "/api/v1/petitions",
        json=petition_body(petitioners=[{"name": f"p{i}"} for i in range(6)]),
        headers=auth("clerk"),
    )
    assert resp.status_code == 422
    assert list(resp.get_json()["errors"]) == ["petitioners"]
    forbidden = client.post("/api/v1/petitions", json=petition_body(), headers=auth("handler"))
    assert forbidden.status_code == 403
    with services.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Petition)) == 0


def test_list_filters_scope_and_reveal(client: Any, auth: Any, services: Services) -> None:
    clerk = auth("clerk")
    v01, v02 = unit_id(services, "V01"), unit_id(services, "V02")
    a = client.post(
        "/api/v1/petitions", json=petition_body(village_id=v01), headers=clerk
    ).get_json()
    b = client.post(
        "/api/v1/petitions",
        json=petition_body(village_id=v02, received_on="2026-02-20", subject="红旗村噪声扰民",
                           request="夜间施工", petitioners=[{"name": "李四"}]),
        headers=clerk,
    ).get_json()  # fmt: skip
    listed = client.get("/api/v1/petitions", headers=clerk).get_json()
    assert [p["id"] for p in listed["items"]] == [a["id"], b["id"]]
    assert listed["items"][1]["overdue"] is False
    assert listed["items"][0]["next_due_kind"] == "acceptance_notice"
    by_village = client.get(f"/api/v1/petitions?village_id={v02}", headers=clerk).get_json()
    assert [p["id"] for p in by_village["items"]] == [b["id"]]
    by_q = client.get("/api/v1/petitions?q=噪声", headers=clerk).get_json()
    assert [p["id"] for p in by_q["items"]] == [b["id"]]
    by_name = client.get("/api/v1/petitions?q=李四", headers=clerk).get_json()
    assert [p["id"] for p in by_name["items"]] == [b["id"]]
    ranged = client.get(
        "/api/v1/petitions?received_from=2026-03-01&received_to=2026-03-31", headers=clerk
    ).get_json()
    assert [p["id"] for p in ranged["items"]] == [a["id"]]
    assert client.get("/api/v1/petitions?status=registered", headers=clerk).get_json()["total"] == 2
    assert client.get("/api/v1/petitions?status=bogus", headers=clerk).status_code == 422

    # Out of scope: a village grid worker sees nothing, and a petition is "not found".
    assert client.get("/api/v1/petitions", headers=auth("reporter_v01")).get_json()["total"] == 0
    assert (
        client.get(f"/api/v1/petitions/{a['id']}", headers=auth("reporter_v01")).status_code == 404
    )

    masked = client.get(f"/api/v1/petitions/{a['id']}", headers=auth("handler")).get_json()
    assert masked["petitioners"][0]["id_number"] == "1101**********1233"
    assert (
        client.get(f"/api/v1/petitions/{a['id']}?reveal=true", headers=auth("handler")).status_code
        == 403
    )
    whole = client.get(f"/api/v1/petitions/{a['id']}?reveal=true", headers=clerk).get_json()
    assert whole["petitioners"][0]["id_number"] == ID_WANG
    assert whole["timeline"][-1]["action"] == "pii.revealed"

    check = client.get(
        f"/api/v1/petitions/repeat-check?id_number={ID_WANG}&matter=土地承包经营权纠纷，请求确认边界",
        headers=clerk,
    ).get_json()
    assert check["items"][0]["id"] == a["id"]
    assert check["items"][0]["repeat"] is True


def test_review_request_outside_its_window_gets_422_naming_the_end(
    client: Any, auth: Any, services: Services, clock: SettableClock
) -> None:
    clerk = auth("clerk")
    created = client.post("/api/v1/petitions", json=petition_body(), headers=clerk).get_json()
    early = client.post(
        f"/api/v1/petitions/{created['id']}/review-requests",
        json={"level": "review"},
        headers=clerk,
    )
    assert early.status_code == 409  # nothing delivered yet
    task = created["open_tasks"][0]["id"]
    s01 = unit_id(services, "S01")
    handle_id = next_task(
        post_task(client, clerk, task, {"decision": "accept", "responsible_unit_id": s01}), "handle"
    )
    draft = next_task(
        post_task(
            client, auth("handler"), handle_id, {"findings": "核实", "method": "investigation"}
        ),
        "draft_reply",
    )
    approve = next_task(
        post_task(client, auth("handler"), draft, {"outcome": "explain", "reply_text": "解释"}),
        "approve_reply",
    )
    deliver = next_task(
        post_task(client, auth("leader"), approve, {"approve": True}), "deliver_reply"
    )
    next_task(
        post_task(client, auth("handler"), deliver, {"delivery_method": "sms"}), "record_evaluation"
    )
    clock.set(datetime(2026, 4, 10, 2, tzinfo=UTC))
    late = client.post(
        f"/api/v1/petitions/{created['id']}/review-requests",
        json={"level": "review", "requested_on": "2026-04-03"},
        headers=clerk,
    )
    assert late.status_code == 422
    assert "2026-04-01" in late.get_json()["errors"]["requested_on"][0]
    ok = client.post(
        f"/api/v1/petitions/{created['id']}/review-requests",
        json={"level": "review", "requested_on": "2026-04-01"},
        headers=clerk,
    )
    assert ok.status_code == 201, ok.get_json()
    review = ok.get_json()
    assert review["case_no"].startswith("FC-2026-")
    assert review["decision_due_on"] == "2026-05-06"  # 05-01 holiday -> after Labour Day
    # The review decision belongs to the district (the unit above the street).
    inbox = client.get(
        "/api/v1/tasks?case_id=" + str(review["case_id"]), headers=auth("district")
    ).get_json()
    assert [t["bpmn_id"] for t in inbox["items"]] == ["decide_review"]
    shown = client.get(f"/api/v1/petitions/{created['id']}", headers=clerk).get_json()
    assert shown["status"] == "under_review"
    assert shown["reviews"][0]["level"] == "review"
    assert (
        client.post(
            f"/api/v1/petitions/{created['id']}/review-requests",
            json={"level": "appeal"},
            headers=clerk,
        ).status_code
        == 422
    )


def test_receptions_are_recorded_and_listed(client: Any, auth: Any, services: Services) -> None:
    clerk = auth("clerk")
    petition = client.post("/api/v1/petitions", json=petition_body(), headers=clerk).get_json()
    leader_id = client.get("/api/v1/me", headers=auth("leader")).get_json()["id"]
    handler_id = client.get("/api/v1/me", headers=auth("handler")).get_json()["id"]
    created = client.post(
        "/api/v1/receptions",
        json={"kind": "reception", "held_on": "2026-03-02", "leader_user_id": leader_id,
              "person_count": 3, "notes": "领导接访日", "petition_ids": [petition["id"]]},
        headers=clerk,
    )  # fmt: skip
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["petition_ids"] == [petition["id"]]
    visit = client.post(
        "/api/v1/receptions",
        json={"kind": "field_visit", "held_on": "2026-03-01", "leader_user_id": leader_id,
              "person_count": 40},
        headers=auth("leader"),
    )  # fmt: skip
    assert visit.status_code == 201
    not_leader = client.post(
        "/api/v1/receptions",
        json={"kind": "reception", "held_on": "2026-03-02", "leader_user_id": handler_id,
              "person_count": 1, "petition_ids": [999999]},
        headers=clerk,
    )  # fmt: skip
    assert not_leader.status_code == 422
    assert set(not_leader.get_json()["errors"]) == {"leader_user_id", "petition_ids"}
    listed = client.get("/api/v1/receptions", headers=clerk).get_json()
    assert [(r["kind"], r["person_count"]) for r in listed["items"]] == [
        ("reception", 3),
        ("field_visit", 40),
    ]
    visits = client.get("/api/v1/receptions?kind=field_visit", headers=clerk).get_json()
    assert visits["total"] == 1
    assert (
        client.post("/api/v1/receptions", json={"kind": "x"}, headers=auth("handler")).status_code
        == 422
    )
    denied = client.post(
        "/api/v1/receptions",
        json={
            "kind": "reception",
            "held_on": "2026-03-02",
            "leader_user_id": leader_id,
            "person_count": 1,
        },
        headers=auth("handler"),
    )
    assert denied.status_code == 403
    # The petition registered at a reception carries it.
    linked = client.post(
        "/api/v1/petitions",
        json=petition_body(
            reception_id=created.get_json()["id"], subject="另案", request="另案请求"
        ),
        headers=clerk,
    ).get_json()
    assert linked["reception_id"] == created.get_json()["id"]
