"""The working-day calendar: weekends, Chinese public holidays and make-up working days (调休).

Registration deadlines and public-notice periods count working days. A day is a working day when
it is Monday to Friday and not a public holiday, or when it is a make-up working day (a weekend day
worked in exchange for a holiday). The holidays and make-up days of each year come from the State
Council's notice, kept in ``rules/holidays_cn.yaml``; an administrator can add or override days
(a local holiday, next year's notice before a release) — the services store those overrides and
pass them to ``WorkingCalendar.with_overrides``, so this module stays free of storage.

Counting follows the Civil Code's rule for periods (art. 201): the day a period starts is not
counted. ``add_working_days(d, n)`` is therefore the n-th working day *after* ``d``, and
``working_days_between(a, b)`` counts the working days in ``(a, b]``, so that
``working_days_between(d, add_working_days(d, n)) == n`` for every ``d`` and ``n``.

A year with no published arrangement is *not covered*. Counting through it from weekends alone
would treat its holidays as working days and end a period early — for a public notice, a notice
shorter than the rule. So ``strict=True`` (what the services use for public notices and
certificate-related periods) refuses with ``CalendarNotCovered``; lenient counting (internal due
dates, which only order a queue) uses weekends alone for such a year. Dates in storage are UTC;
``shanghai_date`` gives the Asia/Shanghai date a period is counted in.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo

import yaml  # type: ignore[import-untyped]

from datafactor.errors import N_, InvalidInput
from datafactor.registry.errors import CalendarNotCovered
from datafactor.registry.rulebook import load_registry_rules

_RULES_DIR: Final = Path(__file__).resolve().parent / "rules"
SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
# Periods here are at most a few months of working days; a loop past this is a caller's bug.
MAX_WORKING_DAYS: Final = 5000

MSG_NOT_COVERED: Final = N_(
    "The working-day calendar has no public holidays for {year} yet, so a deadline in {year} "
    "cannot be counted. An administrator must add {year}'s holidays and make-up working days "
    "(the State Council publishes them each November) (rule {rule})."
)
MSG_BOTH: Final = N_(
    "{day} cannot be both a holiday and a make-up working day: remove it from one of the lists."
)
MSG_TOO_MANY: Final = N_("A period of {n} working days is longer than the calendar counts.")


def shanghai_date(moment: dt.datetime) -> dt.date:
    """The Asia/Shanghai calendar date of an aware ``moment`` (periods are counted in it)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place in time: pass an aware one (UTC)")
    return moment.astimezone(SHANGHAI).date()


def end_of_day(day: dt.date) -> dt.datetime:
    """The moment a period whose last day is ``day`` ends: 24:00 Asia/Shanghai (art. 203), UTC."""
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=SHANGHAI)
    return midnight.astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class HolidayPeriod:
    """A named holiday period of the State Council's notice (inclusive)."""

    name: Mapping[str, str]
    start: dt.date
    end: dt.date

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]


@dataclass(frozen=True, slots=True)
class HolidayYear:
    """One year's arrangement: its source notice, holiday periods and make-up working days."""

    year: int
    source: str
    url: str
    verified: bool
    holidays: tuple[HolidayPeriod, ...]
    workdays: tuple[dt.date, ...]


class WorkingCalendar:
    """Weekends, holidays and make-up days; immutable, ``with_overrides`` returns a new one."""

    def __init__(
        self,
        holidays: Iterable[dt.date] = (),
        workdays: Iterable[dt.date] = (),
        covered_years: Iterable[int] = (),
    ) -> None:
        self._holidays = frozenset(holidays)
        self._workdays = frozenset(workdays)
        both = sorted(self._holidays & self._workdays)
        if both:
            raise InvalidInput(MSG_BOTH, field="holidays", day=both[0].isoformat())
        self._years = frozenset(covered_years)

    @property
    def holidays(self) -> frozenset[dt.date]:
        return self._holidays

    @property
    def workdays(self) -> frozenset[dt.date]:
        """The make-up working days (weekend days worked)."""
        return self._workdays

    @property
    def covered_years(self) -> frozenset[int]:
        return self._years

    def covers(self, day: dt.date) -> bool:
        """Whether ``day``'s year has a published (or administrator-entered) arrangement."""
        return day.year in self._years

    def with_overrides(
        self,
        holidays: Iterable[dt.date] = (),
        workdays: Iterable[dt.date] = (),
        covered_years: Iterable[int] = (),
    ) -> WorkingCalendar:
        """A calendar with an administrator's changes: an override wins over the file.

        A day given as a holiday stops being a make-up day and vice versa; a day in both override
        lists is refused. ``covered_years`` marks years whose arrangement the administrator has
        entered in full (so strict counting may run through them).
        """
        extra_holidays = frozenset(holidays)
        extra_workdays = frozenset(workdays)
        both = sorted(extra_holidays & extra_workdays)
        if both:
            raise InvalidInput(MSG_BOTH, field="holidays", day=both[0].isoformat())
        return WorkingCalendar(
            (self._holidays - extra_workdays) | extra_holidays,
            (self._workdays - extra_holidays) | extra_workdays,
            self._years | frozenset(covered_years),
        )

    def is_working_day(self, day: dt.date) -> bool:
        if day in self._workdays:
            return True
        return day.weekday() < 5 and day not in self._holidays

    def _check_covered(self, day: dt.date, strict: bool) -> None:
        if strict and not self.covers(day):
            # The rule's id lives in registry.yaml like every other rule's.
            rule = load_registry_rules().rule_id("working_days")
            raise CalendarNotCovered(MSG_NOT_COVERED, rule=rule, field="date", year=day.year)

    def add_working_days(self, start: dt.date, n: int, *, strict: bool = False) -> dt.date:
        """The ``n``-th working day after ``start`` (``start`` itself is not counted).

        ``n == 0`` gives ``start`` if it is a working day, else the next working day (a period
        of nothing still ends on a working day); a negative ``n`` counts backwards. With
        ``strict``, a count that passes through a year the calendar does not cover is refused.
        """
        if abs(n) > MAX_WORKING_DAYS:
            raise InvalidInput(MSG_TOO_MANY, field="n", n=n)
        day = start
        self._check_covered(day, strict)
        if n == 0:
            while not self.is_working_day(day):
                day += dt.timedelta(days=1)
                self._check_covered(day, strict)
            return day
        step = dt.timedelta(days=1 if n > 0 else -1)
        remaining = abs(n)
        while remaining:
            day += step
            self._check_covered(day, strict)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, start: dt.date, end: dt.date, *, strict: bool = False) -> int:
        """Working days in ``(start, end]``; negative (``-count`` of ``(end, start]``) if reversed."""
        if end < start:
            return -self.working_days_between(end, start, strict=strict)
        count = 0
        day = start
        self._check_covered(day, strict)
        while day < end:
            day += dt.timedelta(days=1)
            self._check_covered(day, strict)
            if self.is_working_day(day):
                count += 1
        return count


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ValueError(f"{where}: {value!r} is not a date (write YYYY-MM-DD)")
    return value


