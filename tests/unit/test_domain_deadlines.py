"""Deadline rules (信访工作条例, 政府信息公开条例, 人民调解法) applied to real 2026 dates."""

from __future__ import annotations

from datetime import date

import pytest

from engine.domain.calendar import DueDate, WorkingCalendar
from engine.domain.deadlines import (
    ALL_RULES,
    MAX_EXTENSION_DAYS,
    MAX_EXTENSIONS,
    PETITION_RULES,
    RuleViolation,
    check_business_date,
    compute_due,
    deadline_state,
    decision_due,
    evaluation_window_end,
    extend,
    get_rule,
    hazard_rule,
    request_window_end,
    warning_level,
)
from engine.domain.enums import DeadlineState, ReviewLevel, RiskLevel, WarningLevel

CAL = WorkingCalendar()


def test_every_rule_names_its_source_and_labels() -> None:
    for kind, rule in ALL_RULES.items():
        assert rule.kind == kind
        assert all((rule.source, rule.label_zh, rule.label_en, rule.counted_from))


def test_petition_rule_table_matches_the_regulation() -> None:
    expected = {
        "acceptance_notice": (15, "days", "received_on", "Art. 23"),
        "remit_objection": (5, "working_days", "received_on", "Art. 23"),
        "reply": (60, "days", "decided_on", "Art. 34"),
        "review_request_window": (30, "days", "delivered_on", "Art. 35"),
        "review_decision": (30, "days", "requested_on", "Art. 35"),
        "re_review_request_window": (30, "days", "delivered_on", "Art. 36"),
        "re_review_decision": (30, "days", "requested_on", "Art. 36"),
        "evaluation_window": (15, "days", "delivered_on", "setting"),
    }
    for kind, (length, unit, counted_from, source) in expected.items():
        rule = PETITION_RULES[kind]
        assert (rule.length, rule.unit, rule.counted_from) == (length, unit, counted_from)
        assert source in rule.source
    assert MAX_EXTENSION_DAYS == 30
    assert MAX_EXTENSIONS == 1


def test_acceptance_notice_due_in_national_day_rolls_to_october_8() -> None:
    due = compute_due(PETITION_RULES["acceptance_notice"], date(2026, 9, 20), CAL)
    assert due == DueDate(date(2026, 10, 8), False)


def test_remit_objection_counts_five_working_days_over_the_holiday() -> None:
    due = compute_due(PETITION_RULES["remit_objection"], date(2026, 9, 29), CAL)
    assert due.due_on == date(2026, 10, 12)


def test_reply_due_60_days_after_acceptance_rolls_past_spring_festival() -> None:
    assert compute_due(PETITION_RULES["reply"], date(2025, 12, 20), CAL).due_on == date(2026, 2, 24)


def test_ogi_reply_counts_20_working_days() -> None:
    # From Mon 09-28: 09-29, 09-30, then 10-08, 10-09, Sat 10-10 (调休), 10-12 ... 10-30.
    assert compute_due(get_rule("ogi_reply"), date(2026, 9, 28), CAL).due_on == date(2026, 10, 30)


def test_ogi_correction_within_7_working_days() -> None:
    assert compute_due(get_rule("ogi_correction"), date(2026, 3, 2), CAL).due_on == date(
        2026, 3, 11
    )


def test_judicial_confirmation_window_is_30_days() -> None:
    rule = get_rule("judicial_confirmation")
    assert "人民调解法 Art. 33" in rule.source
    assert compute_due(rule, date(2026, 3, 2), CAL).due_on == date(2026, 4, 1)


def test_hazard_time_limits_follow_risk_level_and_can_be_overridden() -> None:
    found = date(2026, 3, 2)
    assert compute_due(hazard_rule(RiskLevel.high), found, CAL).due_on == date(2026, 3, 9)
    assert compute_due(hazard_rule(RiskLevel.medium), found, CAL).due_on == date(2026, 3, 17)
    assert compute_due(hazard_rule(RiskLevel.low), found, CAL).due_on == date(2026, 4, 1)
    overridden = compute_due(hazard_rule(RiskLevel.high), found, CAL, length_override=3)
    assert overridden.due_on == date(2026, 3, 5)


