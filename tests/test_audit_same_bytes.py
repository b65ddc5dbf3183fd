"""The auditor's fast comparison of report/benchmark.json with its recomputation
(auditor.verify._same_bytes): orjson writes most pieces, json the rest. Whatever writes a piece,
a report passes only if it holds the recomputed values: a changed figure, a NaN reported as null,
an infinity reported as null, fail; the same values pass, and flag messages are not compared."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from auditor.verify import _same_bytes


def written(value: Any) -> bytes:
    """As the coordinator writes benchmark.json."""
    return (
        json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        + b"\n"
    )


RECOMPUTED = {
    "network": {"rate": 0.1234567890123, "p": 5.920527252381195e-07, "big": 1e16, "n": 3},
    "sites": {
        f"lab-{i}": {
            "flags": [{"rule": "r", "level": "alert", "message": f"wrote {i}"}],
            "kappa": None,
            "ppa": 1 / (i + 3),
            "name": 'Zhongshan 医院 "east"\n',
            "rows": [[i, 2.5e-05, True], (i, -0.0, False)],
        }
        for i in range(5)
    },
}


def test_the_report_as_written_passes_and_prose_is_not_compared() -> None:
    assert _same_bytes(RECOMPUTED, written(RECOMPUTED))
    reworded = written(RECOMPUTED).replace(b"wrote 3", b"the centre wrote this otherwise")
    assert _same_bytes(RECOMPUTED, reworded)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b'"n":3', b'"n":4'),
        (b'"ppa":0.25', b'"ppa":0.2500000001'),
        (b"2.5e-05", b"2.5e-06"),
        (b'"kappa":null', b'"kappa":0.5'),
        (b"true", b"false"),
        (b"east", b"west"),
        (b"-0.0", b"0.0"),
    ],
)
def test_a_changed_value_fails(old: bytes, new: bytes) -> None:
    report = written(RECOMPUTED)
    assert old in report
    assert not _same_bytes(RECOMPUTED, report.replace(old, new, 1))


@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf])
def test_a_special_float_reported_as_null_fails(special: float) -> None:
    """orjson writes NaN and the infinities as null: a piece holding null is compared as json
    writes it, so null in the report where the recomputation has NaN does not pass."""
    recomputed = {"sites": {"lab-0": {"kappa": special, "n": 1}, "lab-1": {"kappa": None}}}
    assert _same_bytes(recomputed, written(recomputed))
    as_null = written(recomputed).replace(b"NaN", b"null").replace(b"-Infinity", b"null")
    as_null = as_null.replace(b"Infinity", b"null")
    assert as_null != written(recomputed)
    assert not _same_bytes(recomputed, as_null)
