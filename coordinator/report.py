"""benchmark dict -> benchmark.json, CSV tables and a self-contained index.html (plots inline as SVG)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from jinja2 import Environment, FileSystemLoader, select_autoescape  # noqa: E402

from method import stats  # noqa: E402

TEMPLATES = Path(__file__).parent / "templates"
plt.rcParams["svg.fonttype"] = "none"
plt.rcParams["svg.hashsalt"] = "rarenet"


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def funnel_svg(
    biomarker: str, network: dict, sites: dict, benchmark_levels: dict | None = None
) -> str:
    benchmark_levels = benchmark_levels or {}
    points = [
        (site, v["positivity"][biomarker])
        for site, v in sites.items()
        if biomarker in v["positivity"]
    ]
    theta = network["rate"]
    sizes = [p["valid"] for _, p in points if p["valid"]] or [10]
    n_lo, n_hi = max(1, int(min(sizes) * 0.5)), int(max(sizes) * 1.15) + 1
    ns = np.unique(np.linspace(n_lo, n_hi, 120).astype(int))
    levels = benchmark_levels.get("funnel_levels", (0.95, 0.998))
    limits = [stats.funnel_limits(int(n), theta, network.get("rho", 0.0), *levels) for n in ns]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(ns, [lim.lower95 for lim in limits], color="#e69f00", lw=1, label="95% limits")
    ax.plot(ns, [lim.upper95 for lim in limits], color="#e69f00", lw=1)
    ax.plot(
        ns, [lim.lower998 for lim in limits], color="#d55e00", lw=1, ls="--", label="99.8% limits"
    )
    ax.plot(ns, [lim.upper998 for lim in limits], color="#d55e00", lw=1, ls="--")
    ax.axhline(theta, color="#333333", lw=1, label=f"network {100 * theta:.1f}%")
    colours = {
        "in_control": "#0072b2",
        "alert_low": "#e69f00",
        "alert_high": "#e69f00",
        "alarm_low": "#d55e00",
        "alarm_high": "#d55e00",
    }
    by_status: dict[str, list[tuple[int, float]]] = {}
    for site, p in points:
        by_status.setdefault(p["status"], []).append((p["valid"], p["rate"] or 0.0))
        if p["status"] != "in_control" and len(points) <= 60:
            ax.annotate(
                site,
                (p["valid"], p["rate"] or 0.0),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    for status, xy in sorted(by_status.items()):
        ax.scatter(
            [x for x, _ in xy],
            [y for _, y in xy],
            color=colours.get(status, "#999999"),
            s=22,
            zorder=3,
            label=None if status == "in_control" else status.replace("_", " "),
        )
    top = max([limits[0].upper998] + [p["rate"] or 0.0 for _, p in points])
    ax.set_ylim(0, min(1.0, top * 1.15 + 0.002))
    ax.set_xlim(n_lo, n_hi)
    ax.set_xlabel("valid results (positive + negative)")
    ax.set_ylabel("positivity")
    ax.set_title(f"{biomarker}: positivity funnel plot")
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(fontsize=7, loc="upper right")
    return _svg(fig)


def trend_svg(site: str, trends: dict) -> str | None:
    series = trends["sites"].get(site, {})
    if not series:
        return None
    periods = trends["periods"]
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    for biomarker, points in sorted(series.items()):
        xs = [periods.index(p["period"]) for p in points if p["rate"] is not None]
        ys = [p["rate"] for p in points if p["rate"] is not None]
        ax.plot(xs, ys, marker="o", ms=3, lw=1, label=biomarker)
    ax.set_xticks(range(len(periods)), periods)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set_title(f"{site}: positivity by period")
    ax.legend(fontsize=6, ncol=4, loc="upper left")
    return _svg(fig)


CSV_TABLES = {
    "strata.csv": (
        "site_id",
        "biomarker",
        "method",
        "specimen",
        "tests",
        "positive",
        "negative",
        "failed",
        "equivocal",
        "withheld",
        "rate",
        "ci95",
        "network_rate",
        "status",
    ),
    "flags.csv": ("site_id", "rule", "level", "subject", "p", "q", "message", "source"),
    "concordance.csv": (
        "site_id",
        "kind",
        "biomarker",
        "index_method",
        "comparator_method",
        "a",
        "b",
        "c",
        "d",
        "excluded_failed",
        "ppa",
        "ppa_ci95",
        "npa",
        "npa_ci95",
        "opa",
        "kappa",
        "kappa_ci95",
    ),
    "network.csv": (
        "biomarker",
        "method",
        "specimen",
        "tests",
        "positive",
        "negative",
        "failed",
        "equivocal",
        "rate",
        "ci95",
    ),
}


def _csv_rows(name: str, benchmark: dict) -> list[dict]:
    if name == "strata.csv":
        return [r for s in benchmark["sites"].values() for r in s["strata"]]
    if name == "flags.csv":
        return benchmark["flags"]
    if name == "concordance.csv":
        return [
            {"site_id": site, **t}
            for site, s in benchmark["sites"].items()
            for t in s["concordance"]
        ] + [{"site_id": "(network)", **t} for t in benchmark["network"]["concordance"]]
    return benchmark["network"]["strata"]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "-".join(_cell(v) for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write(benchmark: dict, out: Path, progress=None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    path = out / "benchmark.json"
    # Compact: the C encoder (indent= forces the pure-Python one, 15x slower on a large network).
    path.write_text(
        json.dumps(benchmark, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n",
        encoding="utf-8",
    )
    written.append(path)
    for name, columns in CSV_TABLES.items():
        path = out / name
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for row in _csv_rows(name, benchmark):
                writer.writerow([_cell(row.get(c)) for c in columns])
        written.append(path)
    if progress:
        progress("drawing funnel plots")
    funnels = {
        b: funnel_svg(b, net, benchmark["sites"], benchmark.get("method", {}))
        for b, net in sorted(benchmark["network"]["positivity"].items())
    }
    trends = {}
    if len(benchmark["sites"]) <= 100:
        trends = {site: trend_svg(site, benchmark["trends"]) for site in benchmark["sites"]}
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"
    league = sorted(
        benchmark["sites"].values(),
        key=lambda s: (
            {"alarm": 0, "alert": 1, "ok": 2}[s["status"]],
            -len(s["flags"]),
            s["site_id"],
        ),
    )
    html = env.get_template("benchmark.html").render(
        b=benchmark,
        funnels=funnels,
        trends=trends,
        league=league,
        detail=len(benchmark["sites"]) <= 100,
    )
    path = out / "index.html"
    path.write_text(html, encoding="utf-8")
    written.append(path)
    return written
