"""Rare drivers at real lab volumes: pooling over a rolling window, method classes, shrinkage,
sequential monitoring and patients likely missed.

- Window: each site's per-test counts (method "all") summed over the last `window_quarters`
  quarters it reported (4 by default; 12 months or 1 year for monthly or yearly periods).
- Method class per site and biomarker, from its per-method strata in the window: "rna_capable" if
  any released stratum used an RNA-capable method (the standard's [pooling] rna_methods, default
  ngs_rna and ngs_dna_rna), else "dna_only" if it used a DNA method (ngs_dna, pcr, ddpcr), else
  "other" (IHC/FISH only), or "unknown" when only merged strata were released.
- Shrinkage (empirical Bayes beta-binomial): prior Beta(theta M, (1 - theta) M) with theta the
  reference rate and M = 1/rho - 1 from the additive between-lab variance (rho = 4 tau^2, at least
  RHO_FLOOR so the prior never swamps a lab); posterior Beta(theta M + x, (1 - theta) M + n - x);
  reported: posterior mean and P(lab's rate < network rate), P(lab's rate < expected low).
- Sequential monitoring per period: observed, expected (n_t times the rest of the network's rate
  in that period), cumulative observed - expected (a VLAD chart), and a Bernoulli CUSUM for a
  halving of the rate (Steiner et al., Biostatistics 2000): S_t = max(0, S_{t-1} + x ln(1/2) +
  (n - x) ln((1 - theta/2)/(1 - theta))). Reported, not flagged: flags come from the window tests.
- Patients likely missed: among valid results, n (theta_ref - p) with Newcombe's interval for the
  difference times n (clamped at 0); among failed tests, failed x theta_ref (Wilson interval of
  theta_ref times failed). theta_ref is the RNA-capable labs' pooled rate (the rest of the
  network's when no RNA-capable lab reports). Likely causes: no RNA-capable method (for drivers
  that DNA panels miss), a failure share above the network's, an EQA error or failed sub-scheme
  for the same biomarker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.special import betainc

from method import noise, stats

RNA_DETECTED = (
    "MET_EX14",
    "ALK",
    "ROS1",
    "RET",
    "NTRK",
)  # fusions and exon skipping: RNA finds them
# The rare drivers whose method classes are compared with RNA-capable labs: those RNA finds and
# DNA panels miss. BRAF V600E and ERBB2 are mutations a DNA method detects: no class difference
# is expected, so they are not tested by class (they are tested in the window like every driver).
CLASS_COMPARED = RNA_DETECTED
DNA_METHODS = ("ngs_dna", "pcr", "ddpcr")
RHO_FLOOR = 0.002
# The intra-class correlation of a beta-binomial lies in (0, 1); the random-effects estimate it is
# read from is not bounded (tau^2 over theta(1 - theta) passes 1 for wild networks), and at 1 or
# more the prior's strength 1/rho - 1 is 0 or negative and the posterior undefined. Above the
# ceiling the prior is all but flat (strength 0.002).
RHO_CEILING = 1.0 - RHO_FLOOR
CLASSES = ("rna_capable", "dna_only", "other", "unknown")


@dataclass(slots=True)
class Cells:
    positive: int = 0
    valid: int = 0
    cells: int = 0
    failed: int = 0
    tests: int = 0
    methods: set[str] = field(default_factory=set)
    parts: list[int] = field(default_factory=list)  # valid results of each summed stratum
    released: list[int] = field(default_factory=list)  # positives of each summed stratum

    def add(self, other: Cells) -> None:
        self.positive += other.positive
        self.valid += other.valid
        self.cells += other.cells
        self.failed += other.failed
        self.tests += other.tests
        self.methods |= other.methods
        self.parts.extend(other.parts)
        self.released.extend(other.released)


def method_class(methods: set[str], rna_methods: tuple[str, ...]) -> str:
    if methods & set(rna_methods):
        return "rna_capable"
    if methods & set(DNA_METHODS):
        return "dna_only"
    if methods - {"any"}:
        return "other"
    return "unknown"


def shrinkage(
    x: int, n: int, theta: float, rho: float, network: float, expected_low: float | None
) -> dict[str, Any]:
    rho = min(max(rho, RHO_FLOOR), RHO_CEILING) if math.isfinite(rho) else RHO_FLOOR
    strength = 1.0 / rho - 1.0
    theta = min(max(theta, 1e-6), 1 - 1e-6)
    a, b = theta * strength + x, (1 - theta) * strength + max(n - x, 0)
    out: dict[str, Any] = {
        "prior_mean": theta,
        "prior_strength": strength,
        "posterior_mean": a / (a + b),
        "p_below_network": float(betainc(a, b, min(max(network, 0.0), 1.0))),
    }
    if expected_low is not None:
        out["p_below_expected"] = float(betainc(a, b, expected_low))
    return out


def sequential(series: list[tuple[str, int, int, float | None]]) -> dict[str, Any]:
    """series: (period, positive, valid, rest-of-network rate), oldest first."""
    observed, expected, cumulative, cusum = [], [], [], []
    o_minus_e, s = 0.0, 0.0
    for _, x, n, theta in series:
        e = n * theta if theta is not None else None
        observed.append(x)
        expected.append(e)
        if e is not None and theta is not None and 0 < theta < 1:
            o_minus_e += x - e
            s = max(0.0, s + x * math.log(0.5) + (n - x) * math.log((1 - theta / 2) / (1 - theta)))
        cumulative.append(o_minus_e)
        cusum.append(s)
    return {
        "periods": [p for p, *_ in series],
        "observed": observed,
        "expected": expected,
        "cumulative_o_minus_e": cumulative,
        "cusum_halving": cusum,
    }


def patients_missed(site: Cells, ref_x: int, ref_n: int) -> dict[str, Any] | None:
    if ref_n <= 0 or site.tests <= 0:
        return None
    theta = ref_x / ref_n
    out: dict[str, Any] = {"reference_rate": theta, "reference_valid": ref_n}
    if site.valid > 0:
        lo, hi = stats.newcombe_difference(ref_x, ref_n, site.positive, site.valid)
        point = site.valid * (theta - site.positive / site.valid)
        out["among_valid"] = {
            "estimate": max(0.0, point),
            "ci95": [max(0.0, site.valid * lo), max(0.0, site.valid * hi)],
        }
    else:
        out["among_valid"] = {"estimate": 0.0, "ci95": [0.0, 0.0]}
    t_lo, t_hi = stats.wilson(ref_x, ref_n)
    out["among_failed"] = {
        "estimate": site.failed * theta,
        "ci95": [site.failed * t_lo, site.failed * t_hi],
    }
    out["estimate"] = out["among_valid"]["estimate"] + out["among_failed"]["estimate"]
    out["ci95"] = [
        out["among_valid"]["ci95"][0] + out["among_failed"]["ci95"][0],
        out["among_valid"]["ci95"][1] + out["among_failed"]["ci95"][1],
    ]
    return out


class _NoiseLike(Protocol):
    kind: str
    table: str
    accepted: bool


def excess_by_site(
    pooled: dict[str, Cells], noises: Mapping[str, _NoiseLike], theta: float
) -> dict[str, float]:
    """Per site, how much its released positives overstate its true ones on average at rate
    theta (noise.expected_excess over its cells, for all sites of a table at once:
    noise.expected_excess_many; 0 for sites whose counts are exact or whose noise is not a
    cell-key table the method models)."""
    out = dict.fromkeys(pooled, 0.0)
    by_table: dict[str, list[str]] = {}
    for site in pooled:
        n = noises.get(site)
        if n is not None and n.kind == "cell_key" and n.accepted:
            by_table.setdefault(n.table, []).append(site)
    for table, sites in sorted(by_table.items()):
        found = noise.expected_excess_many([pooled[s].parts for s in sites], theta, table)
        out.update(zip(sites, found, strict=True))
    return out


def class_excess(excess: dict[str, float], classes: dict[str, str], klass: str) -> float:
    return float(np.sum([v for s, v in excess.items() if classes.get(s) == klass]))
