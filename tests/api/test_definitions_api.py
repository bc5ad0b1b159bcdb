"""Process definitions as data through the API: the three data-only case types run to the end,
versions, migration and the lint corpus (issue 11)."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.config import PROJECT_ROOT
from engine.domain.calendar import WorkingCalendar
from engine.persistence.models import Case, Unit
from engine.services.timers import fire_due_timers

WORKFLOWS = PROJECT_ROOT / "workflows"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def unit_id(services: Services, code: str) -> int:
    with services.uow() as uow:
        return int(uow.session.scalar(select(Unit.id).where(Unit.code == code)))


def zip_of(*paths: Path, extra: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in paths:
            archive.writestr(path.name, path.read_bytes())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def upload(client: Any, auth: Any, name: str, content: bytes) -> Any:
    return client.post(
        "/api/v1/process-definitions",
        data={"file": (io.BytesIO(content), name)},
        headers=auth("admin"),
        content_type="multipart/form-data",
    )


def deploy_case_type(client: Any, auth: Any, name: str) -> dict[str, Any]:
    resp = upload(
        client,
        auth,
        f"{name}.zip",
        zip_of(WORKFLOWS / f"{name}.bpmn", WORKFLOWS / f"{name}.casetype.yaml"),
    )
    assert resp.status_code == 201, resp.get_json()
    body: dict[str, Any] = resp.get_json()
    assert [d["process_id"] for d in body["definitions"]] == [name]
    assert [c["name"] for c in body["case_types"]] == [name]
    return body


def start(client: Any, auth: Any, services: Services, case_type: str, **data: Any) -> Any:
    return client.post(
        "/api/v1/cases",
        json={"case_type": case_type, "unit_id": unit_id(services, "S01"), "data": data},
        headers=auth("clerk"),
    )


def complete(client: Any, auth: Any, case: dict[str, Any], user: str, **data: Any) -> Any:
    """Complete the case's only open task as `user`; returns the case afterwards."""
    tasks = client.get(f"/api/v1/cases/{case['id']}", headers=auth(user)).get_json()["open_tasks"]
    assert len(tasks) == 1, tasks
    resp = client.post(
        f"/api/v1/tasks/{tasks[0]['id']}/complete", json={"data": data}, headers=auth(user)
    )
    assert resp.status_code == 200, resp.get_json()
    return client.get(f"/api/v1/cases/{case['id']}", headers=auth(user)).get_json()


def open_task_ids(case: dict[str, Any]) -> list[str]:
    return [t["bpmn_id"] for t in case["open_tasks"]]


