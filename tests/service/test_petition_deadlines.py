"""Statutory petition deadlines over the 2026 holiday schedule (DOMAIN.md §2, issue 3)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.bootstrap import Services
from engine.clock import SettableClock
from engine.services.petitions import get_petition
from tests.service.petition_support import accept, actor, at, deadlines, register


@pytest.mark.parametrize(
    ("received", "acceptance_due", "reason"),
    [
        # 09-16 + 15 days = 10-01, National Day: rolls past 10-01..10-07 to Thursday 10-08.
        (date(2026, 9, 16), date(2026, 10, 8), "National Day"),
        # 01-31 + 15 = 02-15 (Sunday before Spring Festival 02-16..02-23): rolls to 02-24.
        (date(2026, 1, 31), date(2026, 2, 24), "Spring Festival"),
        # An ordinary working day stays where it falls.
        (date(2026, 3, 2), date(2026, 3, 17), "ordinary"),
    ],
)
def test_acceptance_notice_rolls_over_2026_holidays(
    services: Services, clock: SettableClock, received: date, acceptance_due: date, reason: str
) -> None:
    at(clock, received)
    view = register(services, received_on=received.isoformat())
    due = deadlines(view)["acceptance_notice"]
    assert due["due_on"] == acceptance_due, reason
    assert due["state"] == "pending"
    assert due["calendar_unverified"] is False
    assert due["source"] == "信访工作条例 Art. 23"
    assert view["open_tasks"][0]["bpmn_id"] == "decide_acceptance"
    assert view["open_tasks"][0]["due_at"].date() == acceptance_due


def test_reply_due_60_days_from_acceptance_rolls_past_national_day(
    services: Services, clock: SettableClock
) -> None:
    at(clock, date(2026, 8, 2))
    view = register(services, received_on="2026-08-01")
    accept(services, view["id"], "2026-08-02")  # 08-02 + 60 = 10-01, a holiday
    after = get_petition(services, actor(services, "clerk"), view["id"])
    assert deadlines(after)["reply"]["due_on"] == date(2026, 10, 8)
    assert deadlines(after)["acceptance_notice"]["state"] == "met"
    assert [t["bpmn_id"] for t in after["open_tasks"]] == ["handle"]
    assert after["open_tasks"][0]["due_at"].date() == date(2026, 10, 8)


@pytest.mark.parametrize(
    ("received", "remit_due", "without_adjustment"),
    [
        # Mon 02-09: Tue..Fri are 4 working days; Saturday 02-14 is an adjusted working day (5th).
        (date(2026, 2, 9), date(2026, 2, 14), date(2026, 2, 24)),
        # Tue 09-15: 16, 17, 18, then Sunday 09-20 (adjusted working day) and Monday 09-21.
        (date(2026, 9, 15), date(2026, 9, 21), date(2026, 9, 22)),
    ],
)
def test_remit_objection_counts_an_adjusted_working_weekend(
    services: Services,
    clock: SettableClock,
    received: date,
    remit_due: date,
    without_adjustment: date,
) -> None:
    at(clock, received)
    view = register(services, received_on=received.isoformat())
    due = deadlines(view)["remit_objection"]
    assert due["due_on"] == remit_due != without_adjustment
    assert due["source"] == "信访工作条例 Art. 23"


def test_deadline_in_a_year_without_calendar_data_is_marked_unverified_until_loaded(
    services: Services, clock: SettableClock, tmp_path: Path
) -> None:
    at(clock, date(2027, 1, 4))
    before = register(services, received_on="2026-12-28")
    due = deadlines(before)["acceptance_notice"]
    assert due["due_on"] == date(2027, 1, 12)
    assert due["calendar_unverified"] is True

    schedule = {
        "year": 2027,
        "holidays": [{"from": "2027-01-01", "to": "2027-01-03", "name": "元旦"}],
        "workdays": [],
    }
    file = tmp_path / "holidays-2027.json"
    file.write_text(json.dumps(schedule), encoding="utf-8")
    from web.cli import main

    result = CliRunner().invoke(
        main,
        ["calendar", "import", str(file)],
        env={
            "FENGQIAO_DATABASE_URL": services.settings.database_url,
            "FENGQIAO_INSTANCE_DIR": services.settings.instance_dir,
        },
    )
    assert result.exit_code == 0, result.output
    assert "loaded 2027: 3 holidays" in result.output

    after = register(services, received_on="2026-12-28", subject="另一事项：村口路灯损坏")
    assert deadlines(after)["acceptance_notice"]["calendar_unverified"] is False


def test_calendar_import_refuses_a_malformed_file(services: Services, tmp_path: Path) -> None:
    from web.cli import main

    file = tmp_path / "bad.json"
    file.write_text('{"year": 2027, "holidays": ["2027-13-01"]}', encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["calendar", "import", str(file)],
        env={
            "FENGQIAO_DATABASE_URL": services.settings.database_url,
            "FENGQIAO_INSTANCE_DIR": services.settings.instance_dir,
        },
    )
    assert result.exit_code != 0
    assert "2027-13-01" in result.output


def test_assigned_petition_carries_the_districts_due_date(
    services: Services, clock: SettableClock
) -> None:
    at(clock, date(2026, 3, 2))
    view = register(
        services,
        source="assigned",
        assigned_ref="区信交〔2026〕3号",
        assigned_due_on="2026-03-20",
    )
    due = deadlines(view)["assigned"]
    assert due["due_on"] == date(2026, 3, 20)
    assert due["source"].startswith("上级交办")
