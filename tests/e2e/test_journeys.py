"""The main journeys through the pages, in headless Chromium (see conftest for what fails a test)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from engine.persistence.models import User
from engine.services.access import Actor, load_actor
from tests.e2e.conftest import PHONE, LiveApp

pytestmark = pytest.mark.e2e

PERSON_ID = "110101199003071233"  # a valid check digit


def actor_of(live: LiveApp, username: str) -> Actor:
    """The service-level actor of a demo user (to set up state through the services)."""
    with live.services.uow() as uow:
        user_id = uow.session.scalar(select(User.id).where(User.username == username))
        assert user_id is not None
        return load_actor(uow.session, user_id)


def open_task(session: Any, name_part: str) -> Any:
    """From 我的待办, open the task whose name contains name_part on its own page."""
    page = session.goto("/tasks")
    page.locator("table.tasks tr", has_text=name_part).first.locator("a.button").click()
    page.wait_for_load_state("networkidle")
    return page


def fill_task(page: Any, values: dict[str, str | bool]) -> None:
    """Fill a rendered task form by field id (f_<id>)."""
    for field, value in values.items():
        locator = page.locator(f"#f_{field}")
        tag = locator.evaluate("el => el.tagName.toLowerCase()")
        kind = locator.get_attribute("type") or ""
        if isinstance(value, bool) or kind == "checkbox":
            locator.set_checked(bool(value))
        elif tag == "select":
            locator.select_option(str(value))
        else:
            locator.fill(str(value))


def complete(page: Any) -> None:
    """Submit the task form."""
    page.locator("form.taskform button.primary").click()
    page.wait_for_load_state("networkidle")


def register_through_page(session: Any, *, name: str, subject: str) -> str:
    """The clerk registers a petition on the reception desk's form; returns its case URL."""
    page = session.goto("/petitions/new")
    page.fill("#p0_name", name)
    page.fill("#p0_id_number", PERSON_ID)
    page.fill("#p0_phone", "13812345678")
    page.select_option("#channel", "visit")
    page.select_option("#category", "claim")
    page.fill("#subject", subject)
    page.fill("#request", "要求村委会按合同支付2025年土地流转费。")
    page.wait_for_timeout(600)  # let the repeat check that typing triggers finish
    page.wait_for_load_state("networkidle")
    page.locator("#petition-form button.primary").click()
    page.wait_for_load_state("networkidle")
    errors = page.locator(".error").all_inner_texts()
    assert re.search(r"/cases/\d+$", page.url), f"{page.url}: {errors}"
    return str(page.url)