def deadline(case: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [d for d in case["deadlines"] if d["kind"] == kind]
    assert found, case["deadlines"]
    return found[0]


CAL = WorkingCalendar()


# -- the three case types, end to end ------------------------------------------------------


def test_ogi_request_runs_to_a_reply_with_consultation_excluded_and_an_extension(
    client: Any, auth: Any, services: Services, clock: SettableClock
) -> None:
    deploy_case_type(client, auth, "ogi_request")
    resp = start(
        client,
        auth,
        services,
        "ogi_request",
        applicant_name="张三",
        received_on="2026-03-02",
        receipt_channel="online",
        request_content="2025年本街道老旧小区改造项目的资金使用情况",
    )
    assert resp.status_code == 201, resp.get_json()
    case = resp.get_json()
    assert case["case_no"].startswith("GK-2026-")
    assert case["title"] == "2025年本街道老旧小区改造项目的资金使用情况"
    assert open_task_ids(case) == ["review_application"]
    # 政府信息公开条例 Art. 33: 20 working days; Art. 30: correction notice within 7.
    reply_due = CAL.add_working_days(date(2026, 3, 2), 20).due_on
    assert deadline(case, "ogi_reply")["due_on"] == reply_due.isoformat() == "2026-03-30"
    assert deadline(case, "ogi_correction")["due_on"] == "2026-03-11"
    assert case["open_tasks"][0]["due_at"].startswith("2026-03-11T15:59:59")

    case = complete(client, auth, case, "clerk", review_decision="accept", reviewed_on="2026-03-02")
    assert [d["kind"] for d in case["deadlines"]] == ["ogi_reply"]  # no correction needed
    assert open_task_ids(case) == ["assess_request"]
    assert case["open_tasks"][0]["due_at"].startswith("2026-03-30T15:59:59")

    clock.set(datetime(2026, 3, 10, 1, 0, tzinfo=UTC))
    case = complete(
        client,
        auth,
        case,
        "handler",
        needs_third_party=True,
        needs_extension=True,
        extension_days=10,
        extension_reason="需征求第三方意见，材料较多",
    )
    assert open_task_ids(case) == ["third_party_consultation"]
    # A consultation answered "in the future" is refused, naming the field.
    tasks = case["open_tasks"]
    refused = client.post(
        f"/api/v1/tasks/{tasks[0]['id']}/complete",
        json={
            "data": {
                "consultation_sent_on": "2026-03-03",
                "consultation_answered_on": "2026-03-20",
            }
        },
        headers=auth("handler"),
    )
    assert refused.status_code == 422
    assert "consultation_answered_on" in refused.get_json()["errors"]

    case = complete(
        client,
        auth,
        case,
        "handler",
        consultation_sent_on="2026-03-03",
        consultation_answered_on="2026-03-09",
        third_party_opinion="同意公开",
    )
    # Consultation time (5 working days, 3rd to 9th March) is not counted (Art. 33).
    after_pause = CAL.add_working_days(reply_due, 5).due_on
    assert deadline(case, "ogi_reply")["due_on"] == after_pause.isoformat()
    assert open_task_ids(case) == ["approve_extension"]

    case = complete(client, auth, case, "leader", extension_approved=True, extension_opinion="同意")
    extended = CAL.add_working_days(after_pause, 10).due_on
    assert deadline(case, "ogi_reply")["due_on"] == extended.isoformat()
    assert case["data"]["ogi_reply_extensions"] == 1
    assert case["open_tasks"][0]["due_at"].startswith(extended.isoformat())

    case = complete(
        client, auth, case, "handler", reply_type="disclose", reply_summary="予以公开，附资金明细"
    )
    case = complete(client, auth, case, "leader", reply_approved_on="2026-03-10")
    case = complete(client, auth, case, "clerk", replied_on="2026-03-10", delivery_method="email")
    assert case["status"] == "completed"
    reply = deadline(case, "ogi_reply")
    assert reply["state"] == "met" and reply["met_on"] == "2026-03-10"

    report = client.get(
        "/api/v1/reports/kpi?from=2026-03-01&to=2026-12-31", headers=auth("supervisor")
    ).get_json()["kpis"]
    assert report["ogi_requests"]["value"] == 1
    assert report["ogi_replied_on_time_rate"]["numerator"] == 1
    assert report["ogi_replied_on_time_rate"]["denominator"] == 1


def test_ogi_correction_restarts_the_reply_clock(
    client: Any, auth: Any, services: Services, clock: SettableClock
) -> None:
    case = start(
        client,
        auth,
        services,
        "ogi_request",
        applicant_name="李四",
        received_on="2026-03-02",
        receipt_channel="post",
        request_content="有关文件",
    ).get_json()
    case = complete(
        client, auth, case, "clerk", review_decision="correction", reviewed_on="2026-03-02"
    )
    assert open_task_ids(case) == ["send_correction_notice"]
    case = complete(
        client,
        auth,
        case,
        "clerk",
        correction_notice_on="2026-03-02",
        correction_items="请明确所需信息的名称、文号",
    )
    assert deadline(case, "ogi_correction")["state"] == "met"
    assert "ogi_reply" not in [d["kind"] for d in case["deadlines"]]  # clock stopped

    clock.set(datetime(2026, 3, 16, 1, 0, tzinfo=UTC))
    case = complete(
        client, auth, case, "clerk", correction_result="received", corrected_on="2026-03-16"
    )
    restarted = CAL.add_working_days(date(2026, 3, 16), 20).due_on
    assert deadline(case, "ogi_reply")["due_on"] == restarted.isoformat()
    assert deadline(case, "ogi_reply")["state"] == "pending"
    assert open_task_ids(case) == ["assess_request"]


def test_a_petition_dressed_up_as_a_disclosure_request_is_redirected(
    client: Any, auth: Any, services: Services
) -> None:
    case = start(
        client,
        auth,
        services,
        "ogi_request",
        applicant_name="王五",
        received_on="2026-03-02",
        receipt_channel="in_person",
        request_content="要求公开为什么不给我家补偿拆迁款",
    ).get_json()
    case = complete(
        client,
        auth,
        case,
        "clerk",
        review_decision="redirect_petition",
        reviewed_on="2026-03-02",
        review_note="实为信访诉求",
    )
    assert case["status"] == "completed"
    assert case["deadlines"] == []  # no disclosure deadline runs for a redirected request
    redirected = [e for e in case["timeline"] if e["action"] == "case.redirected"]
    assert len(redirected) == 1
    detail = redirected[0]["detail"]
    assert detail["outcome"] == "redirected_to_petition"
    assert detail["child_case_type"] == "petition"
    with services.uow() as uow:
        child = uow.session.get(Case, detail["child_case_id"])
        assert child is not None
        assert child.parent_case_id == case["id"]
        assert child.case_type == "petition"
        assert child.data["petitioner_name"] == "王五"
        assert child.title == "要求公开为什么不给我家补偿拆迁款"


def test_ogi_intake_form_is_enforced_when_the_case_starts(
    client: Any, auth: Any, services: Services
) -> None:
    resp = start(client, auth, services, "ogi_request", applicant_name="赵六", received_on="x")
    assert resp.status_code == 422
    errors = resp.get_json()["errors"]
    assert {"received_on", "receipt_channel", "request_content"} <= set(errors)
    future = start(
        client,
        auth,
        services,
        "ogi_request",
        applicant_name="赵六",
        received_on="2026-04-01",
        receipt_channel="online",
        request_content="x",
    )
    assert future.status_code == 422 and "received_on" in future.get_json()["errors"]
    listed = client.get("/api/v1/cases?case_type=ogi_request", headers=auth("clerk")).get_json()
    assert listed["total"] == 0  # nothing was written


def test_an_extension_without_its_length_is_refused(
    client: Any, auth: Any, services: Services
) -> None:
    case = start(
        client,
        auth,
        services,
        "ogi_request",
        applicant_name="钱七",
        received_on="2026-03-02",
        receipt_channel="online",
        request_content="x",
    ).get_json()
    case = complete(client, auth, case, "clerk", review_decision="accept", reviewed_on="2026-03-02")
    case = complete(client, auth, case, "handler", needs_extension=True, needs_third_party=False)
    task = case["open_tasks"][0]
    assert task["bpmn_id"] == "approve_extension"
    resp = client.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": {"extension_approved": True}},
        headers=auth("leader"),
    )
    assert resp.status_code == 422
    assert "extension_days" in resp.get_json()["errors"]
    assert "20" in resp.get_json()["errors"]["extension_days"][0]


