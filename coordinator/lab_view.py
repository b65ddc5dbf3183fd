"""What an individual lab report shows, built from a period's benchmark: the lab's own section,
the network's figures to compare with (pooled, never another lab's name), funnel limits to draw,
method classes, history, and the follow-up (persistent flags, corrective actions).

`NetworkContext` is computed once per benchmark; `site_view` is then cheap for each lab, so the
centre writes every lab's report in one run. The same view, with anonymous peers added, is what a
lab fetches signed with `rarenet-node benchmark` (coordinator/server.py)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from coordinator.benchmark import for_site
from method import stats
from rendering.labels import METHOD_CLASS
from rendering.plots import Funnel, funnel_grid, points_of

VIEW_VERSION = 1
SHAREABLE_META = ("generated_at", "data_cutoff", "tree_head")


def _curve(ns: list[int], theta: float, rho: float) -> dict[str, list[float] | list[int]]:
    limits = [stats.funnel_limits(n, theta, rho) for n in ns]
    return {
        "n": ns,
        "lower998": [lim.lower998 for lim in limits],
        "lower95": [lim.lower95 for lim in limits],
        "upper95": [lim.upper95 for lim in limits],
        "upper998": [lim.upper998 for lim in limits],
    }


def _rate(x: int, n: int) -> float | None:
    return x / n if n else None


def method_classes(rows: list[dict]) -> dict[str, dict[str, list[int]]]:
    """{biomarker: {method class: [positive, valid]}} from stratum rows (released ones only)."""
    out: dict[str, dict[str, list[int]]] = defaultdict(dict)
    for row in rows:
        cls = METHOD_CLASS.get(row["method"])
        if cls is None or row.get("withheld") or row.get("status") == "withheld":
            continue
        cell = out[row["biomarker"]].setdefault(cls, [0, 0])
        cell[0] += row["positive"]
        cell[1] += row["positive"] + row["negative"]
    return dict(out)


def shown_periods(benchmark: dict) -> list[str]:
    """The trend periods from the first with any lab's data (no empty quarters on a chart)."""
    periods = benchmark["trends"]["periods"]
    with_data = {
        p["period"]
        for series in benchmark["trends"]["sites"].values()
        for points in series.values()
        for p in points
    }
    first = next((i for i, p in enumerate(periods) if p in with_data), len(periods) - 1)
    return periods[first:]


@dataclass
class NetworkContext:
    """The network's side of every lab report of one benchmark."""

    benchmark: dict
    curves: dict[str, dict] = field(default_factory=dict)
    failure: dict[str, dict] = field(default_factory=dict)
    turnaround: dict[str, Any] = field(default_factory=dict)
    method_class: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    trend_network: dict[str, list[float | None]] = field(default_factory=dict)
    periods: list[str] = field(default_factory=list)  # shown_periods, found once for every lab
    # Funnels drawn for this benchmark, by (language, labs named): drawn once per report run.
    funnels: dict[tuple[str, bool], dict[str, Funnel]] = field(default_factory=dict)

    @classmethod
    def of(cls, benchmark: dict) -> NetworkContext:
        sites = benchmark["sites"]
        ctx = cls(benchmark)
        for biomarker, net in benchmark["network"]["positivity"].items():
            grid = funnel_grid(points_of(sites, biomarker, named=False))
            ctx.curves[biomarker] = _curve(grid, net["rate"], net.get("rho", 0.0))
        failed: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        histogram: list[int] = []
        for entry in sites.values():
            for specimen, f in entry["failure"].items():
                failed[specimen][0] += f["failed"]
                failed[specimen][1] += f["tests"]
            for i, count in enumerate(entry["turnaround"].get("histogram", [])):
                if i >= len(histogram):
                    histogram.append(0)
                histogram[i] += count
        ctx.failure = {
            s: {"failed": x, "tests": n, "rate": _rate(x, n)}
            for s, (x, n) in sorted(failed.items())
        }
        total = sum(histogram)
        target = next(
            (
                e["turnaround"]["target_days"]
                for e in sites.values()
                if e["turnaround"].get("tests")
            ),
            10,
        )
        ctx.turnaround = {
            "histogram": histogram,
            "tests": total,
            "target_days": target,
            "share_within_target": _rate(sum(histogram[: target + 1]), total),
            "median": stats.histogram_quantile(histogram, 0.5) if total else None,
            "p90": stats.histogram_quantile(histogram, 0.9) if total else None,
        }
        ctx.method_class = method_classes(benchmark["network"]["strata"])
        periods = ctx.periods = shown_periods(benchmark)
        pooled: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for series in benchmark["trends"]["sites"].values():
            for biomarker, points in series.items():
                for p in points:
                    cell = pooled[biomarker][p["period"]]
                    cell[0] += p["positive"]
                    cell[1] += p["valid"]
        ctx.trend_network = {
            b: [_rate(*by_period[p]) if p in by_period else None for p in periods]
            for b, by_period in sorted(pooled.items())
        }
        return ctx


def followup_by_site(followup: dict, only: str | None = None) -> dict[str, dict[str, list[dict]]]:
    """{site: {"persistent": marks, "actions": actions}} of a follow-up, found once for every
    lab's page (or for the one site `only`)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for key in ("persistent", "actions"):
        for item in followup.get(key, []):
            if only is None or item["site_id"] == only:
                out.setdefault(item["site_id"], {}).setdefault(key, []).append(item)
    return out


def site_view(
    ctx: NetworkContext,
    site_id: str,
    followup: dict | None = None,
    by_site: dict[str, dict[str, list[dict]]] | None = None,
) -> dict:
    """One lab's report data (no other lab named). `by_site`: `followup_by_site(followup)`, when
    many labs' views are made from one follow-up."""
    b = ctx.benchmark
    site = b["sites"][site_id]
    periods = ctx.periods
    own_trend = b["trends"]["sites"].get(site_id, {})
    follow = followup or {}
    index = by_site if by_site is not None else followup_by_site(follow, only=site_id)
    own = index.get(site_id, {})
    return {
        "view_version": VIEW_VERSION,
        "period": b["period"],
        "standard": b["standard"],
        "site": site,
        "network": {
            "positivity": b["network"]["positivity"],
            "sites": len(b["sites"]),
            "failure": ctx.failure,
            "turnaround": ctx.turnaround,
            "method_class": ctx.method_class,
            "concordance": b["network"]["concordance"],
        },
        "funnel_curves": ctx.curves,
        "method_class": method_classes(site["strata"]),
        "history": {
            "periods": periods,
            "own": {
                biomarker: [
                    next((p["rate"] for p in points if p["period"] == q), None) for q in periods
                ]
                for biomarker, points in sorted(own_trend.items())
            },
            "network": ctx.trend_network,
            "flags": {
                period: flags.get(site_id, [])
                for period, flags in follow.get("flag_history", {}).items()
                if period in periods
            },
        },
        "persistent": own.get("persistent", []),
        "actions": own.get("actions", []),
        "directory": follow.get("directory", []),
        # Never the lists of submitting or missing labs, nor their volumes: peers stay unnamed.
        "meta": {k: v for k, v in follow.get("meta", {}).items() if k in SHAREABLE_META},
    }


def for_lab(benchmark: dict, site_id: str, followup: dict | None = None) -> dict:
    """What GetBenchmark signs for a lab: the benchmark's own site view (`for_site`, peers without
    names) with the report data added."""
    view = site_view(NetworkContext.of(benchmark), site_id, followup)
    shown = for_site(benchmark, site_id)
    view["peers"] = shown["peers"]
    return view