def _load_years(path: Path) -> Mapping[int, HolidayYear]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    years: dict[int, HolidayYear] = {}
    seen_holidays: set[dt.date] = set()
    for raw_year, body in (data.get("years") or {}).items():
        year = int(raw_year)
        where = f"{path.name} {year}"
        for key in ("source", "verified", "holidays", "workdays"):
            if key not in body:
                raise ValueError(f"{where}: missing {key}")
        if not isinstance(body["verified"], bool):
            raise ValueError(f"{where}: verified must be true or false")
        periods = []
        for item in body["holidays"]:
            name = item.get("name") or {}
            if not name.get("zh") or not name.get("en"):
                raise ValueError(f"{where}: every holiday needs a zh and en name")
            period = HolidayPeriod(
                MappingProxyType({"zh": str(name["zh"]), "en": str(name["en"])}),
                _date(item.get("from"), where),
                _date(item.get("to"), where),
            )
            if period.end < period.start:
                raise ValueError(f"{where} {period.name['en']}: ends before it starts")
            for day in period.days():
                if day.year != year:
                    raise ValueError(f"{where} {period.name['en']}: {day} is not in {year}")
                if day in seen_holidays:
                    raise ValueError(f"{where}: {day} listed twice")
                seen_holidays.add(day)
            periods.append(period)
        workdays = tuple(_date(d, where) for d in body["workdays"])
        for day in workdays:
            if day.year != year:
                raise ValueError(f"{where}: make-up day {day} is not in {year}")
            if day.weekday() < 5:
                raise ValueError(f"{where}: make-up day {day} is a weekday, not a weekend day")
            if day in seen_holidays:
                raise ValueError(f"{where}: {day} is both a holiday and a make-up day")
        years[year] = HolidayYear(
            year,
            str(body["source"]),
            str(body.get("url", "")),
            body["verified"],
            tuple(periods),
            workdays,
        )
    return MappingProxyType(years)


@functools.cache
def _default_years() -> Mapping[int, HolidayYear]:
    return _load_years(_RULES_DIR / "holidays_cn.yaml")


def load_holiday_years(path: Path | None = None) -> Mapping[int, HolidayYear]:
    """The holiday arrangements by year: the packaged file, or an operator's own (checked)."""
    return _default_years() if path is None else _load_years(path)


def calendar_from_years(years: Mapping[int, HolidayYear]) -> WorkingCalendar:
    return WorkingCalendar(
        (day for y in years.values() for p in y.holidays for day in p.days()),
        (day for y in years.values() for day in y.workdays),
        years,
    )


def default_calendar(
    holidays: Iterable[dt.date] = (),
    workdays: Iterable[dt.date] = (),
    covered_years: Iterable[int] = (),
) -> WorkingCalendar:
    """The packaged calendar, with an administrator's overrides applied (see ``with_overrides``)."""
    extra = (tuple(holidays), tuple(workdays), tuple(covered_years))
    if not any(extra):
        return _packaged_calendar()
    return _packaged_calendar().with_overrides(*extra)


@functools.cache
def _packaged_calendar() -> WorkingCalendar:
    return calendar_from_years(load_holiday_years())


def add_working_days(
    start: dt.date, n: int, calendar: WorkingCalendar | None = None, *, strict: bool = False
) -> dt.date:
    """``calendar.add_working_days`` on the packaged calendar by default."""
    return (calendar or default_calendar()).add_working_days(start, n, strict=strict)


def working_days_between(
    start: dt.date, end: dt.date, calendar: WorkingCalendar | None = None, *, strict: bool = False
) -> int:
    """``calendar.working_days_between`` on the packaged calendar by default."""
    return (calendar or default_calendar()).working_days_between(start, end, strict=strict)