def test_rectification_runs_a_repeat_notice_then_sign_off(
    client: Any, auth: Any, services: Services, clock: SettableClock
) -> None:
    deploy_case_type(client, auth, "rectification")
    resp = start(
        client,
        auth,
        services,
        "rectification",
        target_name="示范街道某餐饮店",
        found_on="2026-03-02",
        problem_description="油烟净化设施未正常使用",
    )
    assert resp.status_code == 201, resp.get_json()
    case = resp.get_json()
    assert case["case_no"].startswith("ZG-2026-")
    case = complete(
        client,
        auth,
        case,
        "handler",
        notice_no="示街整字〔2026〕1号",
        issued_on="2026-03-02",
        rectify_by="2026-03-16",
        requirements="限期安装并正常使用油烟净化设施",
    )
    assert case["status"] == "waiting" and case["open_tasks"] == []
    assert deadline(case, "rectify_by")["due_on"] == "2026-03-16"
    first_reinspection = CAL.add_working_days(date(2026, 3, 16), 5).due_on
    assert deadline(case, "reinspection")["due_on"] == first_reinspection.isoformat()

    # The rectification period ends: the timer opens the re-inspection the next day.
    clock.set(datetime(2026, 3, 17, 1, 0, tzinfo=UTC))
    assert fire_due_timers(services) == 1
    case = client.get(f"/api/v1/cases/{case['id']}", headers=auth("handler")).get_json()
    assert open_task_ids(case) == ["reinspect"]
    case = complete(
        client, auth, case, "handler", reinspected_on="2026-03-17", reinspect_result="failed"
    )
    assert open_task_ids(case) == ["issue_repeat_notice"]
    assert deadline(case, "reinspection")["state"] == "met"
    case = complete(
        client,
        auth,
        case,
        "handler",
        notice_no="示街整字〔2026〕2号",
        issued_on="2026-03-17",
        rectify_by="2026-03-31",
        requirements="再次限期整改",
    )
    assert case["data"]["notice_round"] == 2
    assert deadline(case, "rectify_by")["due_on"] == "2026-03-31"
    assert deadline(case, "reinspection")["state"] == "pending"

    clock.set(datetime(2026, 4, 1, 1, 0, tzinfo=UTC))
    assert fire_due_timers(services) == 1
    case = complete(
        client,
        auth,
        case,
        "handler",
        reinspected_on="2026-04-01",
        reinspect_result="passed",
        rectified_on="2026-03-30",
    )
    assert open_task_ids(case) == ["sign_off"]
    case = complete(client, auth, case, "leader", signed_off_on="2026-04-01")
    assert case["status"] == "completed"
    assert deadline(case, "rectify_by")["state"] == "met"
    assert deadline(case, "reinspection")["state"] == "met"
    report = client.get(
        "/api/v1/reports/kpi?from=2026-03-01&to=2026-12-31", headers=auth("supervisor")
    ).get_json()["kpis"]
    assert report["rectification_notices"]["value"] == 1
    assert report["rectification_signed_off_rate"]["display"] == "100.0%"


