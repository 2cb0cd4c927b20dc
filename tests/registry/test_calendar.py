"""The working-day calendar: the State Council's 2025 and 2026 arrangements, counting rules,
administrator overrides, and refusing to count through a year nobody has published."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from datafactor.errors import InvalidInput
from datafactor.registry import (
    CalendarNotCovered,
    WorkingCalendar,
    add_working_days,
    default_calendar,
    end_of_day,
    load_holiday_years,
    shanghai_date,
    working_days_between,
)

CAL = default_calendar()


def test_both_years_are_loaded_with_their_sources() -> None:
    years = load_holiday_years()
    assert set(years) >= {2025, 2026}
    assert "国办发明电〔2024〕12号" in years[2025].source
    assert "2025-11-04" in years[2026].source
    assert all(y.verified for y in years.values())
    assert CAL.covered_years >= {2025, 2026}


@pytest.mark.parametrize(
    ("first", "last", "name"),
    [
        # 国办发明电〔2024〕12号 (2025)
        (date(2025, 1, 1), date(2025, 1, 1), "New Year's Day"),
        (date(2025, 1, 28), date(2025, 2, 4), "Spring Festival"),
        (date(2025, 4, 4), date(2025, 4, 6), "Qingming Festival"),
        (date(2025, 5, 1), date(2025, 5, 5), "Labour Day"),
        (date(2025, 5, 31), date(2025, 6, 2), "Dragon Boat Festival"),
        (date(2025, 10, 1), date(2025, 10, 8), "National Day and Mid-Autumn Festival"),
        # 国务院办公厅 2025-11-04 (2026)
        (date(2026, 1, 1), date(2026, 1, 3), "New Year's Day"),
        (date(2026, 2, 15), date(2026, 2, 23), "Spring Festival"),
        (date(2026, 4, 4), date(2026, 4, 6), "Qingming Festival"),
        (date(2026, 5, 1), date(2026, 5, 5), "Labour Day"),
        (date(2026, 6, 19), date(2026, 6, 21), "Dragon Boat Festival"),
        (date(2026, 9, 25), date(2026, 9, 27), "Mid-Autumn Festival"),
        (date(2026, 10, 1), date(2026, 10, 7), "National Day"),
    ],
)
def test_every_day_of_each_holiday_is_off(first: date, last: date, name: str) -> None:
    periods = [p for y in load_holiday_years().values() for p in y.holidays]
    assert any(p.start == first and p.end == last and p.name["en"] == name for p in periods)
    day = first
    while day <= last:
        assert not CAL.is_working_day(day), day
        day += timedelta(days=1)


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 1, 26),  # Sunday
        date(2025, 2, 8),  # Saturday
        date(2025, 4, 27),  # Sunday
        date(2025, 9, 28),  # Sunday
        date(2025, 10, 11),  # Saturday
        date(2026, 1, 4),  # Sunday
        date(2026, 2, 14),  # Saturday
        date(2026, 2, 28),  # Saturday
        date(2026, 5, 9),  # Saturday
        date(2026, 9, 20),  # Sunday
        date(2026, 10, 10),  # Saturday
    ],
)
def test_make_up_days_are_weekend_days_that_are_worked(day: date) -> None:
    assert day.weekday() >= 5
    assert CAL.is_working_day(day)


def test_the_weekdays_the_notices_name_match_the_dates() -> None:
    # Each notice names the weekday of its dates; a wrong date would show here.
    assert date(2025, 1, 28).weekday() == 1  # 1月28日（周二）
    assert date(2025, 10, 8).weekday() == 2  # 10月8日（周三）
    assert date(2026, 1, 1).weekday() == 3  # 1月1日（周四）
    assert date(2026, 2, 15).weekday() == 6  # 2月15日（周日）
    assert date(2026, 2, 23).weekday() == 0  # 23日（周一）
    assert date(2026, 5, 5).weekday() == 1  # 5日（周二）
    assert date(2026, 10, 7).weekday() == 2  # 7日（周三）


def test_working_days_per_year() -> None:
    # 261 weekdays − 18 holiday weekdays + 5 make-up days (2025); 261 − 19 + 6 (2026).
    assert CAL.working_days_between(date(2024, 12, 31), date(2025, 12, 31)) == 248
    assert CAL.working_days_between(date(2025, 12, 31), date(2026, 12, 31)) == 248


def test_counting_starts_the_day_after() -> None:
    friday = date(2026, 3, 6)
    assert CAL.add_working_days(friday, 1) == date(2026, 3, 9)  # Monday
    assert CAL.add_working_days(date(2026, 3, 9), 3) == date(2026, 3, 12)
    assert CAL.add_working_days(friday, 0) == friday
    assert CAL.add_working_days(date(2026, 3, 7), 0) == date(2026, 3, 9)  # Saturday rolls on
    assert CAL.add_working_days(date(2026, 3, 9), -1) == friday


def test_holidays_and_make_up_days_move_deadlines() -> None:
    # Submitted the Friday before the Spring Festival: the make-up Saturday 14 Feb counts, the
    # nine days off do not.
    assert CAL.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert CAL.add_working_days(date(2026, 2, 13), 2) == date(2026, 2, 24)
    # Ten working days from Monday 28 September 2026: 29, 30 Sep; 8, 9, 10 (make-up Saturday),
    # 12, 13, 14, 15, 16 Oct.
    assert CAL.add_working_days(date(2026, 9, 28), 10) == date(2026, 10, 16)
    assert CAL.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)


def test_the_module_functions_use_the_packaged_calendar() -> None:
    assert add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert working_days_between(date(2026, 9, 30), date(2026, 10, 8)) == 1


@given(
    start=st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 10, 31)),
    n=st.integers(min_value=0, max_value=40),
)
def test_adding_and_counting_agree(start: date, n: int) -> None:
    end = CAL.add_working_days(start, n)
    assert CAL.is_working_day(end)
    if n > 0:
        assert CAL.working_days_between(start, end) == n
        assert CAL.working_days_between(end, start) == -n
        # No earlier day has n working days after start.
        assert CAL.working_days_between(start, end - timedelta(days=1)) == n - 1


@given(
    a=st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 12, 31)),
    b=st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 12, 31)),
    c=st.dates(min_value=date(2025, 1, 1), max_value=date(2026, 12, 31)),
)
def test_counts_add_up(a: date, b: date, c: date) -> None:
    between = CAL.working_days_between
    assert between(a, b) + between(b, c) == between(a, c)


def test_a_strict_count_refuses_an_unpublished_year() -> None:
    with pytest.raises(CalendarNotCovered) as exc:
        CAL.add_working_days(date(2026, 12, 24), 10, strict=True)
    assert exc.value.rule == "REG-WORKING-DAYS"
    assert "2027" in str(exc.value)
    # Lenient counting falls back on weekends for internal due dates — and so counts New Year's
    # Day 2027 as a working day, which is why public notices count strictly.
    assert CAL.add_working_days(date(2026, 12, 24), 10) == date(2027, 1, 7)


def test_an_administrator_can_add_a_year_and_local_days() -> None:
    edited = CAL.with_overrides(
        holidays=[date(2027, 1, 1), date(2026, 3, 3)],  # next New Year; a local holiday
        workdays=[date(2026, 10, 3)],  # a Saturday in the National Day week worked
        covered_years=[2027],
    )
    assert not edited.is_working_day(date(2026, 3, 3))
    assert edited.is_working_day(date(2026, 10, 3))
    assert edited.add_working_days(date(2026, 12, 31), 1, strict=True) == date(2027, 1, 4)
    assert CAL.is_working_day(date(2026, 3, 3))  # the packaged calendar is unchanged
    # An override wins over the file in both directions.
    assert (
        CAL.with_overrides(holidays=[date(2026, 2, 14)]).is_working_day(date(2026, 2, 14)) is False
    )
    assert CAL.with_overrides(workdays=[date(2026, 2, 16)]).is_working_day(date(2026, 2, 16))


def test_a_day_cannot_be_both() -> None:
    with pytest.raises(InvalidInput):
        CAL.with_overrides(holidays=[date(2026, 3, 3)], workdays=[date(2026, 3, 3)])
    with pytest.raises(InvalidInput):
        WorkingCalendar(holidays=[date(2026, 3, 3)], workdays=[date(2026, 3, 3)])


def test_a_bad_holiday_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "holidays.yaml"
    bad.write_text(
        "years:\n  2026:\n    source: x\n    verified: true\n"
        "    holidays: []\n    workdays: [2026-03-04]\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match="is a weekday"):
        load_holiday_years(bad)


def test_dates_are_counted_in_shanghai() -> None:
    late_utc = datetime(2026, 3, 5, 17, 30, tzinfo=UTC)  # 01:30 on 6 March in Shanghai
    assert shanghai_date(late_utc) == date(2026, 3, 6)
    assert end_of_day(date(2026, 3, 6)) == datetime(2026, 3, 6, 16, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="naive"):
        shanghai_date(datetime(2026, 3, 5, 12, 0))
