"""Tests, false-discovery control and flags.

Every site x indicator comparison is a Test with a one-sided or two-sided mid-P value. Tests are
grouped in families; Benjamini-Hochberg q-values are computed within each family (method.fdr) and
a test becomes a flag at level "alarm" (q <= alarm_q) or "alert" (q <= alert_q). Families:

- "period": every site x indicator test of the period (positivity against the network and
  against the standard's expected range, failure rates, turnaround, panel coverage, concordance);
- "window": rare drivers pooled over the rolling window, per site, against the rest of the network
  and against the standard's expected range;
- "method_class": per rare driver, each method class (DNA-only, other) against RNA-capable labs.

Under the global null hypothesis BH at level q keeps the chance of any flag in a family at about
q, so the expected number of false flags per period is about q per family (docs/method.md measures
it). Flags from rules without a p-value (EQA) carry p = q = None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from method import fdr

FAMILIES = ("period", "window", "method_class")
# Every rule a flag can name: a lab's corrective action refers to one of these (node and intake
# check it), and reports label each.
RULES = (
    "positivity_funnel",
    "positivity_below_expected",
    "method_class",
    "rare_driver_window",
    "failure_rate",
    "turnaround",
    "panel_coverage",
    "concordance",
    "eqa",
    "eqa_persistent_poor",
)


@dataclass(slots=True)
class Test:
    family: str
    site_id: str
    rule: str
    subject: str
    p: float
    direction: str  # "low" or "high": the side the figures lie on
    figures: dict[str, Any]
    source: str
    q: float = 1.0
    level: str | None = None
    sites: list[str] = field(default_factory=list)  # a class test flags every site in the class


def decide(tests: list[Test], alert_q: float, alarm_q: float) -> dict[str, int]:
    """Sets q and level on every test, family by family; returns the number of tests per family."""
    sizes: dict[str, int] = {}
    by_family: dict[str, list[Test]] = {family: [] for family in FAMILIES}
    for t in tests:
        if t.family in by_family:
            by_family[t.family].append(t)
    for family in FAMILIES:
        members = by_family[family]
        sizes[family] = len(members)
        for test, q in zip(members, fdr.bh_qvalues([t.p for t in members])):
            test.q = q
            test.level = fdr.level(q, alert_q, alarm_q)
    return sizes


def flag(
    site: str,
    rule: str,
    level: str,
    subject: str,
    figures: dict[str, Any],
    source: str,
    p: float | None = None,
    q: float | None = None,
    direction: str | None = None,
) -> dict[str, Any]:
    """A flag as benchmark.json carries it; `message` is written by the coordinator (prose is not
    part of the method) and is ignored when an auditor recomputes."""
    return {
        "site_id": site,
        "rule": rule,
        "level": level,
        "subject": subject,
        "figures": {**figures, "p": p, "q": q},
        "source": source,
        "p": p,
        "q": q,
        "direction": direction,
        "message": "",
    }


def as_flags(tests: list[Test]) -> list[dict[str, Any]]:
    out = []
    for t in tests:
        if t.level is None:
            continue
        for site in t.sites or [t.site_id]:
            out.append(
                flag(site, t.rule, t.level, t.subject, t.figures, t.source, t.p, t.q, t.direction)
            )
    return out