def test_council_proposal_gets_written_feedback_with_the_adoption_result(
    client: Any, auth: Any, services: Services
) -> None:
    deploy_case_type(client, auth, "council_proposal")
    resp = start(
        client,
        auth,
        services,
        "council_proposal",
        representative_name="孙代表",
        received_on="2026-03-02",
        proposal_title="增设小区充电桩",
        proposal_content="建议在示范社区增设电动自行车充电桩",
    )
    assert resp.status_code == 201, resp.get_json()
    case = resp.get_json()
    assert case["case_no"].startswith("YS-2026-")
    # Written feedback within 30 days (信访条例 2005 Art. 36 default); 1 April is a Wednesday.
    assert deadline(case, "council_feedback")["due_on"] == "2026-04-01"
    case = complete(
        client,
        auth,
        case,
        "handler",
        adoption_result="partially_adopted",
        adoption_reason="先在两个小区试点",
    )
    case = complete(client, auth, case, "leader", feedback_approved_on="2026-03-02")
    case = complete(
        client,
        auth,
        case,
        "handler",
        feedback_on="2026-03-02",
        feedback_method="letter",
        representative_opinion="satisfied",
    )
    assert case["status"] == "completed"
    assert case["data"]["adoption_result"] == "partially_adopted"
    assert deadline(case, "council_feedback")["state"] == "met"
    report = client.get(
        "/api/v1/reports/kpi?from=2026-03-01&to=2026-12-31", headers=auth("supervisor")
    ).get_json()["kpis"]
    assert report["council_proposals"]["value"] == 1
    assert report["council_adoption_rate"]["numerator"] == 1
    assert report["council_feedback_on_time_rate"]["display"] == "100.0%"


def test_case_types_lists_data_types_with_their_intake_forms(client: Any, auth: Any) -> None:
    resp = client.get("/api/v1/case-types", headers=auth("clerk"))
    assert resp.status_code == 200
    items = {c["name"]: c for c in resp.get_json()["items"]}
    ogi = items["ogi_request"]
    assert ogi["source"] == "data" and ogi["prefix"] == "GK"
    assert ogi["label_zh"] == "政府信息公开申请"
    assert ogi["intake_form"]["json_schema"]["required"] == [
        "applicant_name",
        "received_on",
        "receipt_channel",
        "request_content",
    ]
    assert {d["kind"] for d in ogi["deadlines"]} == {"ogi_reply", "ogi_correction"}
    assert {"rectification", "council_proposal"} <= set(items)
    assert client.get("/api/v1/case-types").status_code == 401


