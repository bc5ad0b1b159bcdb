"""The key-person KPI section: registered, under control by risk level, signed off, 包案化解率."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from engine.bootstrap import Services
from engine.domain.kpi import Ratio
from engine.persistence.models import Unit
from engine.services.reports import SECTIONS, Period, kpi_report
from engine.services.stabilization import kpi_section
from tests.service.test_stabilization_support import complete, open_task, under_control


def street_period(services: Services, date_from: date, date_to: date) -> Period:
    with services.uow() as uow:
        street = uow.session.scalars(select(Unit).where(Unit.code == "S01")).one()
        return Period(date_from, date_to, street.id, street.path)


def sign_off(services: Services, case_id: int) -> None:
    complete(
        services,
        "handler_sfs",
        open_task(services, case_id, "propose_closure"),
        {
            "evidence_kind": "commitment",
            "evidence_ref": "息访承诺书",
            "return_visit_on": "2026-03-02",
            "resolution_summary": "签署承诺书",
        },
    )
    complete(
        services,
        "leader",
        open_task(services, case_id, "approve_closure"),
        {"approve_decision": "approve", "approved_on": "2026-03-02"},
    )
    complete(
        services,
        "clerk",
        open_task(services, case_id, "verify_closure"),
        {"verify_decision": "approve", "verified_on": "2026-03-02"},
    )


def test_key_person_figures_for_a_period(services: Services) -> None:
    under_control(services, "high")
    low = under_control(
        services, "low", name="李四", id_number="110105194912310038", phone="13900139000"
    )
    under_control(
        services, "medium", name="王五", id_number="330681198001011232", phone="13700137000"
    )
    sign_off(services, low["case_id"])
    in_march = street_period(services, date(2026, 3, 1), date(2026, 3, 31))
    in_february = street_period(services, date(2026, 2, 1), date(2026, 2, 28))
    with services.uow() as uow:
        march = kpi_section(uow, in_march)
        february = kpi_section(uow, in_february)
        report = kpi_report(uow, in_march)
    assert march == {
        "key_persons_registered": 3,
        "key_persons_under_control_high": 1,
        "key_persons_under_control_medium": 1,
        "key_persons_under_control_low": 0,
        "key_persons_signed_off": 1,
        "leader_ownership_resolution_rate": Ratio(1, 3),
    }
    assert february["key_persons_registered"] == 0
    assert february["leader_ownership_resolution_rate"] == Ratio(0, 0)
    assert any(name == "key_persons" for name, _fn in SECTIONS)
    assert report["kpis"]["leader_ownership_resolution_rate"]["display"] == Ratio(1, 3).percent()
    assert report["kpis"]["leader_ownership_resolution_rate"]["label"] == "包案化解率"