def test_clerk_registers_and_staff_carry_the_petition_to_its_reply(open_session: Any) -> None:
    """Clerk registers (ID masked) and decides acceptance; handler handles and drafts the reply
    (server validation shown next to the field); leader approves; handler delivers; the case
    page's diagram marks the completed path."""
    clerk = open_session("clerk")
    case_url = register_through_page(clerk, name="王大明", subject="土地流转费未支付")
    page = clerk.page
    assert page.locator("h1").inner_text().startswith("XF-")
    people = page.locator("#petitioners").inner_text()
    assert "王大明" in people
    assert PERSON_ID not in people, "the ID number must be masked"
    assert "*" in people
    clerk.shot("01-clerk-registered-petition")

    # A second registration of the same person and matter warns while typing.
    page = clerk.goto("/petitions/new")
    page.fill("#p0_name", "王大明")
    page.fill("#subject", "土地流转费未支付")
    page.fill("#p0_id_number", PERSON_ID)
    page.locator("#repeat-warning").wait_for(state="visible")
    assert "XF-" in page.locator("#repeat-warning").inner_text()
    clerk.shot("02-clerk-repeat-warning", full_page=False)

    # Acceptance is the petition office's decision (intake).
    page = open_task(clerk, "受理决定")
    street = page.locator("#f_responsible_unit_id option", has_text="示范街道").first
    fill_task(
        page,
        {
            "decision": "accept",
            "decided_on": "2026-03-02",
            "responsible_unit_id": street.get_attribute("value") or "",
        },
    )
    complete(page)

    handler = open_session("handler")
    page = handler.goto("/tasks")
    handler.shot("03-handler-inbox")
    page.locator("table.tasks tr", has_text="办理").first.locator("a.tasklink").click()
    page.wait_for_load_state("networkidle")
    page.locator("aside.pane button", has_text="签收").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("aside.pane").is_visible()
    fill_task(page, {"findings": "经核实，村委会拖欠流转费属实。", "method": "investigation"})
    page.locator("aside.pane form.taskform button.primary").click()
    page.wait_for_load_state("networkidle")

    page = open_task(handler, "拟写处理意见")
    open_session.watch.expect_status(r"/tasks/\d+$", 422)  # type: ignore[attr-defined]
    complete(page)  # nothing filled in: the server's messages appear next to their fields
    assert page.locator(".field.has-error .error").count() >= 1
    assert "必填" in page.locator(".field.has-error .error").first.inner_text()
    handler.shot("04-handler-validation-messages")
    fill_task(
        page,
        {
            "outcome": "support",
            "reply_text": "支持信访人诉求，责成村委会于30日内支付。",
            "legal_basis": "《农村土地承包法》第三十九条",
        },
    )
    complete(page)

    leader = open_session("leader")
    page = open_task(leader, "审核处理意见")
    fill_task(page, {"approve": True, "comment": "同意。"})
    complete(page)

    page = open_task(handler, "送达")
    fill_task(page, {"delivered_on": "2026-03-02", "delivery_method": "in_person"})
    complete(page)

    page = handler.goto(case_url.removeprefix(handler.live.base_url))
    page.locator("#diagram .djs-element.fq-done").first.wait_for()
    assert page.locator("#diagram .djs-element.fq-active").count() >= 1
    assert page.locator("#reply").is_visible()
    handler.shot("05-case-page-with-diagram")


def test_supervisor_sees_kpi_change_and_supervises_an_overdue_case(open_session: Any) -> None:
    """A registered petition shows up in the KPI figures; once its acceptance deadline is missed
    the deadline board shows a red card whose 督办 link opens the supervision task."""
    from engine.services import jobs
    from engine.services.petitions import register_petition

    supervisor = open_session("supervisor")
    live: LiveApp = supervisor.live
    page = supervisor.goto("/kpi?from=2026-03-01&to=2026-03-31")
    before = int(page.locator("[data-kpi=received] .kpi-value").inner_text())

    register_petition(
        live.services,
        actor_of(live, "clerk"),
        {
            "channel": "letter",
            "received_on": "2026-03-02",
            "category": "claim",
            "subject": "小区噪音扰民",
            "request": "要求处理夜间施工噪音。",
            "petitioners": [{"name": "李小红", "phone": "13900001111"}],
        },
    )
    page = supervisor.goto("/kpi?from=2026-03-01&to=2026-03-31")
    after = int(page.locator("[data-kpi=received] .kpi-value").inner_text())
    assert after == before + 1
    supervisor.shot("06-supervisor-kpi-dashboard")

    # Nobody decides within 15 days: the acceptance notice deadline is missed.
    live.clock.advance(timedelta(days=20))
    jobs.run_all(live.services, live.clock.now())
    page = supervisor.goto("/deadlines")
    assert int(page.locator(".tile.red b").inner_text()) >= 1
    supervisor.shot("07-supervisor-deadline-board")
    row = page.locator("tr.card-red", has_text="小区噪音扰民").filter(has_text="督办").first
    row.locator("a.button", has_text="督办").click()
    page.wait_for_load_state("networkidle")
    assert "/tasks/" in page.url
    fill_task(page, {"method": "phone", "notes": "电话督促信访办三日内作出受理决定。"})
    complete(page)
    assert page.locator(".flash").first.is_visible()
    supervisor.shot("08-supervision-recorded")


