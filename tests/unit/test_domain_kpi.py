"""KPI ratios and definitions (DOMAIN.md §3)."""

from __future__ import annotations

import pytest

from engine.domain.enums import Rating
from engine.domain.kpi import KPI_DEFINITIONS, Ratio, satisfaction_ratio, satisfied_count


def test_ratio_with_zero_denominator_has_no_value_not_100_percent() -> None:
    empty = Ratio(0, 0)
    assert empty.value is None
    assert empty.percent() == "—"
    assert empty.as_dict() == {"numerator": 0, "denominator": 0, "value": None}


def test_ratio_formats_percent() -> None:
    assert Ratio(39, 40).percent() == "97.5%"
    assert Ratio(1, 3).percent(2) == "33.33%"
    assert Ratio(138, 138).percent() == "100.0%"
    assert Ratio(39, 40).as_dict() == {"numerator": 39, "denominator": 40, "value": 0.975}


def test_ratios_of_sub_units_add_counts_not_rates() -> None:
    assert Ratio(1, 1) + Ratio(0, 3) == Ratio(1, 4)
    assert (Ratio(0, 0) + Ratio(0, 0)).value is None


def test_impossible_ratios_are_refused() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        Ratio(5, 4)
    with pytest.raises(ValueError, match="negative"):
        Ratio(-1, 4)


def test_basically_satisfied_counts_only_when_configured() -> None:
    ratings = {Rating.satisfied: 7, Rating.basically_satisfied: 2, Rating.dissatisfied: 1}
    assert satisfied_count(ratings, basic_counts_as_satisfied=True) == 9
    assert satisfied_count(ratings, basic_counts_as_satisfied=False) == 7
    assert satisfaction_ratio(ratings, basic_counts_as_satisfied=True) == Ratio(9, 10)
    assert satisfaction_ratio({}, basic_counts_as_satisfied=True).percent() == "—"


def test_every_kpi_has_one_line_definitions_in_both_languages() -> None:
    expected = {
        "received",
        "accepted_on_time_rate",
        "replied_on_time_rate",
        "evaluation_rate",
        "satisfaction_rate",
        "repeat_petitions",
        "supervised",
        "overdue_open",
        "screening_report_timeliness",
        "zero_reports",
        "hazards_found",
        "hazard_signoff_rate",
        "hazards_overdue",
        "leader_ownership_resolution_rate",
        "key_persons_registered",
        "key_persons_under_control_high",
        "key_persons_under_control_medium",
        "key_persons_under_control_low",
        "key_persons_signed_off",
    }
    assert set(KPI_DEFINITIONS) == expected
    for definition in KPI_DEFINITIONS.values():
        assert all(part and "\n" not in part for part in definition)
    assert KPI_DEFINITIONS["satisfaction_rate"].label_zh == "满意率"
