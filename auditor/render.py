"""The verified report as one plain HTML page, drawn by the auditor from report/benchmark.json.

Bundles no longer carry the coordinator's index.html: nothing could verify it, and a page that
said "ok" where the verified JSON says "alarm" would have passed. This page is made here, from
the JSON the auditor has just verified, with every value escaped; it shows the sites' status,
flags, positivity and concordance. It is presentation only and adds no figure of its own.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; max-width: 70rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #bbb; padding: 0.2rem 0.5rem; text-align: left; }
.alarm { color: #a00; font-weight: bold; } .alert { color: #a60; } .ok { color: #060; }
.note { background: #f4f4f4; padding: 0.5rem 1rem; }
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _percent(value: object) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "n/a"


def _table(head: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table; cells are already escaped."""
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


def _level(level: object) -> str:
    name = _e(level)
    return f'<span class="{name}">{name.upper()}</span>'


def _site(site_id: str, entry: Mapping[str, Any]) -> str:
    parts = [f"<h2>{_e(site_id)}: {_level(entry.get('status', ''))}</h2>"]
    flags = [f for f in entry.get("flags", []) if isinstance(f, Mapping)]
    if flags:
        parts.append(
            _table(
                ("level", "rule", "finding"),
                ((_level(f.get("level")), _e(f.get("rule")), _e(f.get("message"))) for f in flags),
            )
        )
    positivity = entry.get("positivity", {})
    rows: list[tuple[str, ...]] = []
    if isinstance(positivity, Mapping) and positivity:
        for biomarker, p in sorted(positivity.items()):
            if not isinstance(p, Mapping):
                continue
            ci = p.get("ci95")
            interval = (
                f"{_percent(ci[0])}–{_percent(ci[1])}"
                if isinstance(ci, list) and len(ci) == 2
                else ""
            )
            rows.append(
                (
                    _e(biomarker),
                    f"{_e(p.get('positive'))}/{_e(p.get('valid'))}",
                    _percent(p.get("rate")),
                    interval,
                    _e(p.get("status", "")),
                )
            )
        parts.append(_table(("biomarker", "positive/valid", "rate", "95% CI", "funnel"), rows))
    tables = [t for t in entry.get("concordance", []) if isinstance(t, Mapping)]
    if tables:
        rows = []
        for t in tables:
            pair = f"{_e(t.get('index_method'))} vs {_e(t.get('comparator_method'))}"
            if t.get("withheld"):
                rows.append((_e(t.get("kind")), _e(t.get("biomarker")), pair, "withheld", "", ""))
                continue
            kappa = t.get("kappa")
            rows.append(
                (
                    _e(t.get("kind")),
                    _e(t.get("biomarker")),
                    pair,
                    " ".join(f"{k}={_e(t.get(k))}" for k in "abcd"),
                    f"PPA {_percent(t.get('ppa'))}, NPA {_percent(t.get('npa'))}",
                    f"{kappa:.2f}" if isinstance(kappa, (int, float)) else "n/a",
                )
            )
        parts.append(_table(("kind", "biomarker", "methods", "2×2", "agreement", "kappa"), rows))
    return "\n".join(parts)


def page(report: Mapping[str, Any], fingerprint: str, pinned: bool) -> str:
    """The HTML page of a verified report (a network report, or one site's own view)."""
    standard = report.get("standard", {})
    title = f"rarenet benchmark {report.get('period', '')}"
    if "sites" in report:
        sites = report["sites"]
    else:
        own = report.get("site") or {}
        sites = {own.get("site_id", "this site"): own}
    key = (
        f"the pinned coordinator key {_e(fingerprint)}"
        if pinned
        else f"coordinator key {_e(fingerprint)}, which was NOT pinned: compare it with the "
        "fingerprint the centre gave you"
    )
    body = "\n".join(
        _site(str(site_id), entry)
        for site_id, entry in sorted(sites.items())
        if isinstance(entry, Mapping)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{_e(title)}</h1>
<p class="note">Rendered by <code>rarenet-audit show</code> from the bundle's report/benchmark.json
after every check of <code>rarenet-audit verify</code> passed (signed by {key}). Standard
{_e(standard.get("id"))} {_e(standard.get("version"))}.</p>
{body}
</body></html>
"""
