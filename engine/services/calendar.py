"""The working-day calendar: chinesecalendar plus the schedules and overrides admins load."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, null, select, union_all

from engine.domain.calendar import (
    HolidaySchedule,
    ScheduleError,
    WorkingCalendar,
    parse_holiday_schedule,
)
from engine.errors import ValidationError
from engine.persistence.db import UnitOfWork
from engine.persistence.models import CalendarDay, CalendarYear
from engine.services.access import Actor, require_admin
from engine.services.audit import record_event

_CALENDAR_KEY = "fengqiao.calendar"

# The overrides and the loaded years in one read (rows of the other table are NULL).
_CALENDAR_ROWS = union_all(
    select(
        cast(Table, CalendarDay.__table__).c.day,
        cast(Table, CalendarDay.__table__).c.is_working,
        null().label("year"),
    ),
    select(null(), null(), cast(Table, CalendarYear.__table__).c.year),
)


def load_calendar(uow: UnitOfWork) -> WorkingCalendar:
    """The calendar with every admin override and loaded year.

    Read once per transaction: a completion that computes several deadlines reads it once."""
    return uow.memo(_CALENDAR_KEY, lambda: _read_calendar(uow))


def _read_calendar(uow: UnitOfWork) -> WorkingCalendar:
    overrides = {}
    years = []
    for day, working, year in uow.session.connection().execute(_CALENDAR_ROWS):
        if year is None:
            overrides[day] = bool(working)
        else:
            years.append(int(year))
    return WorkingCalendar(overrides, extra_years=years)


def import_schedule(
    uow: UnitOfWork, actor: Actor, text: str, *, source: str, now: datetime
) -> dict[str, Any]:
    """Load a year's official holiday schedule (JSON); it replaces that year's earlier overrides."""
    require_admin(actor)
    uow.forget(_CALENDAR_KEY)
    try:
        schedule: HolidaySchedule = parse_holiday_schedule(text)
    except ScheduleError as exc:
        raise ValidationError(str(exc), {"file": [str(exc)]}) from exc
    for old in list(uow.session.scalars(select(CalendarDay))):
        if old.day.year == schedule.year:
            uow.session.delete(old)
    uow.session.flush()
    for day, working in sorted(schedule.overrides.items()):
        uow.session.add(CalendarDay(day=day, is_working=working, note=schedule.names.get(day, "")))
    year = uow.session.get(CalendarYear, schedule.year)
    if year is None:
        uow.session.add(CalendarYear(year=schedule.year, loaded_at=now, source=source[:255]))
    else:
        year.loaded_at, year.source = now, source[:255]
    record_event(
        uow,
        "calendar.imported",
        actor_id=actor.user_id,
        at=now,
        detail={"year": schedule.year, "days": len(schedule.overrides), "source": source},
    )
    return {
        "year": schedule.year,
        "holidays": len(schedule.holidays),
        "workdays": len(schedule.workdays),
    }
