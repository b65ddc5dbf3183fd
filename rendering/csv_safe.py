"""CSV cells a spreadsheet will not run: a text cell starting with =, +, -, @, a tab or a carriage
return is read by Excel, LibreOffice and Google Sheets as a formula (`=HYPERLINK(...)` in a site or
biomarker name would become a live link). Such a cell is prefixed with an apostrophe, as OWASP
advises; numbers are written as numbers, so a negative number stays a number."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


FIRST = frozenset(FORMULA_START)


def neutral(text: str) -> str:
    """`text` as a cell no spreadsheet evaluates."""
    return "'" + text if text and text[0] in FIRST else text


def cell(value: Any) -> str:
    kind = type(value)  # exact types first: a large network writes millions of cells
    if kind is str:
        return "'" + value if value and value[0] in FIRST else value
    if kind is int:
        return str(value)
    if kind is float:
        return f"{value:.6g}"
    if value is None:
        return ""
    if kind is list and len(value) == 2 and type(value[0]) is float and type(value[1]) is float:
        return neutral(f"{value[0]:.6g}-{value[1]:.6g}")  # an interval: its two cells joined
    if isinstance(value, (list, tuple)):
        return neutral("-".join(cell(v) for v in value)) if value else ""
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return neutral(str(value))


def _cells(row: dict, columns: Sequence[str]) -> list[Any]:
    """`cell` of each column, the common types inline (millions of cells in a large network).
    Integers, booleans and None go to the csv writer as they are: it writes str(value), and ""
    for None, as `cell` would."""
    out: list[Any] = []
    for column in columns:
        value = row.get(column)
        kind = type(value)
        if kind is str:
            out.append("'" + value if value and value[0] in FIRST else value)
        elif kind is float:
            out.append(f"{value:.6g}")
        elif kind is int or kind is bool or value is None:
            out.append(value)
        else:
            out.append(cell(value))
    return out


def write(path: Path, columns: Sequence[str], rows: Iterable[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(_cells(row, columns) for row in rows)
