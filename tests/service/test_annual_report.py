"""The annual report over a known year built through the services (issue 8, 'Done means'):
every figure with its numerator and denominator, rounding, '—' for an empty denominator,
and the same numbers the dashboard's KPI report gives for the period."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.errors import NotFoundError, ValidationError
from engine.persistence.models import Hazard, ScreeningRound, Unit
from engine.services import annual_report, petitions, screening, tasks
from engine.services.jobs import run_all
from engine.services.reports import Period, kpi_report
from tests.conftest import START
from tests.service.petition_support import (
    accept,
    actor,
    at,
    complete,
    handle,
    register,
    reply,
    unit_id,
)
from tests.service.test_screening_year import hazard_body, report, round_of, sign
from tests.service.test_stabilization_support import assess, form_team, open_task, user_id
from tests.service.test_stabilization_support import register as register_key_person

OTHER = {"subject": "红旗村道路破损", "request": "村道多处破损，请求维修"}
WAGES = {"subject": "工地拖欠农民工工资", "request": "请求支付拖欠的三个月工资"}
ZHAO = [{"name": "赵六", "phone": "13900139000"}]


def _receptions(services: Services) -> None:
    clerk = actor(services, "clerk")
    leader = user_id(services, "leader")
    for kind, held_on, persons in (
        ("reception", "2025-03-03", 3),
        ("reception", "2025-06-16", 2),
        ("field_visit", "2025-08-08", 40),
        ("field_visit", "2024-12-20", 10),  # another year
    ):
        petitions.record_reception(
            services,
            clerk,
            {"kind": kind, "held_on": held_on, "leader_user_id": leader, "person_count": persons},
        )


def _sign_off_key_person(services: Services, case_id: int) -> None:
    complete_as = tasks.complete_task
    complete_as(
        services,
        actor(services, "handler_sfs"),
        open_task(services, case_id, "propose_closure"),
        {
            "evidence_kind": "commitment",
            "evidence_ref": "息访承诺书",
            "return_visit_on": "2025-08-01",
            "resolution_summary": "签署承诺书",
        },
    )
    complete_as(
        services,
        actor(services, "leader"),
        open_task(services, case_id, "approve_closure"),
        {"approve_decision": "approve", "approved_on": "2025-08-03"},
    )
    complete_as(
        services,
        actor(services, "clerk"),
        open_task(services, case_id, "verify_closure"),
        {"verify_decision": "approve", "verified_on": "2025-08-03"},
    )


def _close_hazard(services: Services, case_id: int) -> None:
    tasks.complete_task(
        services,
        actor(services, "handler_v01"),
        open_task(services, case_id, "resolve"),
        {
            "resolution": "agreement",
            "resolved_on": "2025-11-15",
            "evidence_refs": "调解协议书、回访记录",
            "progress": "经村调委会调解，双方达成协议",
            "agreement_no": "枫调〔2025〕7号",
            "agreement_signed_on": "2025-11-15",
            "agreement_parties": "张三、李四",
        },
    )
    tasks.complete_task(
        services,
        actor(services, "leader_v01"),
        open_task(services, case_id, "confirm_closure"),
        {"confirm": True, "confirmed_on": "2025-11-16"},
    )
    tasks.complete_task(
        services,
        actor(services, "supervisor"),
        open_task(services, case_id, "approve_closure"),
        {"approve": True, "signed_off_on": "2025-11-18"},
    )


def build_2025(services: Services, clock: SettableClock) -> dict[str, Any]:
    """A year at 示范街道, each step on its business date.

    Petitions: A1 visit/claim, accepted, replied on time, satisfied. A2 letter/suggestion,
    assigned from above through a proxy, replied late (06-20 > 06-02), basically satisfied.
    A3 online/accusation through a proxy, not accepted. A4 phone/claim, never decided: red and
    supervision at the 09-20 tick, overdue at year end. A5 visit/claim, same person and matter
    as A4 while A4 is open (a repeat), replied on time, evaluation window lapses.
    Receptions: 2 (3 + 2 persons), field visit 1 (40 persons); one more in 2024.
    Key persons: 张三 high risk under control; 李四 low risk, signed off 08-03.
    Screening: rounds opened by the 09-20 and 11-01 ticks; in November V01 reports two hazards
    (land, wages) and V02 a zero report, both signed on time; the land hazard is settled by a
    mediation agreement and signed off, the wages hazard is past its time limit at year end.
    """
    ids: dict[str, Any] = {}
    _receptions(services)
    steps: list[tuple[date, Callable[[], Any]]] = [
        (date(2025, 3, 3), lambda: ids.update(A1=register(services, received_on="2025-03-03")["id"])),
        (date(2025, 3, 5), lambda: accept(services, ids["A1"], "2025-03-05")),
        (date(2025, 3, 20), lambda: (handle(services, ids["A1"]), reply(services, ids["A1"], "2025-03-20"))),
        (date(2025, 3, 22), lambda: complete(services, "clerk", ids["A1"], "record_evaluation", {"rating": "satisfied"})),
        (date(2025, 4, 1), lambda: ids.update(A2=register(
            services, received_on="2025-04-01", channel="letter", category="suggestion",
            source="assigned", assigned_ref="区信交〔2025〕8号", assigned_due_on="2025-05-30",
            proxy_agent="村信访代理员", petitioners=[{"name": "李四"}], **OTHER)["id"])),
        (date(2025, 4, 3), lambda: accept(services, ids["A2"], "2025-04-03")),
        (date(2025, 5, 6), lambda: ids.update(A3=register(
            services, received_on="2025-05-06", channel="online", category="accusation",
            proxy_agent="李代理", petitioners=[{"name": "张三"}],
            subject="举报村民违章建房", request="请求查处违章建筑")["id"])),
        (date(2025, 5, 8), lambda: complete(services, "clerk", ids["A3"], "decide_acceptance", {"decision": "not_accept", "reason": "不属于信访事项"})),
        (date(2025, 6, 20), lambda: (handle(services, ids["A2"]), reply(services, ids["A2"], "2025-06-20"))),
        (date(2025, 6, 25), lambda: complete(services, "clerk", ids["A2"], "record_evaluation", {"rating": "basically_satisfied"})),
        (date(2025, 7, 1), lambda: ids.update(KP1=register_key_person(services))),
        (date(2025, 7, 1), lambda: ids.update(KP2=register_key_person(
            services, name="李四", id_number="110105194912310038", phone="13900139001"))),
        (date(2025, 7, 2), lambda: (form_team(services, ids["KP1"], on="2025-07-02"), form_team(services, ids["KP2"], on="2025-07-02"))),
        (date(2025, 7, 3), lambda: (assess(services, ids["KP1"], "high", on="2025-07-03"), assess(services, ids["KP2"], "low", on="2025-07-03"))),
        (date(2025, 8, 3), lambda: _sign_off_key_person(services, _kp_case(services, ids["KP2"]["id"]))),
        (date(2025, 9, 1), lambda: ids.update(A4=register(services, received_on="2025-09-01", channel="phone", petitioners=ZHAO, **WAGES)["id"])),
        (date(2025, 9, 20), lambda: run_all(services, clock.now())),
        (date(2025, 10, 10), lambda: ids.update(A5=register(services, received_on="2025-10-10", petitioners=ZHAO, **WAGES)["id"])),
        (date(2025, 10, 12), lambda: accept(services, ids["A5"], "2025-10-12")),
        (date(2025, 11, 1), lambda: run_all(services, clock.now())),
        (date(2025, 11, 5), lambda: ids.update(H1=screening.add_hazard(
            services, actor(services, "reporter_v01"), round_of(services, "V01", "2025-11").id,
            hazard_body(services, found_on="2025-11-05"))["case_id"])),
        (date(2025, 11, 6), lambda: screening.add_hazard(
            services, actor(services, "reporter_v01"), round_of(services, "V01", "2025-11").id,
            hazard_body(services, found_on="2025-11-06", dispute_type="wages", risk_level="low"))),
        (date(2025, 11, 10), lambda: (
            report(services, actor(services, "reporter_v01"), round_of(services, "V01", "2025-11"), zero=False, on=date(2025, 11, 10)),
            sign(services, actor(services, "leader_v01"), round_of(services, "V01", "2025-11"), on=date(2025, 11, 10)),
            report(services, actor(services, "reporter_v02"), round_of(services, "V02", "2025-11"), zero=True, on=date(2025, 11, 10)),
            sign(services, actor(services, "leader_v02"), round_of(services, "V02", "2025-11"), on=date(2025, 11, 10)))),
        (date(2025, 11, 18), lambda: _close_hazard(services, ids["H1"])),
        (date(2025, 11, 20), lambda: (handle(services, ids["A5"]), reply(services, ids["A5"], "2025-11-20"))),
        (date(2026, 1, 5), lambda: run_all(services, clock.now())),
    ]  # fmt: skip
    for day, act in steps:
        at(clock, day)
        act()
    clock.set(START)
    return ids


def _kp_case(services: Services, kp_id: int) -> int:
    from engine.persistence.models import KeyPerson

    with services.uow() as uow:
        kp = uow.session.get(KeyPerson, kp_id)
        assert kp is not None
        return kp.case_id


def figures_of(services: Services, year: int, code: str = "S01", lang: str = "zh") -> Any:
    return annual_report.annual_report(
        services, actor(services, "admin"), year, unit_id(services, code), lang
    )


def test_every_figure_of_a_known_year(services: Services, clock: SettableClock) -> None:
    ids = build_2025(services, clock)
    clerk = actor(services, "clerk")
    assert petitions.get_petition(services, clerk, ids["A5"])["repeat_of_id"] == ids["A4"]
    assert petitions.get_petition(services, clerk, ids["A5"])["status"] == "not_evaluated"

    report_ = figures_of(services, 2025)
    assert (report_["from"], report_["to"], report_["complete"]) == (
        date(2025, 1, 1),
        date(2025, 12, 31),
        True,
    )
    assert report_["unit"]["code"] == "S01"
    assert [g["key"] for g in report_["groups"]][:5] == [
        "receptions",
        "petitions",
        "handling",
        "key_persons",
        "screening",
    ]
    f = annual_report.flat_figures(report_)

    def value(key: str) -> Any:
        return f[key]["value"]

    def ratio(key: str) -> tuple[int, int, str]:
        return f[key]["numerator"], f[key]["denominator"], f[key]["display"]

    # Receptions (件次) and field-visit person-times (人次), from the receptions table.
    assert [value(k) for k in ("leader_receptions", "reception_persons")] == [2, 5]
    assert [value(k) for k in ("field_visits", "field_visit_persons")] == [1, 40]
    # Petitions entered, of which assigned from above and through proxies.
    assert [value(k) for k in ("received", "assigned_from_above", "via_proxy")] == [5, 1, 2]
    channels = {i["key"]: i["value"] for i in f["by_channel"]["items"]}
    assert channels == {"visit": 2, "letter": 1, "online": 1, "phone": 1, "fax": 0}
    assert f["by_channel"]["value"] == 5
    assert {i["key"]: i["value"] for i in f["by_category"]["items"]} == {
        "suggestion": 1,
        "accusation": 1,
        "claim": 3,
    }
    assert f["by_category"]["items"][0]["label"] == "建议意见"
    # Rates with their numerators and denominators, rounded to one decimal.
    assert ratio("accepted_on_time_rate") == (4, 5, "80.0%")  # A4 missed
    assert ratio("replied_on_time_rate") == (2, 3, "66.7%")  # A2 late
    assert ratio("evaluation_rate") == (2, 3, "66.7%")  # A5's window lapsed
    assert ratio("satisfaction_rate") == (2, 2, "100.0%")  # 基本满意 counts by default
    assert f["accepted_on_time_rate"]["value"] == pytest.approx(0.8)
    assert [value(k) for k in ("repeat_petitions", "supervised", "overdue_open")] == [1, 1, 1]
    # Key persons.
    assert value("key_persons_registered") == 2
    assert [value(f"key_persons_under_control_{level}") for level in ("high", "medium", "low")] == [
        1,
        0,
        0,
    ]
    assert value("key_persons_signed_off") == 1
    assert ratio("leader_ownership_resolution_rate") == (1, 2, "50.0%")
    # Screening: every round due in 2025 counts, whether opened by the September or November tick.
    with services.uow() as uow:
        due = uow.session.scalar(
            select(func.count())
            .select_from(ScreeningRound)
            .where(ScreeningRound.due_on.between(date(2025, 1, 1), date(2025, 12, 31)))
        )
        hazards = uow.session.scalar(select(func.count()).select_from(Hazard))
    assert due is not None and due >= 28 and due % 28 == 0
    assert value("screening_rounds_due") == due
    assert value("screening_reported_on_time") == 2
    assert ratio("screening_report_timeliness") == (2, due, f"{200 / due:.1f}%")
    assert value("zero_reports") == 1
    assert value("hazards_found") == hazards == 2
    types = {i["key"]: i["value"] for i in f["hazards_by_type"]["items"]}
    assert (types["land_homestead"], types["wages"], sum(types.values())) == (1, 1, 2)
    assert value("hazards_signed_off") == 1
    assert ratio("hazard_signoff_rate") == (1, 2, "50.0%")
    assert value("hazards_overdue") == 1  # the wages hazard, time limit 12-06
    assert value("mediation_agreements") == 1

    # Every figure carries a label and a one-line definition in zh-CN and in English.
    for fig in f.values():
        assert fig["label_zh"] and fig["label_en"], fig["key"]
        assert fig["definition_zh"] and fig["definition_en"], fig["key"]
        assert "\n" not in fig["definition_zh"] + fig["definition_en"]
    english = annual_report.flat_figures(figures_of(services, 2025, lang="en"))
    assert english["received"]["label"] == "Petitions received"
    assert english["by_channel"]["items"][0]["label"] == "Visit"


def test_the_dashboard_gives_the_same_numbers_for_the_year_and_its_months(
    services: Services, clock: SettableClock
) -> None:
    build_2025(services, clock)
    f = annual_report.flat_figures(figures_of(services, 2025))
    with services.uow() as uow:
        street = uow.session.scalars(select(Unit).where(Unit.code == "S01")).one()
        year = kpi_report(uow, Period(date(2025, 1, 1), date(2025, 12, 31), street.id, street.path))
        months = [
            kpi_report(
                uow,
                Period(
                    date(2025, m, 1),
                    date(2025 + m // 12, m % 12 + 1, 1).replace(day=1) - (date(2025, 1, 2) - date(2025, 1, 1)),
                    street.id,
                    street.path,
                ),
            )["kpis"]
            for m in range(1, 13)
        ]  # fmt: skip
    for key, kpi in year["kpis"].items():
        assert (kpi["numerator"], kpi["denominator"], kpi["value"]) == (
            f[key]["numerator"],
            f[key]["denominator"],
            f[key]["value"],
        ), key
    # Counts of events in the period add up month by month.
    for key in ("received", "assigned_from_above", "via_proxy", "leader_receptions",
                "field_visit_persons", "hazards_found", "mediation_agreements", "supervised"):  # fmt: skip
        assert sum(m[key]["value"] for m in months) == f[key]["value"], key
    numerators = sum(m["replied_on_time_rate"]["numerator"] for m in months)
    denominators = sum(m["replied_on_time_rate"]["denominator"] for m in months)
    assert (numerators, denominators) == (2, 3)


def test_a_unit_without_data_shows_no_value_rather_than_100_percent(services: Services) -> None:
    f = annual_report.flat_figures(figures_of(services, 2025, "V05"))
    for key in (
        "accepted_on_time_rate",
        "replied_on_time_rate",
        "evaluation_rate",
        "satisfaction_rate",
        "leader_ownership_resolution_rate",
        "hazard_signoff_rate",
    ):
        assert (f[key]["numerator"], f[key]["denominator"]) == (0, 0), key
        assert f[key]["value"] is None and f[key]["display"] == "—", key
    assert f["received"]["display"] == "0"


def test_a_village_sees_its_own_subtree_only(services: Services, clock: SettableClock) -> None:
    build_2025(services, clock)
    v01 = annual_report.flat_figures(figures_of(services, 2025, "V01"))
    # A1, A2 and A5 were handled by 东风村 (V01); A3 and A4 never reached a village.
    assert v01["received"]["value"] == 3
    assert v01["leader_receptions"]["value"] == 0  # receptions are held by the street
    assert v01["hazards_found"]["value"] == 2
    v02 = annual_report.flat_figures(figures_of(services, 2025, "V02"))
    assert (v02["hazards_found"]["value"], v02["zero_reports"]["value"]) == (0, 1)


def test_the_current_year_runs_to_today_and_bad_years_are_refused(services: Services) -> None:
    current = figures_of(services, 2026)
    assert (current["to"], current["complete"]) == (date(2026, 3, 2), False)
    with pytest.raises(ValidationError):
        figures_of(services, 2027)
    with pytest.raises(ValidationError):
        figures_of(services, 1999)
    # A village head cannot ask for the street's figures.
    with pytest.raises(NotFoundError):
        annual_report.annual_report(
            services, actor(services, "leader_v01"), 2025, unit_id(services, "S01")
        )
