"""The lab's own benchmark (as signed by the coordinator) as a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape


def render(benchmark: dict) -> str:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html"]),
    )
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"
    site = benchmark["site"]
    below, peers_with = {}, {}
    for biomarker, mine in site["positivity"].items():
        rates = [
            p["positivity"][biomarker]["rate"]
            for p in benchmark["peers"]
            if biomarker in p["positivity"] and p["positivity"][biomarker]["rate"] is not None
        ]
        peers_with[biomarker] = len(rates)
        below[biomarker] = sum(r < (mine["rate"] or 0.0) for r in rates)
    return env.get_template("site_benchmark.html").render(
        b=benchmark, site=site, below=below, peers_with=peers_with
    )