# -- versions and migration -----------------------------------------------------------------


def council_v2() -> bytes:
    """The council process with the approval step renamed and one more form field."""
    xml = (WORKFLOWS / "council_proposal.bpmn").read_text()
    xml = xml.replace('name="审核反馈意见"', 'name="审核反馈意见（新版）"')
    xml = xml.replace(
        '<camunda:formField id="approval_opinion" label="审核意见" type="string">',
        '<camunda:formField id="approval_opinion" label="审核意见（必填）" type="string">',
    )
    assert "新版" in xml
    return xml.encode()


def test_second_version_runs_new_cases_while_old_cases_finish_on_the_first(
    client: Any, auth: Any, services: Services
) -> None:
    def proposal(title: str) -> dict[str, Any]:
        resp = start(
            client,
            auth,
            services,
            "council_proposal",
            representative_name="周代表",
            received_on="2026-03-02",
            proposal_title=title,
            proposal_content="内容",
        )
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()  # type: ignore[no-any-return]

    old_case = proposal("旧版本上的建议")
    listing = client.get("/api/v1/process-definitions", headers=auth("admin")).get_json()
    v1 = next(d for d in listing["items"] if d["process_id"] == "council_proposal")
    assert v1["version"] == 1 and v1["running_instances"] == 1 and v1["is_latest"]

    resp = upload(client, auth, "council_proposal.bpmn", council_v2())
    assert resp.status_code == 201, resp.get_json()
    v2 = resp.get_json()["definitions"][0]
    assert v2["version"] == 2 and v2["sha256"] != v1["sha256"] and v2["running_instances"] == 0
    new_case = proposal("新版本上的建议")

    listing = client.get("/api/v1/process-definitions", headers=auth("admin")).get_json()
    by_version = {
        d["version"]: d for d in listing["items"] if d["process_id"] == "council_proposal"
    }
    assert by_version[1]["running_instances"] == 1 and not by_version[1]["is_latest"]
    assert by_version[2]["running_instances"] == 1 and by_version[2]["is_latest"]

    for case, label in ((old_case, "审核反馈意见"), (new_case, "审核反馈意见（新版）")):
        case = complete(
            client, auth, case, "handler", adoption_result="adopted", adoption_reason="采纳"
        )
        assert case["open_tasks"][0]["name"] == label
        case = complete(client, auth, case, "leader", feedback_approved_on="2026-03-02")
        case = complete(
            client, auth, case, "handler", feedback_on="2026-03-02", feedback_method="meeting"
        )
        assert case["status"] == "completed"
    with services.uow() as uow:
        old_row = uow.session.get(Case, old_case["id"])
        new_row = uow.session.get(Case, new_case["id"])
        assert old_row is not None and new_row is not None
        assert old_row.definition_id == v1["id"] and new_row.definition_id == v2["id"]

    detail = client.get(f"/api/v1/process-definitions/{v2['id']}", headers=auth("admin"))
    assert detail.status_code == 200
    body = detail.get_json()
    assert "bpmndi:BPMNDiagram" in body["xml"] and "新版" in body["xml"]
    assert {t["id"] for t in body["user_tasks"]} >= {"study_proposal", "written_feedback"}
    assert client.get("/api/v1/process-definitions", headers=auth("clerk")).status_code == 403


