"""Reporting periods: a year (2026), a quarter (2026Q2) or a month (2026-05)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from protos.errors import PeriodError

# ASCII digits only; "q" in either case ("2026q3" is read as 2026Q3; labels are always upper case).
_PATTERN = re.compile(
    r"(?P<year>[0-9]{4})(?:[Qq](?P<quarter>[1-4])|-(?P<month>0[1-9]|1[0-2]))?", re.ASCII
)


@dataclass(frozen=True, order=True)
class Period:
    start: dt.date
    end: dt.date  # inclusive
    label: str

    def __contains__(self, day: dt.date) -> bool:
        return self.start <= day <= self.end

    def __str__(self) -> str:
        return self.label

    @property
    def kind(self) -> str:
        return "year" if len(self.label) == 4 else ("quarter" if "Q" in self.label else "month")

    def is_closed(self, today: dt.date) -> bool:
        return today > self.end

    def previous(self) -> Period:
        return containing(self.start - dt.timedelta(days=1), self.kind)


def parse(text: str) -> Period:
    m = _PATTERN.fullmatch(text.strip())
    if not m:
        raise PeriodError(f"period {text!r} is not written as 2026Q2, 2026-05 or 2026")
    year = int(m["year"])
    if year < 1900:
        raise PeriodError(f"period {text!r}: the year must be 1900 or later")
    if m["quarter"]:
        q = int(m["quarter"])
        start = dt.date(year, 3 * q - 2, 1)
        end = _month_end(year, 3 * q)
        return Period(start, end, f"{year}Q{q}")
    if m["month"]:
        month = int(m["month"])
        return Period(dt.date(year, month, 1), _month_end(year, month), f"{year}-{month:02d}")
    return Period(dt.date(year, 1, 1), dt.date(year, 12, 31), f"{year}")


def containing(day: dt.date, kind: str = "quarter") -> Period:
    if kind == "year":
        return parse(f"{day.year}")
    if kind == "month":
        return parse(f"{day.year}-{day.month:02d}")
    if kind == "quarter":
        return parse(f"{day.year}Q{(day.month - 1) // 3 + 1}")
    raise PeriodError(f"period kind {kind!r} is not year, quarter or month")


def _month_end(year: int, month: int) -> dt.date:
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)