def test_assigned_deadline_is_given_not_computed() -> None:
    with pytest.raises(RuleViolation) as err:
        compute_due(PETITION_RULES["assigned"], date(2026, 3, 2), CAL)
    assert err.value.field == "due_on"
    assert compute_due(PETITION_RULES["assigned"], date(2026, 3, 2), CAL, length_override=10)


def test_hearing_time_is_not_counted_in_re_review_decision() -> None:
    # 2026-03-02 + 30 + 10 hearing days = Sat 04-11 -> Mon 04-13.
    due = decision_due(date(2026, 3, 2), CAL, ReviewLevel.re_review, paused_days=10)
    assert due.due_on == date(2026, 4, 13)
    assert decision_due(date(2026, 3, 2), CAL).due_on == date(2026, 4, 1)


def test_extension_of_30_days_counts_from_the_original_due_date() -> None:
    assert extend(date(2026, 3, 2), 30, CAL) == DueDate(date(2026, 4, 1), False)
    # Original due 09-05 + 30 = 10-05 (National Day) -> 10-08.
    assert extend(date(2026, 9, 5), 30, CAL).due_on == date(2026, 10, 8)


@pytest.mark.parametrize("days", [31, 0, -1])
def test_extension_outside_1_to_30_days_is_rejected(days: int) -> None:
    with pytest.raises(RuleViolation) as err:
        extend(date(2026, 3, 2), days, CAL)
    assert err.value.field == "days"
    assert "Art. 34" in err.value.message_en
    assert "第三十四条" in err.value.message_zh


def test_second_extension_is_rejected() -> None:
    with pytest.raises(RuleViolation) as err:
        extend(date(2026, 3, 2), 10, CAL, previous_extensions=1)
    assert err.value.field == "extension"
    assert err.value.message("zh") == err.value.message_zh
    assert isinstance(err.value, ValueError)


def test_review_request_window_ends_30_days_after_delivery() -> None:
    assert request_window_end(date(2026, 3, 2), CAL).due_on == date(2026, 4, 1)
    # Delivered 09-02 + 30 = 10-02 (National Day) -> 10-08.
    re_review = request_window_end(date(2026, 9, 2), CAL, ReviewLevel.re_review)
    assert re_review.due_on == date(2026, 10, 8)


def test_evaluation_window_uses_the_configured_length() -> None:
    assert evaluation_window_end(date(2026, 3, 2), CAL).due_on == date(2026, 3, 17)
    assert evaluation_window_end(date(2026, 3, 2), CAL, days=10).due_on == date(2026, 3, 12)


def test_deadline_state_met_missed_pending() -> None:
    due = date(2026, 3, 10)
    assert deadline_state(due, date(2026, 3, 10), date(2026, 3, 20)) is DeadlineState.met
    assert deadline_state(due, date(2026, 3, 11), date(2026, 3, 20)) is DeadlineState.missed
    assert deadline_state(due, None, date(2026, 3, 10)) is DeadlineState.pending
    assert deadline_state(due, None, date(2026, 3, 11)) is DeadlineState.missed


def test_warning_cards_yellow_before_due_red_after() -> None:
    due = date(2026, 3, 10)
    assert warning_level(due, date(2026, 3, 6), 3) is None
    assert warning_level(due, date(2026, 3, 7), 3) is WarningLevel.yellow
    assert warning_level(due, date(2026, 3, 10), 3) is WarningLevel.yellow
    assert warning_level(due, date(2026, 3, 11), 3) is WarningLevel.red


def test_business_date_in_the_future_is_refused() -> None:
    with pytest.raises(RuleViolation) as err:
        check_business_date(
            date(2026, 5, 2), today=date(2026, 5, 1), not_before=None, field="received_on"
        )
    assert err.value.field == "received_on"
    assert "future" in err.value.message_en
    assert "将来" in err.value.message_zh


def test_business_date_before_previous_step_is_refused() -> None:
    with pytest.raises(RuleViolation) as err:
        check_business_date(
            date(2026, 4, 1),
            today=date(2026, 5, 1),
            not_before=date(2026, 4, 2),
            field="decided_on",
        )
    assert err.value.field == "decided_on"
    assert "previous step" in err.value.message_en
    assert "上一环节" in err.value.message_zh


def test_business_date_on_the_same_day_as_previous_step_and_today_is_accepted() -> None:
    check_business_date(
        date(2026, 5, 1), today=date(2026, 5, 1), not_before=date(2026, 5, 1), field="x"
    )
