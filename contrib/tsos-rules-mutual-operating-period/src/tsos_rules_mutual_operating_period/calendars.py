"""Fiscal calendars: which fiscal quarter a date falls in, for a given fiscal year start month.

A fiscal year is named after the calendar year in which it *ends* (a year starting in July
2026 is FY2027); a calendar fiscal year (start month 1) is named after its own year. Quarters
are three calendar months from the start month.
"""

from __future__ import annotations

import datetime as dt

import attrs

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _month_start(index: int) -> dt.date:
    """The first day of month ``index`` counted as ``year * 12 + month - 1``."""
    return dt.date(index // 12, index % 12 + 1, 1)


@attrs.frozen
class FiscalQuarter:
    """One fiscal quarter: fiscal year, quarter number 1-4, first and last day."""

    fiscal_year: int
    quarter: int
    start: dt.date
    end: dt.date

    @property
    def label(self) -> str:
        """``FY2027 Q1 (Nov–Jan)``."""
        return (
            f"FY{self.fiscal_year} Q{self.quarter} "
            f"({_MONTHS[self.start.month - 1]}–{_MONTHS[self.end.month - 1]})"
        )

    def days_left(self, day: dt.date) -> int:
        """Days from ``day`` to the quarter's last day (0 on the last day)."""
        return (self.end - day).days

    def same_period(self, other: FiscalQuarter) -> bool:
        """True when both quarters cover the same days, whatever their names."""
        return (self.start, self.end) == (other.start, other.end)


@attrs.frozen
class FiscalCalendar:
    """A fiscal calendar starting in ``start_month`` (1 = January)."""

    start_month: int = attrs.field(default=1)

    @start_month.validator
    def _check(self, _: attrs.Attribute[int], value: int) -> None:
        if type(value) is not int or not 1 <= value <= 12:
            raise ValueError(f"fiscal year start month: expected 1 to 12, got {value!r}")

    def quarter_of(self, day: dt.date) -> FiscalQuarter:
        """The fiscal quarter containing ``day``."""
        months_into_year = (day.month - self.start_month) % 12
        year_start = day.year * 12 + day.month - 1 - months_into_year
        quarter = months_into_year // 3 + 1
        start = year_start + (quarter - 1) * 3
        end = _month_start(start + 3) - dt.timedelta(days=1)
        year_end = _month_start(year_start + 12) - dt.timedelta(days=1)
        return FiscalQuarter(year_end.year, quarter, _month_start(start), end)

    def aligned_with(self, other: FiscalCalendar) -> bool:
        """True when both calendars have the same quarter boundaries (start months 3 apart)."""
        return (self.start_month - other.start_month) % 3 == 0
