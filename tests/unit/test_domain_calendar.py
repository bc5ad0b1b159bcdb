"""Working-day calendar: State Council schedule, 民法典 Art. 201/203 counting, loaded years."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import chinese_calendar
import pytest

from engine.domain.calendar import (
    DueDate,
    ScheduleError,
    WorkingCalendar,
    library_years,
    parse_holiday_schedule,
)

EXAMPLE_2027 = Path(__file__).resolve().parents[2] / "engine/domain/data/holidays-2027.example.json"


@pytest.fixture
def cal() -> WorkingCalendar:
    return WorkingCalendar()


def test_library_facts_these_tests_rely_on() -> None:
    # Guard: the dates below come from chinesecalendar 1.11.0, not from memory.
    assert not chinese_calendar.is_workday(date(2026, 10, 7))
    assert chinese_calendar.is_workday(date(2026, 10, 8))
    assert chinese_calendar.is_workday(date(2026, 10, 10))  # Saturday, adjusted working day
    assert chinese_calendar.is_workday(date(2026, 9, 20))  # Sunday, adjusted working day
    assert chinese_calendar.is_workday(date(2026, 2, 14))  # Saturday, adjusted working day
    assert not chinese_calendar.is_workday(date(2026, 2, 15))
    assert not chinese_calendar.is_workday(date(2026, 2, 23))
    assert chinese_calendar.is_workday(date(2026, 2, 24))
    assert 2026 in library_years()
    assert 2027 not in library_years()


def test_adjusted_working_weekends_count_as_working_days(cal: WorkingCalendar) -> None:
    assert cal.is_working_day(date(2026, 9, 20))  # Sunday 调休
    assert cal.is_working_day(date(2026, 10, 10))  # Saturday 调休
    assert cal.is_working_day(date(2026, 2, 14))  # Saturday 调休
    assert not cal.is_working_day(date(2026, 10, 1))
    assert not cal.is_working_day(date(2026, 10, 11))  # plain Sunday


def test_15_day_deadline_ending_in_national_day_rolls_to_first_working_day(
    cal: WorkingCalendar,
) -> None:
    # 2026-09-17 + 15 days = 2026-10-02, inside the 10-01..10-07 break -> Thursday 10-08.
    assert cal.add_calendar_days(date(2026, 9, 17), 15) == DueDate(date(2026, 10, 8), False)
    # Last day of the break itself.
    assert cal.add_calendar_days(date(2026, 9, 22), 15).due_on == date(2026, 10, 8)


def test_deadline_ending_on_adjusted_working_saturday_does_not_roll(cal: WorkingCalendar) -> None:
    # 2026-09-25 + 15 = 2026-10-10, a Saturday that is a working day.
    assert cal.add_calendar_days(date(2026, 9, 25), 15).due_on == date(2026, 10, 10)


def test_deadline_ending_on_plain_weekend_rolls_to_monday(cal: WorkingCalendar) -> None:
    # 2026-09-26 + 15 = Sunday 2026-10-11 -> Monday 10-12.
    assert cal.add_calendar_days(date(2026, 9, 26), 15).due_on == date(2026, 10, 12)


def test_working_day_deadline_counts_adjusted_working_days(cal: WorkingCalendar) -> None:
    # From Thursday 10-08: Friday 10-09 is day 1, Saturday 10-10 (调休) is day 2.
    assert cal.add_working_days(date(2026, 10, 8), 2).due_on == date(2026, 10, 10)
    # From Friday 09-18: Saturday 09-19 rests, Sunday 09-20 (调休) is day 1.
    assert cal.add_working_days(date(2026, 9, 18), 1).due_on == date(2026, 9, 20)


def test_15_day_deadline_ending_in_spring_festival_rolls_past_it(cal: WorkingCalendar) -> None:
    # 2026-02-01 + 15 = 2026-02-16, inside the 02-15..02-23 break -> Tuesday 02-24.
    assert cal.add_calendar_days(date(2026, 2, 1), 15) == DueDate(date(2026, 2, 24), False)


def test_60_day_reply_ending_in_spring_festival_rolls_past_it(cal: WorkingCalendar) -> None:
    # 2025-12-20 + 60 = 2026-02-18 (Spring Festival) -> 2026-02-24.
    assert cal.add_calendar_days(date(2025, 12, 20), 60).due_on == date(2026, 2, 24)


def test_five_working_days_across_spring_festival(cal: WorkingCalendar) -> None:
    # Thu 02-12 start: Fri 02-13 (1), Sat 02-14 调休 (2), break, 02-24 (3), 02-25 (4), 02-26 (5).
    assert cal.add_working_days(date(2026, 2, 12), 5).due_on == date(2026, 2, 26)


def test_five_working_days_across_a_weekend(cal: WorkingCalendar) -> None:
    # Thu 2026-03-05: Fri 03-06, Mon 03-09, Tue, Wed, Thu 03-12.
    assert cal.add_working_days(date(2026, 3, 5), 5) == DueDate(date(2026, 3, 12), False)


def test_five_working_days_across_national_day(cal: WorkingCalendar) -> None:
    # Tue 09-29: 09-30 (1), break, 10-08 (2), 10-09 (3), Sat 10-10 调休 (4), Sun rests, 10-12 (5).
    assert cal.add_working_days(date(2026, 9, 29), 5).due_on == date(2026, 10, 12)


def test_start_day_is_not_counted(cal: WorkingCalendar) -> None:
    assert cal.add_calendar_days(date(2026, 3, 2), 1).due_on == date(2026, 3, 3)
    assert cal.add_working_days(date(2026, 3, 2), 1).due_on == date(2026, 3, 3)


def test_next_working_day_skips_holidays_and_is_strictly_after(cal: WorkingCalendar) -> None:
    assert cal.next_working_day(date(2026, 9, 30)) == date(2026, 10, 8)
    assert cal.next_working_day(date(2026, 3, 2)) == date(2026, 3, 3)


def test_date_in_year_without_data_is_flagged_unverified(cal: WorkingCalendar) -> None:
    assert cal.is_verified(date(2026, 12, 31))
    assert not cal.is_verified(date(2027, 1, 4))
    # Unverified year: weekdays work, weekends rest (so 2027-01-01, a Friday, "works").
    assert cal.is_working_day(date(2027, 1, 1))
    assert cal.add_working_days(date(2026, 12, 28), 5) == DueDate(date(2027, 1, 4), True)
    assert cal.add_calendar_days(date(2026, 12, 20), 15) == DueDate(date(2027, 1, 4), True)


def test_loading_a_2027_schedule_verifies_the_year_and_applies_it(cal: WorkingCalendar) -> None:
    schedule = parse_holiday_schedule(EXAMPLE_2027.read_text(encoding="utf-8"))
    loaded = cal.with_schedule(schedule)
    assert loaded.is_verified(date(2027, 1, 4))
    assert not loaded.is_working_day(date(2027, 1, 1))
    assert loaded.is_working_day(date(2027, 2, 14))  # Sunday listed as workday
    # 12-29 (1), 12-30 (2), 12-31 (3), New Year 01-01..03 rests, 01-04 (4), 01-05 (5).
    assert loaded.add_working_days(date(2026, 12, 28), 5) == DueDate(date(2027, 1, 5), False)
    # The original calendar is unchanged.
    assert not cal.is_verified(date(2027, 1, 4))


def test_constructor_overrides_and_extra_years() -> None:
    cal = WorkingCalendar({date(2027, 1, 1): False}, extra_years=[2027])
    assert cal.is_verified(date(2027, 6, 1))
    assert not cal.is_working_day(date(2027, 1, 1))
    assert cal.add_calendar_days(date(2026, 12, 31), 1) == DueDate(date(2027, 1, 4), False)


def test_admin_override_wins_over_library_data() -> None:
    cal = WorkingCalendar({date(2026, 3, 3): False})
    assert not cal.is_working_day(date(2026, 3, 3))
    assert cal.add_calendar_days(date(2026, 3, 2), 1).due_on == date(2026, 3, 4)


def test_negative_counts_are_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="negative"):
        cal.add_working_days(date(2026, 3, 2), -1)
    with pytest.raises(ValueError, match="negative"):
        cal.add_calendar_days(date(2026, 3, 2), -1)


def test_working_days_between_counts_after_start_through_end(cal: WorkingCalendar) -> None:
    assert cal.working_days_between(date(2026, 9, 29), date(2026, 10, 12)) == 5
    assert cal.working_days_between(date(2026, 10, 12), date(2026, 10, 1)) == 0


def test_example_schedule_is_marked_as_example_and_parses() -> None:
    raw = json.loads(EXAMPLE_2027.read_text(encoding="utf-8"))
    assert "EXAMPLE ONLY" in raw["note"]
    schedule = parse_holiday_schedule(json.dumps(raw))
    assert schedule.year == 2027
    assert date(2027, 10, 7) in schedule.holidays
    assert schedule.names[date(2027, 2, 5)] == "春节"
    assert all(d.weekday() >= 5 for d in schedule.workdays)


def _schedule(**fields: object) -> str:
    base: dict[str, object] = {"year": 2027, "holidays": ["2027-01-01"], "workdays": []}
    base.update(fields)
    return json.dumps(base)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "JSON object"),
        (_schedule(year="2027"), "year"),
        (_schedule(holidays=["2026-12-31"]), "outside the schedule year 2027"),
        (_schedule(holidays=["2027-02-30"]), "not a valid date"),
        (_schedule(holidays=[{"from": "2027-02-12", "to": "2027-02-06"}]), "is after"),
        (_schedule(holidays=[{"from": "2027-02-06"}]), "needs both"),
        (_schedule(holidays=["2027-01-01", "2027-01-01"]), "more than once"),
        (_schedule(workdays=["2027-01-01"]), "already listed as a holiday"),
        (_schedule(workdays=["2027-02-15"]), "is a weekday"),
        (_schedule(holidays=[]), "non-empty list"),
        (_schedule(extra=1), "unknown keys"),
        (_schedule(holidays=[{"from": "2027-01-01", "to": "2027-01-02", "when": 1}]), "unknown"),
    ],
)
def test_malformed_schedule_is_refused_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_holiday_schedule(text)