def test_migration_dry_run_then_move_with_the_reasons_for_those_that_cannot(
    client: Any, auth: Any, services: Services
) -> None:
    def proposal() -> dict[str, Any]:
        return start(  # type: ignore[no-any-return]
            client,
            auth,
            services,
            "council_proposal",
            representative_name="吴代表",
            received_on="2026-03-02",
            proposal_title="建议",
            proposal_content="内容",
        ).get_json()

    at_study = proposal()
    at_feedback = proposal()
    at_feedback = complete(
        client, auth, at_feedback, "handler", adoption_result="adopted", adoption_reason="采纳"
    )
    at_feedback = complete(client, auth, at_feedback, "leader", feedback_approved_on="2026-03-02")
    assert open_task_ids(at_feedback) == ["written_feedback"]

    # v3 drops the written-feedback step: cases already there cannot move.
    xml = (WORKFLOWS / "council_proposal.bpmn").read_text()
    start_cut = xml.index('<bpmn:userTask id="written_feedback"')
    end_cut = xml.index("</bpmn:userTask>", start_cut) + len("</bpmn:userTask>")
    xml = xml[:start_cut] + xml[end_cut:]
    xml = xml.replace(
        '<bpmn:sequenceFlow id="Flow_approved" sourceRef="approve_feedback" '
        'targetRef="written_feedback" />',
        '<bpmn:sequenceFlow id="Flow_approved" sourceRef="approve_feedback" '
        'targetRef="end_fed_back" />',
    )
    xml = xml.replace(
        '<bpmn:sequenceFlow id="Flow_fed_back" sourceRef="written_feedback" '
        'targetRef="end_fed_back" />',
        "",
    )
    xml = xml.replace(
        "<bpmn:incoming>Flow_fed_back</bpmn:incoming>",
        "<bpmn:incoming>Flow_approved</bpmn:incoming>",
    )
    xml = xml.replace('<bpmndi:BPMNShape id="written_feedback_di"', '<bpmndi:BPMNShape id="wf_di"')
    resp = upload(client, auth, "council_proposal.bpmn", xml.encode())
    assert resp.status_code == 201, resp.get_json()
    target = resp.get_json()["definitions"][0]

    url = f"/api/v1/process-definitions/{target['id']}/migrations"
    dry = client.post(url, json={"dry_run": True}, headers=auth("admin"))
    assert dry.status_code == 200, dry.get_json()
    items = {i["case_id"]: i for i in dry.get_json()["items"]}
    assert items[at_study["id"]]["movable"] is True
    assert items[at_study["id"]]["migrated"] is False
    blocked = items[at_feedback["id"]]
    assert blocked["movable"] is False
    assert blocked["reasons"][0]["element_id"] == "written_feedback"
    assert "written_feedback" in blocked["reasons"][0]["message"]
    assert "新版本中不存在" in blocked["reasons"][0]["message_zh"]
    with services.uow() as uow:  # a dry run changes nothing
        row = uow.session.get(Case, at_study["id"])
        assert row is not None and row.definition_id != target["id"]

    done = client.post(url, json={"dry_run": False}, headers=auth("admin")).get_json()
    assert done["migrated"] == 1
    moved = client.get(f"/api/v1/cases/{at_study['id']}", headers=auth("handler")).get_json()
    assert (
        next(e for e in moved["timeline"] if e["action"] == "case.migrated")["detail"]["to_version"]
        == target["version"]
    )
    moved = complete(client, auth, moved, "handler", adoption_result="adopted", adoption_reason="x")
    moved = complete(client, auth, moved, "leader", feedback_approved_on="2026-03-02")
    assert moved["status"] == "completed"  # the new version ends after approval
    stayed = complete(
        client, auth, at_feedback, "handler", feedback_on="2026-03-02", feedback_method="letter"
    )
    assert stayed["status"] == "completed"
    assert client.post(url, json={"dry_run": True}, headers=auth("leader")).status_code == 403


# -- the upload boundary --------------------------------------------------------------------


LINT = FIXTURES / "bpmn" / "lint"
LINT_FILES = sorted(LINT.glob("*"))


def expected_outcome(path: Path) -> tuple[int, list[str]]:
    """valid_* deploy; the rest name the elements on their first line: `<!-- 422: a, b -->`."""
    if path.name.startswith("valid_"):
        return 201, []
    head = path.read_bytes()[:400].decode("utf-8", "replace")
    marker = head[head.index("422:") + 4 : head.index("-->")] if "422:" in head else ""
    return 422, [m.strip() for m in marker.split(",") if m.strip()]


def test_the_lint_corpus_is_varied() -> None:
    assert len(LINT_FILES) >= 20
    assert sum(1 for p in LINT_FILES if p.name.startswith("valid_")) >= 3
    assert any(p.stat().st_size > 400_000 for p in LINT_FILES)  # large


