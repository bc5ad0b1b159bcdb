"""Working-day calendar: the State Council holiday schedule plus admin overrides (DOMAIN.md §2).

Data comes from the ``chinesecalendar`` package (which carries the published schedules up to
its release year) and from schedules an admin loads for later years (published each
November/December). A date in a year neither source covers is "unverified": the calendar
still answers (weekdays work, weekends rest) but every result says so, never guessing silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import chinese_calendar

__all__ = [
    "DueDate",
    "HolidaySchedule",
    "ScheduleError",
    "WorkingCalendar",
    "library_years",
    "parse_holiday_schedule",
]


def _library_years() -> frozenset[int]:
    """Years for which the installed chinesecalendar has a published schedule."""
    holidays: Mapping[date, Any] = chinese_calendar.holidays
    workdays: Mapping[date, Any] = chinese_calendar.workdays
    return frozenset(d.year for d in holidays) | frozenset(d.year for d in workdays)


_LIBRARY_YEARS = _library_years()


def library_years() -> frozenset[int]:
    """Return the years covered by the installed chinesecalendar package."""
    return _LIBRARY_YEARS


@dataclass(frozen=True)
class DueDate:
    """A computed deadline; ``calendar_unverified`` is True if any day consulted lacked data."""

    due_on: date
    calendar_unverified: bool = False


class WorkingCalendar:
    """Working days per the State Council schedule, with admin overrides and loaded years."""

    def __init__(
        self,
        overrides: Mapping[date, bool] | None = None,
        extra_years: Iterable[int] = (),
    ) -> None:
        """Build a calendar; ``overrides`` maps a date to is-working-day and win over all else."""
        self._overrides: dict[date, bool] = dict(overrides or {})
        self._extra_years: frozenset[int] = frozenset(extra_years)

    @property
    def overrides(self) -> Mapping[date, bool]:
        """The admin overrides (date -> is working day)."""
        return dict(self._overrides)

    @property
    def extra_years(self) -> frozenset[int]:
        """Years for which an admin loaded a schedule."""
        return self._extra_years

    def with_schedule(self, schedule: HolidaySchedule) -> WorkingCalendar:
        """Return a new calendar with ``schedule`` loaded: its year becomes verified."""
        merged = {**self._overrides, **schedule.overrides}
        return WorkingCalendar(merged, self._extra_years | {schedule.year})

    def is_verified(self, d: date) -> bool:
        """Return True if ``d`` falls in a year with a published or admin-loaded schedule."""
        return d.year in _LIBRARY_YEARS or d.year in self._extra_years

    def is_working_day(self, d: date) -> bool:
        """Return True if ``d`` is a working day (adjusted working weekends 调休 included)."""
        override = self._overrides.get(d)
        if override is not None:
            return override
        if d.year in _LIBRARY_YEARS:
            return bool(chinese_calendar.is_workday(d))
        # Unverified (or admin-loaded) year without an override: the plain weekly rule.
        return d.weekday() < 5

    def next_working_day(self, d: date) -> date:
        """Return the first working day strictly after ``d``."""
        day = d + timedelta(days=1)
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def add_working_days(self, start: date, n: int) -> DueDate:
        """Return the n-th working day after ``start`` (the start day is not counted)."""
        if n < 0:
            raise ValueError(f"working-day count must not be negative, got {n}")
        unverified = False
        day = start
        counted = 0
        while counted < n:
            day += timedelta(days=1)
            unverified |= not self.is_verified(day)
            if self.is_working_day(day):
                counted += 1
        return DueDate(day, unverified)

    def add_calendar_days(self, start: date, n: int) -> DueDate:
        """Return ``start`` + n days, rolled to the next working day if that day is a rest day."""
        # 民法典 Art. 201: the start day is not counted; the period begins the next day.
        # 民法典 Art. 203: if the last day is a statutory holiday (法定休假日), the period ends on
        # the day after the holiday ends. We also roll a plain Saturday/Sunday: in Chinese
        # practice 法定休假日 includes the weekly rest days (公休日) — the Supreme People's
        # Court's long-standing rule (民通意见 1988, Art. 198: "期间的最后一天是星期日或者其他
        # 法定休假日 … 以实际休假日的次日为期间的最后一天") and courts applying 民事诉讼法's
        # period rules treat weekends alike. Because "实际休假日" follows the adjusted schedule,
        # an adjusted working weekend (调休上班) does not roll, and the first *working* day after
        # the rest days becomes the last day.
        if n < 0:
            raise ValueError(f"day count must not be negative, got {n}")
        day = start + timedelta(days=n)
        unverified = not self.is_verified(day)
        while not self.is_working_day(day):
            day += timedelta(days=1)
            unverified |= not self.is_verified(day)
        return DueDate(day, unverified)

    def working_days_between(self, start: date, end: date) -> int:
        """Count working days after ``start`` up to and including ``end`` (0 if end ≤ start)."""
        count = 0
        day = start
        while day < end:
            day += timedelta(days=1)
            if self.is_working_day(day):
                count += 1
        return count


class ScheduleError(ValueError):
    """An admin holiday schedule file is malformed; the message says what and where."""


@dataclass(frozen=True)
class HolidaySchedule:
    """One year's State Council holiday schedule as loaded by an admin."""

    year: int
    overrides: dict[date, bool]
    names: dict[date, str] = field(default_factory=dict)

    @property
    def holidays(self) -> list[date]:
        """Rest days declared by the schedule, sorted."""
        return sorted(d for d, working in self.overrides.items() if not working)

    @property
    def workdays(self) -> list[date]:
        """Adjusted working days (调休上班) declared by the schedule, sorted."""
        return sorted(d for d, working in self.overrides.items() if working)


