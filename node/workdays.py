"""Turnaround in working days: weekends and the site's public holidays excluded.

Convention (rarenet): the number of working days after the receipt date up to and including the
report date, so a same-day report is 0. Countries that move working days onto weekends around
holidays (China) are handled by the holidays package's `is_working_day`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import cache, lru_cache

import holidays


@cache
def _working_day(country: str, subdivision: str) -> Callable[[dt.date], bool]:
    """One calendar per country and subdivision, each day looked up once per process (the
    holidays package works out a whole year's holidays on its first question about that year)."""
    try:
        calendar = holidays.country_holidays(country, subdiv=subdivision or None)
    except NotImplementedError as exc:
        from node.errors import ConfigError

        raise ConfigError(
            f"the holidays package does not know country {country!r}; set [site] country"
        ) from exc
    return lru_cache(maxsize=None)(calendar.is_working_day)


class WorkingDays:
    def __init__(self, country: str, subdivision: str = "") -> None:
        self._working = _working_day(country, subdivision)
        self._count = lru_cache(maxsize=None)(self._count_uncached)

    def is_working_day(self, day: dt.date) -> bool:
        return self._working(day)

    def between(self, received: dt.date, reported: dt.date) -> int:
        """Working days after `received` up to and including `reported`."""
        return self._count(received, reported)

    def _count_uncached(self, received: dt.date, reported: dt.date) -> int:
        days = 0
        day = received + dt.timedelta(days=1)
        while day <= reported:
            days += self._working(day)
            day += dt.timedelta(days=1)
        return days
