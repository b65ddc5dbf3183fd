import datetime as dt

import pytest

from protos.errors import PeriodError
from protos.periods import containing, parse


@pytest.mark.parametrize(
    "text,start,end",
    [
        ("2026Q2", dt.date(2026, 4, 1), dt.date(2026, 6, 30)),
        ("2026-02", dt.date(2026, 2, 1), dt.date(2026, 2, 28)),
        ("2024-02", dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
        ("2026", dt.date(2026, 1, 1), dt.date(2026, 12, 31)),
        ("2026Q4", dt.date(2026, 10, 1), dt.date(2026, 12, 31)),
    ],
)
def test_parse(text, start, end) -> None:
    p = parse(text)
    assert (p.start, p.end, p.label) == (start, end, text)


@pytest.mark.parametrize("text", ["2026Q5", "2026-13", "26Q1", "2026q1x", "", "2026-1"])
def test_bad_periods_are_refused(text) -> None:
    with pytest.raises(PeriodError, match="2026Q2, 2026-05 or 2026"):
        parse(text)


def test_previous_and_containing() -> None:
    assert parse("2026Q1").previous().label == "2025Q4"
    assert parse("2026-01").previous().label == "2025-12"
    assert containing(dt.date(2026, 11, 25)).label == "2026Q4"