_ALLOWED_KEYS = frozenset({"year", "holidays", "workdays", "note"})
_ALLOWED_RANGE_KEYS = frozenset({"from", "to", "name"})
_MAX_RANGE_DAYS = 31


def _parse_date(value: object, where: str, year: int) -> date:
    """Parse an ISO date string inside ``year`` or raise ScheduleError naming ``where``."""
    if not isinstance(value, str):
        raise ScheduleError(f"{where}: expected a date string YYYY-MM-DD, got {value!r}")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise ScheduleError(f"{where}: {value!r} is not a valid date (YYYY-MM-DD)") from None
    if len(value) != 10:
        raise ScheduleError(f"{where}: {value!r} must be written as YYYY-MM-DD")
    if parsed.year != year:
        raise ScheduleError(f"{where}: {value} is outside the schedule year {year}")
    return parsed


def _parse_holiday_entry(entry: object, where: str, year: int) -> tuple[list[date], str | None]:
    """Parse one holiday entry: a date string or a {from, to, name} range."""
    if isinstance(entry, str):
        return [_parse_date(entry, where, year)], None
    if not isinstance(entry, dict):
        raise ScheduleError(f"{where}: expected a date string or an object with from/to")
    unknown = set(entry) - _ALLOWED_RANGE_KEYS
    if unknown:
        raise ScheduleError(f"{where}: unknown keys {sorted(unknown)} (allowed: from, to, name)")
    if "from" not in entry or "to" not in entry:
        raise ScheduleError(f"{where}: a range needs both 'from' and 'to'")
    start = _parse_date(entry["from"], f"{where}.from", year)
    end = _parse_date(entry["to"], f"{where}.to", year)
    if start > end:
        raise ScheduleError(f"{where}: 'from' {start} is after 'to' {end}")
    if (end - start).days + 1 > _MAX_RANGE_DAYS:
        raise ScheduleError(f"{where}: a holiday range of more than {_MAX_RANGE_DAYS} days")
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ScheduleError(f"{where}.name: expected a non-empty string")
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    return days, name


def parse_holiday_schedule(text: str) -> HolidaySchedule:
    """Parse and validate an admin JSON holiday schedule (see data/holidays-*.example.json)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScheduleError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(raw, dict):
        raise ScheduleError("the schedule must be a JSON object with year, holidays, workdays")
    unknown = set(raw) - _ALLOWED_KEYS
    if unknown:
        raise ScheduleError(f"unknown keys {sorted(unknown)} (allowed: {sorted(_ALLOWED_KEYS)})")
    year = raw.get("year")
    if not isinstance(year, int) or isinstance(year, bool) or not 1900 <= year <= 9999:
        raise ScheduleError(f"year: expected a four-digit year, got {year!r}")
    note = raw.get("note")
    if note is not None and not isinstance(note, str):
        raise ScheduleError("note: expected a string")
    holidays = raw.get("holidays")
    if not isinstance(holidays, list) or not holidays:
        raise ScheduleError("holidays: expected a non-empty list")
    workdays = raw.get("workdays", [])
    if not isinstance(workdays, list):
        raise ScheduleError("workdays: expected a list (may be empty)")

    overrides: dict[date, bool] = {}
    names: dict[date, str] = {}
    for i, entry in enumerate(holidays):
        where = f"holidays[{i}]"
        days, name = _parse_holiday_entry(entry, where, year)
        for day in days:
            if day in overrides:
                raise ScheduleError(f"{where}: {day} is listed more than once")
            overrides[day] = False
            if name:
                names[day] = name
    for i, entry in enumerate(workdays):
        where = f"workdays[{i}]"
        day = _parse_date(entry, where, year)
        if day in overrides:
            kind = "a holiday" if not overrides[day] else "a workday"
            raise ScheduleError(f"{where}: {day} is already listed as {kind}")
        if day.weekday() < 5:
            # Adjusted working days (调休) are always weekend days; a weekday here is a typo.
            raise ScheduleError(
                f"{where}: {day} is a weekday; only weekend days can be 调休 workdays"
            )
        overrides[day] = True
    return HolidaySchedule(year=year, overrides=overrides, names=names)
