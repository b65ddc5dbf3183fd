"""Per-stratum rows of the benchmark (descriptive: strata are not tested).

Each site's strata as released, with the Wilson interval of the stratum's positivity and its
position against the funnel limits of the same stratum (biomarker x method x specimen) network
wide; and the network's pooled counts per stratum. Computed for every stratum of every site at
once: the limits once per distinct (valid results, network rate), the intervals and positions as
arrays, so the cost per site stays flat as the network grows.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple

import numpy as np

from method import stats
from protos.rarenet.v1 import summary_pb2 as pb

Json = dict[str, Any]
Key = tuple[str, str, str]  # (biomarker, method, specimen)
LIMIT_NAMES = ("lower998", "lower95", "upper95", "upper998")
POSITIVITY_CELLS = frozenset({"positive", "negative"})


def released(withheld: bool, suppressed: Collection[str]) -> bool:
    """A stratum whose positive and negative cells can be used for positivity."""
    return not withheld and "positive" not in suppressed and "negative" not in suppressed


class Fields(NamedTuple):
    """A stratum's fields as released, read once from its message (reading a protobuf field
    costs more than a tuple's), under the message's own names: code that reads a stratum's
    fields by name reads a Fields or a StratumCounts alike."""

    biomarker: str
    method: str
    specimen: str
    tests: int
    positive: int
    negative: int
    failed: int
    equivocal: int
    withheld: bool
    suppressed_cells: list[str]
    disclosure_note: str


COUNTS = ("tests", "positive", "negative", "failed", "equivocal")
_as_fields = tuple.__new__  # Fields from a tuple without NamedTuple's Python-level __new__


def _fields(s: pb.StratumCounts) -> Fields:
    """Each field read once from the message."""
    return _as_fields(
        Fields,
        (
            s.biomarker,
            s.method,
            s.specimen,
            s.tests,
            s.positive,
            s.negative,
            s.failed,
            s.equivocal,
            s.withheld,
            list(suppressed) if (suppressed := s.suppressed_cells) else [],  # mostly none
            s.disclosure_note,
        ),
    )


def read(summaries: dict[str, pb.SiteSummary]) -> dict[str, list[Fields]]:
    """Every site's strata as Fields, sites in order: read once, for the stratum rows and the
    failure rates (reading a stratum from its summary costs more than the rest of its use)."""
    return {
        site: [_fields(s) for s in summary.strata] for site, summary in sorted(summaries.items())
    }


def _row(site: str, f: Fields, described: tuple[Any, ...] | None) -> Json:
    """The stratum as the summary released it, with (rate, ci95, network_rate, limits, status)
    when it is released, or described as withheld (network_rate None, status "withheld")."""
    rate, ci95, network_rate, limits, status = described or (None, None, None, None, "withheld")
    return {
        "site_id": site,
        "biomarker": f[0],
        "method": f[1],
        "specimen": f[2],
        "tests": f[3],
        "positive": f[4],
        "negative": f[5],
        "failed": f[6],
        "equivocal": f[7],
        "withheld": f[8],
        "suppressed_cells": f[9],
        "disclosure_note": f[10],
        "rate": rate,
        "ci95": ci95,
        "network_rate": network_rate,
        "limits": limits,
        "status": status,
    }


def _network_rate(positive: int, negative: int) -> float:
    return positive / (positive + negative) if positive + negative else 0.0


def _describe(
    counts: np.ndarray, groups: np.ndarray, rates: list[float], alert: float, alarm: float
) -> list[tuple[Any, ...]]:
    """(rate, ci95, network_rate, limits, status) of every released stratum (counts: one row
    of COUNTS each; groups: its key's index in rates)."""
    if not len(counts):
        return []
    x = counts[:, 1].astype(float)
    n = x + counts[:, 2]
    theta = np.array(rates)[groups]
    limits = stats.funnel_limits_many(n, theta, alert, alarm)
    lo, hi = stats.wilson_many(x, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, x / np.where(n > 0, n, 1.0), 0.0)
    status = np.select(
        [
            n <= 0,
            rate < limits["lower998"],
            rate > limits["upper998"],
            rate < limits["lower95"],
            rate > limits["upper95"],
        ],
        ["no_data", "alarm_low", "alarm_high", "alert_low", "alert_high"],
        "in_control",
    ).tolist()
    columns = zip(
        theta.tolist(),
        rate.tolist(),
        lo.tolist(),
        hi.tolist(),
        status,
        *(limits[k].tolist() for k in LIMIT_NAMES),
        strict=True,
    )
    return [
        (None, None, network_rate, None, position)
        if position == "no_data"
        else (
            r,
            [low, high],
            network_rate,
            {"lower998": l998, "lower95": l95, "upper95": u95, "upper998": u998},
            position,
        )
        for network_rate, r, low, high, position, l998, l95, u95, u998 in columns
    ]


def rows_and_network(
    fields: dict[str, list[Fields]], alert: float, alarm: float
) -> tuple[dict[str, list[Json]], list[Json]]:
    """Every site's stratum rows (by site, in order) and the network's pooled strata (by key),
    from the sites' strata as read (`read`)."""
    sites = sorted(fields)
    group_of: dict[Key, int] = {}  # keys in the order first released
    groups: list[int] = []
    counts: list[tuple[int, int, int, int, int]] = []
    is_released = {site: [released(f[8], f[9]) for f in fields[site]] for site in sites}
    for site in sites:
        for f, use in zip(fields[site], is_released[site], strict=True):
            if use:
                groups.append(group_of.setdefault((f[0], f[1], f[2]), len(group_of)))
                counts.append((f[3], f[4], f[5], f[6], f[7]))
    table = np.array(counts, dtype=np.int64).reshape(len(counts), len(COUNTS))
    group_index = np.array(groups, dtype=np.intp)
    # bincount sums in float64: exact for counts below 2**53
    totals = (
        np.stack(
            [np.bincount(group_index, table[:, i], len(group_of)) for i in range(len(COUNTS))],
            axis=1,
        )
        .astype(np.int64)
        .tolist()
        if len(group_of)
        else []
    )
    rates = [_network_rate(t[1], t[2]) for t in totals]
    described = iter(_describe(table, group_index, rates, alert, alarm))
    rows = {
        site: [
            _row(site, f, next(described) if use else None)
            for f, use in zip(fields[site], is_released[site], strict=True)
        ]
        for site in sites
    }
    network = [
        {
            "biomarker": b,
            "method": m,
            "specimen": sp,
            "tests": c[0],
            "positive": c[1],
            "negative": c[2],
            "failed": c[3],
            "equivocal": c[4],
            "rate": c[1] / (c[1] + c[2]) if c[1] + c[2] else None,
            "ci95": list(stats.wilson(c[1], c[1] + c[2])) if c[1] + c[2] else None,
        }
        for (b, m, sp), c in sorted(zip(group_of, totals, strict=True))
    ]
    return rows, network