@pytest.mark.parametrize("path", LINT_FILES, ids=lambda p: p.name)
def test_lint_corpus_file_deploys_or_is_refused_naming_the_element(
    path: Path, client: Any, auth: Any
) -> None:
    status, elements = expected_outcome(path)
    resp = upload(client, auth, path.name, path.read_bytes())
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    if status == 201:
        assert body["definitions"]
        return
    errors = body["errors"]
    for element in elements:
        assert element in errors, (element, errors)
        en, zh = errors[element][0], errors[element][1]
        assert en and en != zh  # English, then Chinese
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), zh  # and a Chinese one


MIWG = sorted((FIXTURES / "bpmn-miwg").rglob("*.bpmn"))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_miwg_file_deploys_or_gets_a_422_through_the_upload_api(
    client: Any, auth: Any
) -> None:
    outcomes: dict[int, int] = {}
    for path in MIWG:
        resp = upload(client, auth, path.name, path.read_bytes())
        outcomes[resp.status_code] = outcomes.get(resp.status_code, 0) + 1
        assert resp.status_code in (201, 422), (path, resp.get_json())
        if resp.status_code == 422:
            assert resp.get_json()["errors"]
    assert sum(outcomes.values()) == len(MIWG) > 60


def test_uploads_that_are_not_bpmn_are_refused_clearly(client: Any, auth: Any) -> None:
    cases = {
        "empty.bpmn": b"",
        "notes.txt": b"hello",
        "broken.zip": b"PK\x03\x04garbage",
        "utf16.bpmn": (WORKFLOWS / "council_proposal.bpmn").read_text().encode("utf-16"),
    }
    for name, content in cases.items():
        resp = upload(client, auth, name, content)
        assert resp.status_code == 422, (name, resp.get_json())
        assert resp.get_json()["errors"]
    evil_zip = zip_of(extra={"../../etc/passwd.casetype.yaml": b"a: &a [*a]"})
    resp = upload(client, auth, "evil.zip", evil_zip)
    assert resp.status_code == 422
    assert "passwd.casetype.yaml" in resp.get_json()["errors"]
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("huge.bpmn", b" " * (6 * 1024 * 1024))
    assert len(bomb.getvalue()) < 100_000
    resp = upload(client, auth, "bomb.zip", bomb.getvalue())
    assert resp.status_code == 422 and "bomb.zip" in resp.get_json()["errors"]
    other = zip_of(extra={"run.sh": b"rm -rf /"})
    assert upload(client, auth, "other.zip", other).status_code == 422
    missing = client.post(
        "/api/v1/process-definitions",
        data={},
        headers=auth("admin"),
        content_type="multipart/form-data",
    )
    assert missing.status_code == 422
    resp = client.post(
        "/api/v1/process-definitions",
        data={"file": (io.BytesIO(b"<x/>"), "x.bpmn")},
        headers=auth("handler"),
        content_type="multipart/form-data",
    )
    assert resp.status_code == 403


def test_case_type_data_that_does_not_fit_its_process_is_refused(client: Any, auth: Any) -> None:
    yaml_text = (WORKFLOWS / "council_proposal.casetype.yaml").read_text()
    broken = yaml_text.replace("task: written_feedback", "task: no_such_task").replace(
        "prefix: YS", "prefix: ys1"
    )
    resp = upload(
        client,
        auth,
        "council.zip",
        zip_of(
            WORKFLOWS / "council_proposal.bpmn",
            extra={"council_proposal.casetype.yaml": broken.encode()},
        ),
    )
    assert resp.status_code == 422, resp.get_json()
    errors = resp.get_json()["errors"]
    assert "council_proposal.casetype.yaml:prefix" in errors
    with services_of(client).uow() as uow:
        from engine.persistence.models import CaseTypeDefinition

        versions = uow.session.scalars(
            select(CaseTypeDefinition.version).where(CaseTypeDefinition.name == "council_proposal")
        ).all()
        assert list(versions) == [1]  # nothing new was stored


def services_of(client: Any) -> Services:
    return client.application.extensions["fengqiao"]  # type: ignore[no-any-return]
