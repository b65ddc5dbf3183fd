"""Per-stratum rows of the benchmark (descriptive: strata are not tested).

Each site's strata as released, with the Wilson interval of the stratum's positivity and its
position against the funnel limits of the same stratum (biomarker x method x specimen) network
wide; and the network's pooled counts per stratum. Computed for every stratum of every site at
once: the limits once per distinct (valid results, network rate), the intervals and positions as
arrays, so the cost per site stays flat as the network grows.
"""

from __future__ import annotations

from collections.abc import Collection
from operator import itemgetter
from typing import Any

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


def _row(site: str, s: pb.StratumCounts) -> Json:
    """The stratum as the summary released it, described as withheld until _describe fills in
    the last five keys of a released stratum."""
    return {
        "site_id": site,
        "biomarker": s.biomarker,
        "method": s.method,
        "specimen": s.specimen,
        "tests": s.tests,
        "positive": s.positive,
        "negative": s.negative,
        "failed": s.failed,
        "equivocal": s.equivocal,
        "withheld": s.withheld,
        "suppressed_cells": list(s.suppressed_cells),
        "disclosure_note": s.disclosure_note,
        "rate": None,
        "ci95": None,
        "network_rate": None,
        "limits": None,
        "status": "withheld",
    }


COUNTS = ("tests", "positive", "negative", "failed", "equivocal")


class _Pool:
    """The released strata grouped by key (biomarker, method, specimen), in the order keys are
    first seen."""

    def __init__(self) -> None:
        self.group_of: dict[Key, int] = {}
        self.rows: list[Json] = []  # released rows, in site then summary order
        self.groups: list[int] = []  # each released row's group

    def add(self, row: Json) -> None:
        key = (row["biomarker"], row["method"], row["specimen"])
        self.groups.append(self.group_of.setdefault(key, len(self.group_of)))
        self.rows.append(row)

    def column(self, name: str) -> np.ndarray:
        """One count of every released row."""
        return np.fromiter(map(itemgetter(name), self.rows), dtype=np.int64, count=len(self.rows))

    def totals(self) -> list[list[int]]:
        """Per group: the sums of tests, positive, negative, failed and equivocal."""
        groups = np.array(self.groups, dtype=np.intp)
        size = len(self.group_of)
        # bincount sums in float64: exact for counts below 2**53
        sums = [np.bincount(groups, self.column(k), size).astype(np.int64) for k in COUNTS]
        return np.stack(sums, axis=1).tolist() if sums[0].size else []


def _network_rate(positive: int, negative: int) -> float:
    return positive / (positive + negative) if positive + negative else 0.0


def _describe(pool: _Pool, rates: list[float], alert: float, alarm: float) -> None:
    """Adds rate, ci95, network_rate, limits and status to every released row."""
    if not pool.rows:
        return
    x = pool.column("positive").astype(float)
    n = x + pool.column("negative")
    theta = np.array(rates)[np.array(pool.groups, dtype=np.intp)]
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
        pool.rows,
        theta.tolist(),
        rate.tolist(),
        lo.tolist(),
        hi.tolist(),
        status,
        *(limits[k].tolist() for k in LIMIT_NAMES),
    )
    for row, network_rate, r, low, high, position, l998, l95, u95, u998 in columns:
        row["network_rate"] = network_rate
        row["status"] = position
        if position != "no_data":
            row["rate"] = r
            row["ci95"] = [low, high]
            row["limits"] = {"lower998": l998, "lower95": l95, "upper95": u95, "upper998": u998}


def rows_and_network(
    summaries: dict[str, pb.SiteSummary], alert: float, alarm: float
) -> tuple[list[Json], list[Json]]:
    """Every site's stratum rows (sites in order) and the network's pooled strata (by key)."""
    rows: list[Json] = []
    pool = _Pool()
    for site, summary in sorted(summaries.items()):
        for s in summary.strata:
            row = _row(site, s)
            rows.append(row)
            if released(row["withheld"], row["suppressed_cells"]):
                pool.add(row)
    totals = pool.totals()
    rates = [_network_rate(t[1], t[2]) for t in totals]
    _describe(pool, rates, alert, alarm)
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
        for (b, m, sp), c in sorted(zip(pool.group_of, totals))
    ]
    return rows, network