def test_village_reporter_files_a_zero_report_and_the_board_shows_it(open_session: Any) -> None:
    """A village's grid worker files a zero report, its head signs it, and the screening board
    shows that village's March cell as a zero report; the cell opens the month's ledger."""
    from engine.services.screening import open_rounds_for_month

    reporter = open_session("reporter_v01", PHONE)
    live = reporter.live
    open_rounds_for_month(live.services, "2026-03", live.clock.now())
    page = open_task(reporter, "上报排查结果")
    fill_task(
        page,
        {"zero_report": True, "reported_on": "2026-03-02", "report_note": "本月未排查出矛盾纠纷。"},
    )
    reporter.shot("09-reporter-zero-report-phone")
    complete(page)

    head = open_session("leader_v01")
    page = open_task(head, "单位负责人签批")
    fill_task(page, {"approve": True, "signed_on": "2026-03-02"})
    complete(page)

    supervisor = open_session("supervisor")
    page = supervisor.goto("/screening?to=2026-03")
    cell = page.locator("tr", has_text="东风村").locator("a.cell").last
    assert cell.get_attribute("data-state") == "zero"
    supervisor.shot("10-screening-board")
    cell.click()
    page.wait_for_load_state("networkidle")
    assert "/screening/ledger" in page.url
    xlsx = page.request.get(live.url(page.locator("a.xlsx").get_attribute("href") or ""))
    assert xlsx.status == 200
    assert xlsx.body()[:2] == b"PK"
    supervisor.shot("11-screening-ledger")
    page.emulate_media(media="print")
    assert not page.locator("nav.mainnav").is_visible()
    assert page.locator("section.ledger table").is_visible()
    supervisor.shot("11b-screening-ledger-print")
    page.emulate_media(media="screen")

    page = supervisor.goto("/key-persons")
    assert page.locator("h1").inner_text() == "重点信访人员管控风险研判台账"
    open_session.watch.expect_status(r"/key-persons$", 403)  # type: ignore[attr-defined]
    page = reporter.goto("/key-persons")
    assert "无权访问" in page.locator("h1").inner_text()


def test_language_switch_shows_english(open_session: Any) -> None:
    """The language switch turns every label of the page into English, and back."""
    clerk = open_session("clerk")
    page = clerk.goto("/tasks")
    assert page.locator("h1").inner_text().startswith("我的待办")
    page.locator("a.lang").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text().startswith("My tasks")
    assert page.locator("nav.mainnav").inner_text().count("Register petition") == 1
    assert page.locator("html").get_attribute("lang") == "en"
    clerk.shot("12-english-inbox")
    page = clerk.goto("/petitions/new")
    assert "Petitioners" in page.locator("main").inner_text()
    page.locator("a.lang").click()
    page.wait_for_load_state("networkidle")
    assert "信访人" in page.locator("main").inner_text()


def test_admin_pages_and_api_docs_load(open_session: Any) -> None:
    """Every admin page renders for an admin, and Swagger UI runs under the CSP."""
    admin = open_session("admin")
    for path, shot in (
        ("/admin/users", "13-admin-users"),
        ("/admin/units", "14-admin-units"),
        ("/admin/settings", "15-admin-settings"),
        ("/admin/calendar", "16-admin-calendar"),
        ("/admin/processes", "17-admin-processes"),
    ):
        page = admin.goto(path)
        assert page.locator("nav.tabs a.current").count() == 1
        admin.shot(shot)
    page = admin.goto("/admin/settings")
    page.fill("#s_warning_days", "4")
    page.fill(
        "#s_sensitive_periods", '[{"start": "2026-03-04", "end": "2026-03-11", "name": "两会"}]'
    )
    page.locator("form.settings button.primary").click()
    page.wait_for_load_state("networkidle")
    assert page.locator(".flash").first.inner_text() == "设置已保存。"
    assert page.locator("#s_warning_days").input_value() == "4"
    assert "两会" in page.locator("#s_sensitive_periods").input_value()
    page = admin.goto("/api/docs")
    page.locator(".swagger-ui .opblock").first.wait_for()
    admin.shot("18-api-docs", full_page=False)
