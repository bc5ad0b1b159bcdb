"""Every figure of the KPI report carries a label and a definition (DOMAIN.md §3)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from engine.bootstrap import Services
from engine.domain.kpi import KPI_DEFINITIONS
from engine.persistence.models import Unit
from engine.services import reports
from engine.services.case_type_data import kpi_labels


def _figure_keys(services: Services) -> set[str]:
    """What every registered section answers for the street, computed directly."""
    with services.uow() as uow:
        street = uow.session.query(Unit).filter(Unit.code == "S01").one()
        period = reports.Period(date(2026, 1, 1), date(2026, 12, 31), street.id, street.path)
        return {key for _name, section in reports.SECTIONS for key in section(uow, period)}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_kpi_figure_has_a_label(
    client: Any, auth: Any, services: Services, lang: str
) -> None:
    resp = client.get(
        f"/api/v1/reports/kpi?from=2026-01-01&to=2026-12-31&lang={lang}",
        headers=auth("supervisor"),
    )
    assert resp.status_code == 200, resp.get_json()
    kpis = resp.get_json()["kpis"]
    sections = {name for name, _section in reports.SECTIONS}
    assert {"petitions", "screening", "key_persons", "case_types_data"} <= sections
    assert set(kpis) == _figure_keys(services)
    unlabelled = sorted(k for k, figure in kpis.items() if not figure.get("label"))
    assert unlabelled == [], unlabelled
    with services.uow() as uow:
        declared = kpi_labels(uow)
    # The data-declared KPIs of the shipped case types use their own labels.
    assert {"council_proposals", "ogi_requests", "rectification_notices"} <= set(declared)
    for key, figure in kpis.items():
        definition = KPI_DEFINITIONS.get(key) or reports.SECTION_DEFINITIONS.get(key)
        if definition is not None:
            expected = definition.label_en if lang == "en" else definition.label_zh
            assert figure["label"] == expected, key
            assert figure["definition_zh"] and figure["definition_en"], key
        else:
            assert figure["label"] == declared[key][lang], key
    # The screening section's counts are DOMAIN.md §3 figures with their own definitions.
    assert {"zero_reports", "hazards_found"} <= set(KPI_DEFINITIONS)
    assert kpis["zero_reports"]["label"] == ("Zero reports" if lang == "en" else "零报告")
    assert kpis["hazards_found"]["label"] == ("Hazards found" if lang == "en" else "排查发现隐患")
    council = declared["council_proposals"][lang]
    assert kpis["council_proposals"]["label"] == council
    assert council == ("Council proposals received" if lang == "en" else "居民议事代表建议件数")
