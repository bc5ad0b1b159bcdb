"""The foundation's promises, through the HTTP API, on SQLite and on PostgreSQL (issue 2)."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.bootstrap import Services, build_services
from engine.errors import ValidationError
from engine.persistence.models import Case, Task, Timer, Unit
from engine.services.jobs import run_all
from tests.conftest import START, TEST_BPMN
from web.app import create_app


def unit_id(services: Services, code: str) -> int:
    with services.uow() as uow:
        return int(uow.session.scalar(select(Unit.id).where(Unit.code == code)))


def start_review(client: Any, auth: Any, services: Services, **data: Any) -> dict[str, Any]:
    resp = client.post(
        "/api/v1/cases",
        json={
            "case_type": "simple_review",
            "unit_id": unit_id(services, "S01"),
            "title": "测试件",
            "data": data,
        },
        headers=auth("clerk"),
    )
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()  # type: ignore[no-any-return]


def deploy_fixture(services: Services, name: str) -> None:
    with services.uow() as uow:
        services.definitions.deploy(uow, (TEST_BPMN / name).read_bytes(), filename=name, at=START)
        uow.commit()


def test_case_runs_end_to_end_through_gateway_and_forms(
    client: Any, auth: Any, services: Services
) -> None:
    case = start_review(client, auth, services)
    assert case["case_no"].startswith("AJ-2026-")
    assert [t["bpmn_id"] for t in case["open_tasks"]] == ["review"]
    review = case["open_tasks"][0]

    inbox = client.get("/api/v1/tasks", headers=auth("handler")).get_json()
    assert review["id"] in [t["id"] for t in inbox["items"]]

    detail = client.get(f"/api/v1/tasks/{review['id']}", headers=auth("handler")).get_json()
    assert [f["id"] for f in detail["form"]["fields"]] == [
        "decision",
        "amount",
        "decided_on",
        "comment",
    ]
    assert detail["form"]["json_schema"]["required"] == ["decision", "decided_on"]
    assert detail["can_act"] is True

    claimed = client.post(f"/api/v1/tasks/{review['id']}/claim", headers=auth("handler"))
    assert claimed.status_code == 200 and claimed.get_json()["assignee_id"] is not None
    mine = client.get("/api/v1/tasks?mine=true", headers=auth("handler")).get_json()
    assert [t["id"] for t in mine["items"]] == [review["id"]]

    done = client.post(
        f"/api/v1/tasks/{review['id']}/complete",
        json={
            "data": {
                "decision": "approve",
                "amount": 300,
                "decided_on": "2026-03-02",
                "comment": "同意",
            }
        },
        headers=auth("handler"),
    )
    assert done.status_code == 200, done.get_json()
    nxt = done.get_json()["next_tasks"]
    assert [t["bpmn_id"] for t in nxt] == ["approve"]
    # camunda:dueDate add_days(decided_on, 5): the end of 2026-03-07 in Shanghai.
    assert nxt[0]["due_at"].startswith("2026-03-07T15:59:59")

    finish = client.post(
        f"/api/v1/tasks/{nxt[0]['id']}/complete", json={"data": {}}, headers=auth("leader")
    )
    assert finish.status_code == 200, finish.get_json()
    assert finish.get_json()["task"]["status"] == "completed"
    final = client.get(f"/api/v1/cases/{case['id']}", headers=auth("clerk")).get_json()
    assert final["status"] == "completed"
    with services.uow() as uow:
        statuses = uow.session.execute(
            select(Task.bpmn_id, Task.status, Task.completed_by_id)
            .where(Task.case_id == case["id"])
            .order_by(Task.id)
        ).all()
    assert [(b, s) for b, s, _ in statuses] == [("review", "completed"), ("approve", "completed")]
    assert all(by is not None for _, _, by in statuses)
    assert final["open_tasks"] == []
    actions = [e["action"] for e in final["timeline"]]
    assert actions == ["case.started", "task.claimed", "task.completed", "task.completed"]


def test_case_continues_after_the_app_restarts(services: Services, auth: Any, client: Any) -> None:
    case = start_review(client, auth, services)
    task_id = case["open_tasks"][0]["id"]
    services.engine.dispose()

    # A brand-new process: new services, registry and app over the same database.
    fresh = build_services(services.settings, services.clock, deploy=False)
    client2 = create_app(services=fresh).test_client()
    headers = {"Authorization": auth("handler")["Authorization"]}
    resp = client2.post(
        f"/api/v1/tasks/{task_id}/complete",
        json={"data": {"decision": "approve", "decided_on": "2026-03-02"}},
        headers=headers,
    )
    assert resp.status_code == 200, resp.get_json()
    assert [t["bpmn_id"] for t in resp.get_json()["next_tasks"]] == ["approve"]
    fresh.engine.dispose()


def test_two_concurrent_completions_give_one_200_and_one_409(
    app: Any, auth: Any, services: Services
) -> None:
    client = app.test_client()
    case = start_review(client, auth, services)
    task_id = case["open_tasks"][0]["id"]
    headers = auth("handler")
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def complete() -> None:
        c = app.test_client()
        barrier.wait()
        r = c.post(
            f"/api/v1/tasks/{task_id}/complete",
            json={"data": {"decision": "reject", "decided_on": "2026-03-02"}},
            headers=headers,
        )
        codes.append(r.status_code)

    threads = [threading.Thread(target=complete) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 409]
    with services.uow() as uow:
        case_row = uow.session.get(Case, case["id"])
        assert case_row is not None and case_row.status == "completed"
        assert case_row.audit_seq == 2  # started + one completion, never two


def test_claim_and_complete_are_refused_outside_role_and_scope(
    client: Any, auth: Any, services: Services
) -> None:
    case = start_review(client, auth, services)
    task_id = case["open_tasks"][0]["id"]
    body = {"data": {"decision": "approve", "decided_on": "2026-03-02"}}

    # A village handler's scope does not reach the street: the task does not exist for them.
    assert client.get(f"/api/v1/tasks/{task_id}", headers=auth("handler_v01")).status_code == 404
    assert (
        client.post(f"/api/v1/tasks/{task_id}/claim", headers=auth("handler_v01")).status_code
        == 404
    )
    assert (
        client.post(
            f"/api/v1/tasks/{task_id}/complete", json=body, headers=auth("handler_v01")
        ).status_code
        == 404
    )
    listed = client.get("/api/v1/tasks", headers=auth("handler_v01")).get_json()
    assert task_id not in [t["id"] for t in listed["items"]]

    # The street leader sees it (in scope) but does not hold the handler role.
    assert client.get(f"/api/v1/tasks/{task_id}", headers=auth("leader")).status_code == 200
    r = client.post(f"/api/v1/tasks/{task_id}/claim", headers=auth("leader"))
    assert r.status_code == 403 and r.get_json()["code"] == 403
    assert (
        client.post(
            f"/api/v1/tasks/{task_id}/complete", json=body, headers=auth("leader")
        ).status_code
        == 403
    )

    # Claimed by one handler: another handler of the same scope gets 409.
    assert client.post(f"/api/v1/tasks/{task_id}/claim", headers=auth("handler")).status_code == 200
    other = client.post(f"/api/v1/tasks/{task_id}/claim", headers=auth("en_user"))
    assert other.status_code == 409
    assert (
        client.post(
            f"/api/v1/tasks/{task_id}/complete", json=body, headers=auth("en_user")
        ).status_code
        == 409
    )


def test_bad_form_data_gets_422_with_field_messages_and_changes_nothing(
    client: Any, auth: Any, services: Services
) -> None:
    case = start_review(client, auth, services)
    task_id = case["open_tasks"][0]["id"]
    resp = client.post(
        f"/api/v1/tasks/{task_id}/complete",
        json={
            "data": {"amount": 5000, "decided_on": "02/03/2026", "comment": "x" * 201, "bogus": 1}
        },
        headers=auth("handler"),
    )
    assert resp.status_code == 422
    body = resp.get_json()
    assert body["code"] == 422 and body["status"] == "Unprocessable Entity"
    assert set(body["errors"]) == {"decision", "amount", "decided_on", "comment", "bogus"}
    after = client.get(f"/api/v1/cases/{case['id']}", headers=auth("clerk")).get_json()
    assert after["version"] == case["version"]
    assert [t["id"] for t in after["open_tasks"]] == [task_id]


def test_missing_body_and_bad_json_are_clear_errors_not_500(
    client: Any, auth: Any, services: Services
) -> None:
    case = start_review(client, auth, services)
    task_id = case["open_tasks"][0]["id"]
    r = client.post(f"/api/v1/tasks/{task_id}/complete", json={}, headers=auth("handler"))
    assert r.status_code == 422 and "data" in r.get_json()["errors"]
    r = client.post(
        f"/api/v1/tasks/{task_id}/complete",
        data="{not json",
        content_type="application/json",
        headers=auth("handler"),
    )
    assert r.status_code in {400, 422}
    assert client.get("/api/v1/tasks/999999", headers=auth("handler")).status_code == 404
    assert client.get("/api/v1/tasks").status_code == 401


@pytest.mark.parametrize(
    "fixture", ["gateway_import_os.bpmn", "gateway_subclasses.bpmn", "script_infinite_loop.bpmn"]
)
def test_hostile_expression_runs_no_code_and_puts_the_case_in_error(
    fixture: str, client: Any, auth: Any, services: Services, tmp_path: Path
) -> None:
    deploy_fixture(services, fixture)
    process_id = fixture.removesuffix(".bpmn")
    resp = client.post(
        "/api/v1/cases",
        json={"case_type": process_id, "unit_id": unit_id(services, "S01"), "data": {}},
        headers=auth("clerk"),
    )
    if resp.status_code == 201 and resp.get_json()["status"] != "error":
        # The hostile element comes after a first user task: complete it.
        case = resp.get_json()
        task = case["open_tasks"][0]
        detail = client.get(f"/api/v1/tasks/{task['id']}", headers=auth("admin")).get_json()
        data = {f["id"]: "x" for f in detail["form"]["fields"]}
        role = task["role"] or "handler"
        user = {"handler": "handler", "leader": "leader", "intake": "clerk"}[role]
        resp = client.post(
            f"/api/v1/tasks/{task['id']}/complete", json={"data": data}, headers=auth(user)
        )
        assert resp.status_code == 200
        case_id = case["id"]
    else:
        assert resp.status_code == 201, resp.get_json()
        case_id = resp.get_json()["id"]
    case = client.get(f"/api/v1/cases/{case_id}", headers=auth("clerk")).get_json()
    assert case["status"] == "error"
    assert case["error"]
    assert not Path("/tmp/pwned").exists()  # noqa: S108


@pytest.mark.parametrize("fixture", ["xxe.bpmn", "billion_laughs.bpmn"])
def test_xxe_and_entity_bombs_are_refused_clearly(fixture: str, services: Services) -> None:
    with services.uow() as uow, pytest.raises(ValidationError) as err:
        services.definitions.deploy(
            uow, (TEST_BPMN / fixture).read_bytes(), filename=fixture, at=START
        )
    assert "DOCTYPE" in err.value.message


def test_boundary_timer_fires_at_the_injected_time_and_not_before(
    client: Any, auth: Any, services: Services
) -> None:
    case = start_review(client, auth, services)
    with services.uow() as uow:
        timer = uow.session.get(Timer, case["id"])
        assert timer is not None and timer.fire_at == START + timedelta(days=3)

    services.clock.set(START + timedelta(days=2, hours=23))  # type: ignore[attr-defined]
    assert run_all(services)["fire_due_timers"] == 0
    again = client.get(f"/api/v1/cases/{case['id']}", headers=auth("clerk")).get_json()
    assert [t["bpmn_id"] for t in again["open_tasks"]] == ["review"]

    services.clock.set(START + timedelta(days=3))  # type: ignore[attr-defined]
    assert run_all(services)["fire_due_timers"] == 1
    assert run_all(services)["fire_due_timers"] == 0  # idempotent
    after = client.get(f"/api/v1/cases/{case['id']}", headers=auth("clerk")).get_json()
    assert [t["bpmn_id"] for t in after["open_tasks"]] == ["escalate"]
    with services.uow() as uow:
        assert uow.session.get(Timer, case["id"]) is None
        statuses = dict(
            uow.session.execute(
                select(Task.bpmn_id, Task.status).where(Task.case_id == case["id"])
            ).all()
        )
    assert statuses == {"review": "cancelled", "escalate": "open"}
