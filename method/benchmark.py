"""The benchmark for one period: every site against the network and the testing standard.

`compute(inputs, period, standard)` is a pure function of signed inputs; the coordinator calls it
and adds the flag messages (prose), the auditor calls it to recompute. Keys of the result
(existing keys keep their names and meaning; those marked NEW came with method 2026.2):

  period, standard {id, version, sha256}
  method_version                         NEW: METHOD_VERSION of the method that computed this
  method                                 NEW: {pvalue: "mid-P", fdr, alert_q, alarm_q,
                                         funnel_levels, families {family: tests}, window_periods,
                                         rare_drivers, rna_methods, max_noise_scale}
  notes                                  NEW: [{site_id, indicator, note}] indicators not tested
                                         (DP noise not modelled, no reference, ...), with why
  sites.{site}:
    site_id, leaf_index, sequence, standard_version, revoked, policy, status ("ok"/"alert"/"alarm")
    positivity.{biomarker}: positive, valid, rate, ci95, network_rate, limits, status (flag status:
        in_control, alert_low, alarm_high, ...), expected, noise_variance_per_count;
        NEW: funnel_status (position against the drawn limits), reference_rate (the rest of the
        network), reference ("fisher" | "beta-binomial" | "binomial+noise" |
        "beta-binomial+noise"), p_low, p_high (one-sided mid-P against the rest of the network),
        p, q (= p_low and its q: under-detection is what is flagged), p_expected, q_expected
        (below the standard's expected low)
    failure.{specimen}: failed, tests, rate, ci95, max, status; NEW: p, q, basis ("per test: the
        <biomarker> stratum, the one with most tests of this specimen"), strata_failed_sum,
        exact (true: counted from the summary's specimen_tests; absent: the stratum proxy)
    turnaround: ... existing; NEW p, q.   panel: ... existing; NEW p, q
    concordance[]: ... existing; NEW p_ppa, q_ppa, p_npa, q_npa
    patients_likely_missed.{biomarker}: NEW: {estimate, interval [lo, hi], likely_cause} for each
        rare driver the lab finds less often than the reference (a summary of rare_drivers)
    rare_drivers.{biomarker}: NEW: window {positive, valid, failed, tests, rate, ci95, periods},
        method_class, class_rate, p_network, q_network, p_expected, q_expected,
        shrinkage {prior_mean, prior_strength, posterior_mean, p_below_network, p_below_expected},
        sequential {periods, observed, expected, cumulative_o_minus_e, cusum_halving},
        patients_missed {reference_rate, reference_valid, estimate, ci95, among_valid {estimate,
        ci95}, among_failed {estimate, ci95}}, likely_causes [..]
    eqa.{round}: points, max_points, score, passed, errors, technical_failures, outcomes;
        NEW: subschemes.{name} {cases, points, max_points, score, pass_share, passed, errors,
        technical_failures}, persistent_poor
    strata[], flags[]
  network: positivity.{biomarker} {positive, valid, rate, phi, sites; NEW overdispersion {sites,
        phi, chi2, df, p, tau2_dl, tau2, rho, applied, reason}, rho}, strata[], concordance[],
        NEW rare_drivers.{biomarker} {window {positive, valid, rate}, classes.{class} {sites,
        positive, valid, rate}, comparisons.{class} {p, q, reference_class}}
  eqa.{round}: deadline, commitment_sha256, sites
  flags[]: site_id, rule, level, subject, figures, source, message; NEW p, q, direction
        (figures carry p and q too). Rules: positivity_funnel, positivity_below_expected,
        failure_rate, turnaround, panel, concordance, rare_driver_window,
        rare_driver_below_expected, method_class, eqa, eqa_persistent_poor
  trends: periods, sites.{site}.{biomarker}[] {period, positive, valid, rate}
"""

from __future__ import annotations

import gc
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Protocol

import numpy as np

from method import METHOD_VERSION, eqa, hypergeom, noise, pvalues, rare, stats, strata
from method.flags import Test, as_flags, decide, flag
from method.inputs import EqaRoundInput, Inputs, periods_for_trends, window_length
from method.overdispersion import Overdispersion, phi_winsorised
from method.overdispersion import estimate as estimate_overdispersion
from method.standard import Standard
from protos.periods import Period
from protos.periods import parse as parse_period
from protos.rarenet.v1 import summary_pb2 as pb

ALL_METHODS = "all"
MERGED = "any"
Json = dict[str, Any]

__all__ = ["METHOD_VERSION", "compute", "for_site", "window_length"]


def _frac(x: float, n: float) -> float | None:
    return x / n if n else None


def funnel_status(x: int, n: int, limits: stats.FunnelLimits) -> str:
    """Position against the drawn funnel limits, in the words the report uses."""
    return _FUNNEL_WORDS[stats.funnel_position(x, n, limits)]


_FUNNEL_WORDS = {
    "no_data": "no_data",
    "inside": "in_control",
    "below_alarm_limit": "alarm_low",
    "above_alarm_limit": "alarm_high",
    "below_alert_limit": "alert_low",
    "above_alert_limit": "alert_high",
}


def _limits(lim: stats.FunnelLimits) -> Json:
    """The limits as JSON: None where there is no limit (n = 0), never NaN."""
    return {k: (v if v == v else None) for k, v in lim.__dict__.items()}


class _Noise:
    """A site's noise as the method sees it: cell-key perturbation (modelled everywhere) or DP
    geometric noise (modelled for positivity only)."""

    def __init__(self, summary: pb.SiteSummary) -> None:
        dp = summary.policy.differential_privacy
        perturbation = summary.policy.perturbation
        self.kind = ""
        self.scale = 0.0
        self.table = ""
        self.zero_exact = False
        self.accepted, self.reason = True, ""
        self.variance = 0.0
        if dp.enabled:
            self.kind = "dp"
            self.scale = float(dp.noise_scale)
            self.accepted, self.reason = noise.accepted_scale(dp.mechanism, self.scale)
            self.variance = noise.geometric_variance(self.scale) if self.accepted else 0.0
        elif perturbation.mechanism:
            self.kind = "cell_key"
            self.table = perturbation.table
            self.zero_exact = bool(perturbation.zero_exact)
            self.accepted, self.reason = noise.accepted_perturbation(
                perturbation.mechanism,
                perturbation.table,
                int(perturbation.max_noise),
                float(perturbation.noise_variance),
            )
            self.variance = float(perturbation.noise_variance) if self.accepted else 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.kind)

    @property
    def models_all(self) -> bool:
        """Every counted indicator is modelled (cell-key); DP noise only for positivity."""
        return self.kind != "dp"

    def pmf(self, cells: int) -> pvalues.Pmf:
        return _noise_pmf(self.kind, self.table, self.scale, cells)

    @property
    def vectorised(self) -> bool:
        """Tested in the vectorised path: no noise, or a cell-key perturbation the method models."""
        return not self.kind or (self.kind == "cell_key" and self.accepted)

    def weights(self, cells: int, x: int) -> np.ndarray:
        """The noise distribution to weight mid-P values by (a point mass when there is none)."""
        if not self.kind or self.exact_at(x):
            return np.ones(1)
        return self.pmf(cells)

    def counted(self) -> _Noise | None:
        """The noise to model for counts other than positivity (None: no noise to model)."""
        return self if self.kind == "cell_key" else None

    def small(self, expected: float) -> bool:
        """A count whose expectation under the null is small, under a known cell-key table:
        compared with the table's exact rows. Chosen by the expected count, never the observed
        one, so that which test runs does not depend on the count it tests."""
        return self.kind == "cell_key" and self.accepted and expected <= noise.SMALL_COUNT

    def exact_at(self, x: int) -> bool:
        """A released 0 is a true 0 under a zero-exact perturbation: compare it exactly."""
        return self.zero_exact and x == 0


def _noise_pmf(kind: str, table: str, scale: float, cells: int) -> pvalues.Pmf:
    """The pmf of a noise summed over `cells` cells: a cell-key table's or DP geometric."""
    if kind == "cell_key":
        return noise.table_pmf(table, cells)
    return noise.geometric_pmf(scale, cells)


@lru_cache(maxsize=4096)
def _noisy_binomial(
    n: int, target: float, kind: str, table: str, scale: float, cells: int
) -> tuple[int, pvalues.Pmf]:
    """pvalues.with_noise of Bin(n, target) and a noise (_noise_pmf), computed once per (n,
    target, noise) for n up to pvalues.CACHED_PMF_MAX_N, as binomial_pmf is: sites' volumes
    repeat against the same target and table. Read-only."""
    offset, pmf = pvalues.with_noise(
        pvalues.binomial_pmf(n, target), _noise_pmf(kind, table, scale, cells)
    )
    pmf.flags.writeable = False
    return offset, pmf


class _Stratum(Protocol):
    """A stratum's fields by name: a StratumCounts, or its strata.Fields as read."""

    @property
    def biomarker(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def tests(self) -> int: ...
    @property
    def positive(self) -> int: ...
    @property
    def negative(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def withheld(self) -> bool: ...
    @property
    def suppressed_cells(self) -> Collection[str]: ...


def _per_test(site_strata: Iterable[_Stratum], classed: frozenset[str]) -> dict[str, rare.Cells]:
    """Per-test counts (method "all") per biomarker, over specimens, and for the biomarkers in
    `classed` (the rare drivers: their labs are compared by method class) the methods the site
    used (released per-method strata with tests), from a summary's strata (or their Fields, for
    the period's own summaries: read once for every use)."""
    out: dict[str, rare.Cells] = defaultdict(rare.Cells)
    for s in site_strata:
        method = s.method
        if method != ALL_METHODS:
            biomarker = s.biomarker
            if biomarker in classed and s.tests > 0 and not s.withheld:
                out[biomarker].methods.add(method)
            continue
        if s.withheld:
            continue
        cell = out[s.biomarker]
        suppressed = s.suppressed_cells
        positive, negative, tests, failed = s.positive, s.negative, s.tests, s.failed
        if not suppressed or strata.released(False, suppressed):
            cell.positive += positive
            cell.valid += positive + negative
            cell.cells += 1
            cell.parts.append(positive + negative)
            cell.released.append(positive)
        if "failed" not in suppressed:
            cell.tests += tests if tests > failed else failed  # max(tests, failed)
            cell.failed += failed
    return out


def _tails(
    x: int, n: int, x_rest: int, n_rest: int, rho: float, site_noise: _Noise, cells: int
) -> tuple[float, float, str]:
    """(lower, upper, reference) mid-P of a site's count against the rest of the network."""
    if site_noise.enabled and not site_noise.exact_at(x):
        theta = x_rest / n_rest
        offset, pmf = pvalues.with_noise(
            pvalues.beta_binomial_pmf(n, theta, rho), site_noise.pmf(max(cells, 1))
        )
        low, high = pvalues.tails(pmf, x, offset)
        kind = "noise" if site_noise.kind == "dp" else "perturbation"
        return low, high, f"beta-binomial+{kind}" if rho > 0 else f"binomial+{kind}"
    if rho > 0:
        low, high = pvalues.tails(pvalues.beta_binomial_pmf(n, x_rest / n_rest, rho), x)
        return low, high, "beta-binomial"
    low, high = pvalues.fisher_tails(x, n, x_rest, n_rest)
    return low, high, "fisher"


def _tails_vs(
    x: int, n: int, target: float, site_noise: _Noise | None = None, cells: int = 1
) -> tuple[float, float]:
    """Mid-P (lower, upper) of the site's count against a fixed rate (binomial), with the site's
    noise if any."""
    if site_noise is not None and site_noise.enabled and not site_noise.exact_at(x):
        key = (site_noise.kind, site_noise.table, site_noise.scale, max(cells, 1))
        if n <= pvalues.CACHED_PMF_MAX_N:
            offset, pmf = _noisy_binomial(max(int(n), 0), float(target), *key)
        else:
            offset, pmf = pvalues.with_noise(pvalues.binomial_pmf(n, target), _noise_pmf(*key))
        return pvalues.tails(pmf, x, offset)
    return pvalues.tails(pvalues.binomial_pmf(n, target), x)


def _lower_vs(
    x: int, n: int, target: float, site_noise: _Noise | None = None, cells: int = 1
) -> float:
    return _tails_vs(x, n, target, site_noise, cells)[0]


# Mid-P (lower, upper) tails at counts k for the sites at the given row indices.
Tails = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _noise_half(weights: list[np.ndarray]) -> int:
    """The largest shift any site's noise reaches (each pmf spans -half..half)."""
    return (max((len(w) for w in weights), default=1) - 1) // 2


def _fisher_at(
    x: np.ndarray,
    n: np.ndarray,
    x_rest: np.ndarray,
    n_rest: np.ndarray,
    weights: list[np.ndarray],
    upper: bool = True,
) -> Tails:
    """Fisher's tails of every site at every count its noise reaches (x - half..x + half within
    0..n), computed at once (hypergeom.fisher_tails_along), then read shift by shift."""
    half = _noise_half(weights)
    first = np.clip(x - half, 0, n)
    lower, higher = hypergeom.fisher_tails_along(first, 2 * half + 1, n, x_rest, n_rest, upper)

    def at(k: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        column = (k - first[rows]).astype(np.intp)
        return lower[rows, column], higher[rows, column]

    return at


def _binomial_at(n: np.ndarray, target: float) -> Tails:
    return lambda k, rows: pvalues.binomial_tails_many(k, n[rows], target)


# The lower mid-P tail alone, at counts k for the sites at the given row indices.
Tail = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _fisher_lower_at(
    x: np.ndarray,
    n: np.ndarray,
    x_rest: np.ndarray,
    n_rest: np.ndarray,
    weights: list[np.ndarray],
) -> Tail:
    tails_at = _fisher_at(x, n, x_rest, n_rest, weights, upper=False)
    return lambda k, rows: tails_at(k, rows)[0]


def _binomial_lower_at(
    x: np.ndarray, n: np.ndarray, target: float, weights: list[np.ndarray]
) -> Tail:
    """The binomial lower tail of every site at every count its noise reaches (x - half..x +
    half within 0..n), computed at once (pvalues.binomial_lower_along), then read shift by
    shift."""
    half = _noise_half(weights)
    first = np.clip(x - half, 0, n)
    lower = pvalues.binomial_lower_along(first, 2 * half + 1, n, target)
    return lambda k, rows: lower[rows, (k - first[rows]).astype(np.intp)]


def _summed_noise(pmfs: list[np.ndarray]) -> np.ndarray:
    """The pmf of a sum of independent noises, convolved one by one in the order given (only
    for the classes compared: the reference class's sum would be the largest and is not used)."""
    total = np.ones(1)
    for pmf in pmfs:
        total = np.convolve(total, pmf)
    return total


def _noise_matrix(weights: list[np.ndarray]) -> np.ndarray:
    """Each site's noise pmf as one row of a (sites x shifts) matrix, centred on shift 0 (zeros
    beyond its support; every pmf has an odd length, -K..K)."""
    width = max((len(w) for w in weights), default=1)
    centre = (width - 1) // 2
    matrix = np.zeros((len(weights), width))
    for i, w in enumerate(weights):
        half = (len(w) - 1) // 2
        matrix[i, centre - half : centre + half + 1] = w
    return matrix


def _shifts(
    x: np.ndarray, n: np.ndarray, weights: list[np.ndarray]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """For each noise shift d that some site's noise reaches (to 1e-12): the sites it reaches
    (weight > 0: a weight of 0 would add nothing), their weights, the counts x - d, those counts
    clipped to 0..n, and which of them lie inside 0..n."""
    if not weights:
        return
    matrix = _noise_matrix(weights)
    half = (matrix.shape[1] - 1) // 2
    for j, d in enumerate(range(-half, half + 1)):
        w = matrix[:, j]
        if w.max() < 1e-12:
            continue
        rows = np.flatnonzero(w > 0)
        k, n_rows = x[rows] - d, n[rows]
        yield rows, w[rows], k, np.clip(k, 0, n_rows), (k >= 0) & (k <= n_rows)


def _weighted(
    tails_at: Tails,
    x: np.ndarray,
    n: np.ndarray,
    weights: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Mid-P tails of noisy counts, vectorised: the mid-P of X + D at x is the noise-weighted sum
    of the mid-P values of X at x - d (0 below the support, 1 above it, for the lower tail)."""
    low = np.zeros(len(x))
    high = np.zeros(len(x))
    for rows, w, k, clipped, inside in _shifts(x, n, weights):
        lo, hi = tails_at(clipped, rows)
        low[rows] += w * np.where(inside, lo, np.where(k < 0, 0.0, 1.0))
        high[rows] += w * np.where(inside, hi, np.where(k < 0, 1.0, 0.0))
    return np.minimum(low, 1.0), np.minimum(high, 1.0)


def _weighted_lower(
    lower_at: Tail, x: np.ndarray, n: np.ndarray, weights: list[np.ndarray]
) -> np.ndarray:
    """The lower tail of _weighted alone (its upper tail is not computed)."""
    low = np.zeros(len(x))
    for rows, w, k, clipped, inside in _shifts(x, n, weights):
        low[rows] += w * np.where(inside, lower_at(clipped, rows), np.where(k < 0, 0.0, 1.0))
    return np.minimum(low, 1.0)


# A released_sum_tails request: (released sum, valid results of each cell, rate, table).
SumRequest = tuple[int, list[int], float, str]


def _sum_tails_batch(requests: list[SumRequest]) -> list[tuple[float, float]]:
    """noise.released_sum_tails of every request, computed together (one batch per table):
    the small perturbed counts of a biomarker gathered before its per-site loop reads them."""
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(requests)
    for table in sorted({r[3] for r in requests}):
        rows = [i for i, r in enumerate(requests) if r[3] == table]
        lower, upper = noise.released_sum_tails_many(
            [requests[i][0] for i in rows],
            [requests[i][1] for i in rows],
            [requests[i][2] for i in rows],
            table,
        )
        for i, low, high in zip(rows, lower.tolist(), upper.tolist(), strict=True):
            out[i] = (low, high)
    return out


def _small_positivity_tails(
    members: dict[str, rare.Cells],
    noises: dict[str, _Noise],
    big_x: int,
    big_n: int,
    rho: float,
    expected_low: float | None,
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """The perturbed small counts of one biomarker's positivity, by site: (lower, upper) against
    the rest of the network's rate, and the lower tail against the standard's expected low, for
    exactly the sites _positivity compares through the table's exact rows (released_sum_tails)."""
    funnel: list[tuple[str, SumRequest]] = []
    below: list[tuple[str, SumRequest]] = []
    for site, c in members.items():
        site_noise, n = noises[site], c.valid
        if n <= 0 or (site_noise.enabled and not site_noise.accepted):
            continue
        x_rest, n_rest = big_x - c.positive, big_n - n
        if n_rest > 0 and rho == 0 and site_noise.small(n * x_rest / n_rest):
            funnel.append((site, (c.positive, c.parts, x_rest / n_rest, site_noise.table)))
        if expected_low is not None and site_noise.small(n * expected_low):
            below.append((site, (c.positive, c.parts, expected_low, site_noise.table)))
    tails = _sum_tails_batch([request for _, request in funnel + below])
    return (
        {site: tail for (site, _), tail in zip(funnel, tails[: len(funnel)], strict=True)},
        {site: low for (site, _), (low, _) in zip(below, tails[len(funnel) :], strict=True)},
    )


class _Run:
    """One benchmark computation: the tests gathered, then decided together."""

    def __init__(self, standard: Standard) -> None:
        self.standard = standard
        self.tests: list[Test] = []
        self.notes: list[Json] = []
        self.pending: list[tuple[Json, str, str, Test]] = []  # (entry, p key, q key, test)

    def test(
        self,
        entry: Json,
        key: str,
        family: str,
        site: str,
        rule: str,
        subject: str,
        p: float,
        direction: str,
        figures: Json,
        source: str,
        sites: list[str] | None = None,
    ) -> Test:
        t = Test(
            family, site, rule, subject, float(p), direction, figures, source, sites=sites or []
        )
        self.tests.append(t)
        entry["p" + key] = float(p)
        self.pending.append((entry, "p" + key, "q" + key, t))
        return t

    def note(self, site: str, indicator: str, text: str) -> None:
        self.notes.append({"site_id": site, "indicator": indicator, "note": text})


def _positivity(
    run: _Run, per_site: dict[str, dict[str, rare.Cells]], noises: dict[str, _Noise]
) -> tuple[dict[str, dict[str, Json]], dict[str, Json], dict[str, Overdispersion]]:
    standard = run.standard
    on, min_sites, test_level = standard.overdispersion
    alert, alarm = standard.funnel_levels
    names = ("lower998", "lower95", "upper95", "upper998")
    network: dict[str, Json] = {}
    dispersion: dict[str, Overdispersion] = {}
    result: dict[str, dict[str, Json]] = defaultdict(dict)
    biomarkers = sorted({b for cells in per_site.values() for b, c in cells.items() if c.cells})
    for biomarker in biomarkers:
        members = {
            s: c[biomarker]
            for s, c in sorted(per_site.items())
            if c.get(biomarker) and c[biomarker].cells
        }
        sites = list(members)
        xs = [c.positive for c in members.values()]
        ns = [c.valid for c in members.values()]
        big_x, big_n = sum(xs), sum(ns)
        theta = big_x / big_n if big_n else 0.0
        od = estimate_overdispersion(xs, ns, theta, min_sites, test_level)
        rho = od.rho if on else 0.0
        dispersion[biomarker] = od
        network[biomarker] = {
            "positive": big_x,
            "valid": big_n,
            "rate": theta,
            "phi": phi_winsorised(xs, ns, theta),
            "sites": len(xs),
            "overdispersion": {**od.as_dict(), "applied": od.applied and on},
            "rho": rho,
        }
        expected = standard.positivity(biomarker)
        x_arr = np.array(xs, dtype=float)
        n_arr = np.array(ns, dtype=float)
        xr_arr, nr_arr = big_x - x_arr, big_n - n_arr
        limits = stats.funnel_limits_many(n_arr, theta, alert, alarm) if rho == 0 else None
        plain = np.array([noises[s].vectorised for s in sites]) & (n_arr > 0) & (nr_arr > 0)
        weights = [
            noises[s].weights(members[s].cells, members[s].positive) if plain[i] else np.ones(1)
            for i, s in enumerate(sites)
        ]
        low_v = high_v = np.ones(len(sites))
        if rho == 0 and plain.any():
            nn = np.where(plain, n_arr, 1.0)
            xr = np.where(plain, xr_arr, 0.0)
            nr = np.where(plain, nr_arr, 1.0)
            low_v, high_v = _weighted(
                _fisher_at(x_arr, nn, xr, nr, weights),
                x_arr,
                nn,
                weights,
            )
        exp_v = None
        if expected:
            target = float(expected["low"])
            exp_v = _weighted_lower(
                _binomial_lower_at(x_arr, n_arr, target, weights), x_arr, n_arr, weights
            )
        # Python floats and bools for the loop below (indexing numpy arrays one by one is slow)
        limit_rows = list(zip(*(limits[k].tolist() for k in names))) if limits is not None else []
        plain_at, low_at, high_at = plain.tolist(), low_v.tolist(), high_v.tolist()
        expected_at = exp_v.tolist() if exp_v is not None else []
        funnel_source = standard.source("funnel")
        small_funnel, small_expected = _small_positivity_tails(
            members, noises, big_x, big_n, rho, float(expected["low"]) if expected else None
        )
        for i, site in enumerate(sites):
            c = members[site]
            x, n = c.positive, c.valid
            site_noise = noises[site]
            lim = (
                stats.FunnelLimits(*limit_rows[i])
                if limits is not None
                else stats.funnel_limits(n, theta, rho, alert, alarm)
            )
            ci = (
                stats.wilson_with_noise(x, n, c.cells, site_noise.variance)
                if site_noise.variance
                else stats.wilson(x, n)
            )
            x_rest, n_rest = big_x - x, big_n - n
            entry: Json = {
                "positive": x,
                "valid": n,
                "rate": _frac(x, n),
                "ci95": list(ci),
                "network_rate": theta,
                "limits": _limits(lim),
                "status": "in_control",
                "funnel_status": funnel_status(x, n, lim),
                "reference_rate": _frac(x_rest, n_rest),
            }
            if site_noise.variance:
                entry["noise_variance_per_count"] = site_noise.variance
            if expected:
                entry["expected"] = [expected["low"], expected["high"]]
            result[site][biomarker] = entry
            figures = {
                "positive": x,
                "valid": n,
                "rate": entry["rate"],
                "ci95": list(ci),
                "network_rate": theta,
                "reference_rate": entry["reference_rate"],
            }
            if site_noise.enabled and not site_noise.accepted:
                run.note(site, f"positivity {biomarker}", f"not tested: {site_noise.reason}")
                continue
            if n <= 0:
                continue
            if n_rest > 0:
                if rho == 0 and site_noise.small(n * x_rest / n_rest):
                    low, high = small_funnel[site]  # noise.released_sum_tails
                    reference = "binomial+perturbation"
                elif rho == 0 and plain_at[i]:
                    low, high = low_at[i], high_at[i]
                    reference = "fisher+perturbation" if len(weights[i]) > 1 else "fisher"
                else:
                    low, high, reference = _tails(x, n, x_rest, n_rest, rho, site_noise, c.cells)
                entry.update(p_low=low, p_high=high, reference=reference)
                # Flagged one-sided, for under-detection (patients missed); a rate above the
                # network's is reported (p_high, funnel_status) but not flagged: mostly case mix.
                run.test(
                    entry,
                    "",
                    "period",
                    site,
                    "positivity_funnel",
                    biomarker,
                    low,
                    "low",
                    {**figures, "limit": lim.lower998},
                    funnel_source,
                )
            else:
                run.note(site, f"positivity {biomarker}", "not tested: no other site reports it")
            if expected:
                if site_noise.small(n * float(expected["low"])):
                    p = small_expected[site]  # noise.released_sum_tails, lower
                elif exp_v is not None and plain_at[i]:
                    p = expected_at[i]
                else:
                    p = _lower_vs(x, n, float(expected["low"]), site_noise, c.cells)
                run.test(
                    entry,
                    "_expected",
                    "period",
                    site,
                    "positivity_below_expected",
                    biomarker,
                    p,
                    "low",
                    {**figures, "expected_low": expected["low"], "expected_high": expected["high"]},
                    str(expected.get("source", "")),
                )
    return dict(result), network, dispersion


def _failure(
    run: _Run,
    site: str,
    summary: pb.SiteSummary,
    fields: list[strata.Fields],
    site_noise: _Noise,
) -> Json:
    """Failure rate per specimen, each test counted once. From the summary's exact table of tests
    and failed tests per specimen (`specimen_tests`, sent by nodes from this release on) when it has
    one: the entry then says `exact: true`. Otherwise, from nodes before it, the per-test stratum
    (method "all") of the biomarker with the most tests of that specimen stands for the
    specimen's tests (a failed specimen fails every biomarker, so summing over biomarkers would
    count it ~11 times), and the entry has no `exact` key."""
    summed: dict[str, int] = defaultdict(int)
    candidates: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
    for biomarker, method, specimen, tests, _p, _n, failed, _e, withheld, suppressed, _d in fields:
        if (
            method == ALL_METHODS
            and not withheld
            and "failed" not in suppressed
            and specimen != MERGED
        ):
            summed[specimen] += failed
            candidates[specimen].append((max(tests, failed), biomarker, failed))
    counted: dict[str, tuple[int, int, str]] = {}  # specimen: (tests, failed, basis)
    exact = len(summary.specimen_tests) > 0
    if exact:
        for t in summary.specimen_tests:
            if t.withheld or t.specimen == MERGED:
                continue
            tests, failed, _ = counted.get(t.specimen, (0, 0, ""))
            counted[t.specimen] = (
                tests + max(t.tests, t.failed),
                failed + t.failed,
                "per test: the summary's tests of this specimen, failed when no biomarker had a "
                "valid result",
            )
    else:
        for specimen, c in candidates.items():
            tests, biomarker, failed = sorted(c, key=lambda t: (-t[0], t[1]))[0]
            counted[specimen] = (
                tests,
                failed,
                f"per test: the {biomarker} stratum, the one with most tests of this specimen",
            )
    out: Json = {}
    for specimen, (tests, failed, basis) in sorted(counted.items()):
        ceiling = run.standard.max_failure(specimen)
        ci = stats.wilson(failed, tests)
        rate = _frac(failed, tests)
        entry: Json = {
            "failed": failed,
            "tests": tests,
            "rate": rate,
            "ci95": list(ci),
            "max": ceiling,
            "status": "ok",
            "basis": basis,
            "strata_failed_sum": summed[specimen],
        }
        if exact:
            entry["exact"] = True
        out[specimen] = entry
        if ceiling is None or not tests:
            continue
        if site_noise.enabled and (not site_noise.models_all or not site_noise.accepted):
            run.note(
                site,
                f"failure {specimen}",
                "not tested: "
                + (
                    site_noise.reason
                    or "the site adds DP noise to failed and "
                    "tested counts, which the method does not model for failure rates"
                ),
            )
            continue
        p = _tails_vs(failed, tests, ceiling, site_noise.counted(), 1)[1]
        run.test(
            entry,
            "",
            "period",
            site,
            "failure_rate",
            specimen,
            p,
            "high",
            {"failed": failed, "tests": tests, "rate": rate, "ci95": list(ci), "max": ceiling},
            run.standard.source("failure_rate"),
        )
    return out


def _turnaround(run: _Run, site: str, summary: pb.SiteSummary, site_noise: _Noise) -> Json:
    counts: list[int] = []
    histograms = 0
    for h in summary.turnaround:
        if h.withheld:
            continue
        histograms += 1
        if len(counts) < len(h.counts):
            counts.extend([0] * (len(h.counts) - len(counts)))
        for i, c in enumerate(h.counts):
            counts[i] += c
    total = sum(counts)
    target = run.standard.target_days
    if not total:
        return {"tests": 0}
    within = sum(counts[: target + 1])
    share = within / total
    ci = stats.wilson(within, total)
    goal = run.standard.tat_goal
    out: Json = {
        "tests": total,
        "median": stats.histogram_quantile(counts, 0.5),
        "p90": stats.histogram_quantile(counts, 0.9),
        "within_target": within,
        "share_within_target": share,
        "ci95": list(ci),
        "target_days": target,
        "goal": goal,
        "histogram": counts,
        "status": "ok",
    }
    if site_noise.kind == "cell_key" and not site_noise.accepted:
        run.note(site, "turnaround", f"not tested: {site_noise.reason}")
        return out
    cells = histograms * (target + 1)  # within-target is a sum of perturbed bins
    p = _tails_vs(within, total, goal, site_noise.counted(), cells)[0]
    run.test(
        out,
        "",
        "period",
        site,
        "turnaround",
        "all specimens",
        p,
        "low",
        {
            k: out[k]
            for k in (
                "tests",
                "within_target",
                "median",
                "p90",
                "share_within_target",
                "ci95",
                "goal",
                "target_days",
            )
        },
        run.standard.source("turnaround"),
    )
    return out


def _panel(run: _Run, site: str, summary: pb.SiteSummary, site_noise: _Noise) -> Json:
    panel = summary.panel
    if panel.withheld or not panel.patients:
        return {"patients": 0, "withheld": panel.withheld}
    target = run.standard.panel_target
    complete = min(panel.with_all_required, panel.patients)
    share = complete / panel.patients
    ci = stats.wilson(complete, panel.patients)
    out: Json = {
        "patients": panel.patients,
        "with_all_required": panel.with_all_required,
        "share": share,
        "ci95": list(ci),
        "target": target,
        "biomarkers": {b.biomarker: b.with_valid_result / panel.patients for b in panel.biomarkers},
        "status": "ok",
    }
    least = sorted(out["biomarkers"].items(), key=lambda kv: kv[1])[:3]
    missing = [f"{b} ({100 * v:.0f}%)" for b, v in least if v < target]
    if site_noise.kind == "cell_key" and not site_noise.accepted:
        run.note(site, "panel", f"not tested: {site_noise.reason}")
        return out
    p = _tails_vs(complete, panel.patients, target, site_noise.counted(), 1)[0]
    run.test(
        out,
        "",
        "period",
        site,
        "panel_coverage",
        "required panel",
        p,
        "low",
        {
            "patients": panel.patients,
            "with_all_required": panel.with_all_required,
            "share": share,
            "ci95": list(ci),
            "target": target,
            "least_covered": missing,
        },
        run.standard.source("panel"),
    )
    return out


def _concordance_entry(table: pb.ConcordanceTable) -> Json:
    a, b = table.both_positive, table.index_positive_comparator_negative
    c, d = table.index_negative_comparator_positive, table.both_negative
    agree = stats.agreement(a, b, c, d)
    return {
        "kind": table.kind,
        "biomarker": table.biomarker,
        "index_method": table.index_method,
        "comparator_method": table.comparator_method,
        "a": a,
        "b": b,
        "c": c,
        "d": d,
        "excluded_failed": table.excluded_failed,
        "n": agree.n,
        "ppa": agree.ppa,
        "ppa_ci95": agree.ppa_ci,
        "npa": agree.npa,
        "npa_ci95": agree.npa_ci,
        "opa": agree.opa,
        "opa_ci95": agree.opa_ci,
        "kappa": agree.kappa,
        "kappa_se": agree.kappa_se,
        "kappa_ci95": agree.kappa_ci,
    }


def _concordance(run: _Run, site: str, summary: pb.SiteSummary, site_noise: _Noise) -> list[Json]:
    """PPA and NPA against the standard's minimum by an exact one-sided binomial test (mid-P) of
    the agreeing count; kappa is reported, not tested."""
    rules = run.standard.concordance
    out: list[Json] = []
    for table in summary.concordance:
        if table.withheld:
            out.append(
                {
                    "kind": table.kind,
                    "biomarker": table.biomarker,
                    "index_method": table.index_method,
                    "comparator_method": table.comparator_method,
                    "withheld": True,
                }
            )
            continue
        entry = _concordance_entry(table)
        out.append(entry)
        if table.kind == "tissue_plasma" and not rules.get("flag_tissue_plasma", False):
            continue
        subject = f"{table.biomarker} {table.index_method} vs {table.comparator_method}"
        figures = {k: entry[k] for k in ("a", "b", "c", "d", "ppa", "npa", "kappa", "kappa_ci95")}
        for key, agree, pairs, minimum_pairs in (
            ("ppa", entry["a"], entry["a"] + entry["c"], rules.get("min_positive_pairs", 5)),
            ("npa", entry["d"], entry["b"] + entry["d"], rules.get("min_negative_pairs", 10)),
        ):
            minimum = rules.get(f"min_{key}")
            if minimum is None or pairs < minimum_pairs or pairs == 0:
                continue
            if site_noise.kind == "cell_key" and not site_noise.accepted:
                run.note(site, f"concordance {subject}", f"not tested: {site_noise.reason}")
                continue
            p = _tails_vs(agree, pairs, float(minimum), site_noise.counted(), 1)[0]
            run.test(
                entry,
                f"_{key}",
                "period",
                site,
                "concordance",
                subject,
                p,
                "low",
                {
                    **figures,
                    "measure": key.upper(),
                    "agreeing": agree,
                    "pairs": pairs,
                    "minimum": minimum,
                },
                str(rules.get("source", "")),
            )
    return out


def _pooled_concordance(site_tables: dict[str, list[Json]]) -> list[Json]:
    pooled: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for tables in site_tables.values():
        for t in tables:
            if not t.get("withheld"):
                cell = pooled[
                    (t["kind"], t["biomarker"], t["index_method"], t["comparator_method"])
                ]
                for i, k in enumerate(("a", "b", "c", "d", "excluded_failed")):
                    cell[i] += t[k]
    return [
        _concordance_entry(
            pb.ConcordanceTable(
                kind=k,
                biomarker=b,
                index_method=i,
                comparator_method=c,
                both_positive=v[0],
                index_positive_comparator_negative=v[1],
                index_negative_comparator_positive=v[2],
                both_negative=v[3],
                excluded_failed=v[4],
            )
        )
        for (k, b, i, c), v in sorted(pooled.items())
    ]


def _trends(
    per_test: dict[str, dict[str, dict[str, rare.Cells]]], periods: list[Period], sites: list[str]
) -> Json:
    trends: dict[str, Json] = {site: {} for site in sites}
    for p in periods:
        for site, cells in per_test.get(p.label, {}).items():
            if site not in trends:
                continue
            for biomarker, c in sorted(cells.items()):
                if not c.cells:
                    continue
                trends[site].setdefault(biomarker, []).append(
                    {
                        "period": p.label,
                        "positive": c.positive,
                        "valid": c.valid,
                        "rate": _frac(c.positive, c.valid),
                    }
                )
    return {"periods": [p.label for p in periods], "sites": trends}


def _eqa_errors(rounds: list[EqaRoundInput]) -> dict[tuple[str, str], list[str]]:
    """(site, biomarker): EQA problems seen, for the likely cause of missed patients."""
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for entry in rounds:
        try:
            truth = eqa.parse_truth(entry.truth)
        except eqa.EqaError:
            continue
        for site, (leaf, response) in entry.responses.items():
            sheet = eqa.score(entry.round, truth, site, response, leaf)
            for line in sheet.lines:
                if line.outcome in eqa.ERROR_OUTCOMES:
                    seen[(site, line.biomarker)].append(
                        f"EQA {entry.round.round_id}: {line.outcome.replace('_', ' ')}"
                    )
    return seen


def _small_window_tails(
    sites: list[str],
    pooled: dict[str, rare.Cells],
    noises: dict[str, _Noise],
    big_x: int,
    big_n: int,
    rho: float,
    excess: dict[str, float],
    expected_low: float | None,
) -> tuple[dict[str, float], dict[str, float]]:
    """The perturbed small window counts of one rare driver, by site: the lower tail against the
    rest of the network (noise.released_sum_lower: its unbiased total, its rate uncertain) and
    against the standard's expected low (released_sum_tails), for exactly the sites
    _rare_drivers compares through the table's exact rows, computed in one batch per table."""
    total_excess = sum(excess.values())
    network: dict[str, list[tuple[str, int, list[int], float, float]]] = defaultdict(list)
    below: list[str] = []
    requests: list[SumRequest] = []
    for site in sites:
        c, site_noise = pooled[site], noises[site]
        if (site_noise.enabled and not site_noise.accepted) or c.valid <= 0:
            continue
        x_rest, n_rest = big_x - c.positive, big_n - c.valid
        if n_rest > 0 and rho == 0 and site_noise.small(c.valid * x_rest / n_rest):
            x_ref = max(0.0, x_rest - total_excess + excess[site])
            network[site_noise.table].append((site, c.positive, c.parts, x_ref, n_rest))
        if expected_low is not None and site_noise.small(c.valid * expected_low):
            below.append(site)
            requests.append((c.positive, c.parts, expected_low, site_noise.table))
    lower: dict[str, float] = {}
    for table, rows in sorted(network.items()):
        found = noise.released_sum_lower_many(
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
            [r[4] for r in rows],
            table,
        )
        lower.update(zip([r[0] for r in rows], found, strict=True))
    tails = _sum_tails_batch(requests)
    return lower, {site: low for site, (low, _) in zip(below, tails, strict=True)}


def _rare_drivers(
    run: _Run,
    by_period: dict[str, dict[str, pb.SiteSummary]],
    per_test: dict[str, dict[str, dict[str, rare.Cells]]],
    window: list[Period],
    current: dict[str, pb.SiteSummary],
    noises: dict[str, _Noise],
    positivity_network: dict[str, Json],
    dispersion: dict[str, Overdispersion],
    eqa_errors: dict[tuple[str, str], list[str]],
) -> tuple[dict[str, dict[str, Json]], dict[str, Json]]:
    standard = run.standard
    per_period = {p.label: per_test.get(p.label, {}) for p in window}
    out: dict[str, dict[str, Json]] = defaultdict(dict)
    network_out: dict[str, Json] = {}
    for biomarker in standard.rare_drivers:
        pooled: dict[str, rare.Cells] = {}
        methods: dict[str, set[str]] = defaultdict(set)
        series: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        period_totals: dict[str, tuple[int, int]] = {}
        for p in window:
            tx = tn = 0
            for site, cells in per_period[p.label].items():
                c = cells.get(biomarker)
                if c is None:
                    continue
                if c.methods:
                    methods[site] |= c.methods
                if not (c.cells or c.tests):
                    continue
                if site not in pooled:
                    pooled[site] = rare.Cells()
                pooled[site].add(c)
                series[site].append((p.label, c.positive, c.valid))
                tx += c.positive
                tn += c.valid
            period_totals[p.label] = (tx, tn)
        sites = sorted(s for s in pooled if s in current and pooled[s].valid + pooled[s].tests > 0)
        if not sites:
            continue
        big_x = sum(c.positive for c in pooled.values())
        big_n = sum(c.valid for c in pooled.values())
        rna_methods = standard.rna_methods
        classes = {s: rare.method_class(methods[s], rna_methods) for s in pooled}
        class_totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        class_noises: dict[str, list[np.ndarray]] = defaultdict(list)
        class_parts: dict[str, list[int]] = defaultdict(list)
        class_released: dict[str, list[int]] = defaultdict(list)
        class_tables: dict[str, set[str]] = defaultdict(set)
        for s, c in pooled.items():
            if s not in noises or noises[s].vectorised:  # DP sites are left out of class totals
                class_parts[classes[s]].extend(c.parts)
                class_released[classes[s]].extend(c.released)
                class_tables[classes[s]].add(noises[s].table if s in noises else "")
                class_noises[classes[s]].append(
                    noises[s].weights(c.cells, c.positive) if s in noises else np.ones(1)
                )
                t = class_totals[classes[s]]
                t[0] += c.positive
                t[1] += c.valid
                t[2] += 1
        ref = class_totals.get("rna_capable")
        theta_net = big_x / big_n if big_n else 0.0
        excess = rare.excess_by_site(pooled, noises, theta_net)  # small counts' upward bias
        expected = standard.positivity(biomarker)
        rho_dl = 4 * dispersion[biomarker].tau2_dl if biomarker in dispersion else 0.0
        comparisons: Json = {}
        network_out[biomarker] = {
            "window": {
                "periods": [p.label for p in window],
                "positive": big_x,
                "valid": big_n,
                "rate": theta_net,
            },
            "classes": {
                k: {"sites": v[2], "positive": v[0], "valid": v[1], "rate": _frac(v[0], v[1])}
                for k, v in sorted(class_totals.items())
            },
            "comparisons": comparisons,
        }
        if ref and ref[1] > 0 and biomarker in rare.CLASS_COMPARED:
            for klass, (cx, cn, csites) in sorted(class_totals.items()):
                if klass == "rna_capable" or cn <= 0:
                    continue
                tables = class_tables[klass]
                small = cn * ref[0] / ref[1] <= noise.SMALL_COUNT  # expected, not observed
                if len(tables) == 1 and "" not in tables and small:
                    # a small perturbed class count: the likelihood ratio of its released
                    # cells through the table's exact rows, against the RNA-capable labs' rate
                    # (unbiased, and uncertain: noise.reference_nodes)
                    ref_x = max(0.0, ref[0] - rare.class_excess(excess, classes, "rna_capable"))
                    p_class = noise.released_lr_lower(
                        class_released[klass],
                        class_parts[klass],
                        ref_x / ref[1],
                        next(iter(tables)),
                        noise.reference_nodes(ref_x, ref[1], cn),
                    )
                else:
                    offset, pmf = pvalues.hypergeometric_pmf(cx + ref[0], cn, cn + ref[1])
                    spread = _summed_noise(class_noises[klass])
                    if len(spread) > 1:  # the class's perturbed count: Fisher's pmf with its noise
                        p_class = pvalues.noisy_lower_tail(pmf, offset, spread, cx)
                    else:
                        p_class = pvalues.tails(pmf, cx, offset)[0]
                members = [s for s in sites if classes[s] == klass and noises[s].vectorised]
                comparisons[klass] = {"reference_class": "rna_capable"}
                run.test(
                    comparisons[klass],
                    "",
                    "method_class",
                    members[0] if members else "",
                    "method_class",
                    biomarker,
                    p_class,
                    "low",
                    {
                        "method_class": klass,
                        "class_positive": cx,
                        "class_valid": cn,
                        "class_rate": cx / cn,
                        "class_sites": csites,
                        "reference_class": "rna_capable",
                        "reference_positive": ref[0],
                        "reference_valid": ref[1],
                        "reference_rate": ref[0] / ref[1],
                    },
                    standard.source("reference_methods"),
                    sites=members,
                )
        rho_net = positivity_network.get(biomarker, {}).get("rho", 0.0)
        wx = np.array([pooled[s].positive for s in sites], dtype=float)
        wn = np.array([pooled[s].valid for s in sites], dtype=float)
        usable = (wn > 0) & (big_n - wn > 0)
        vectorised = [noises[s].vectorised for s in sites]
        window_weights = [
            noises[s].weights(pooled[s].cells, pooled[s].positive) if vectorised[i] else np.ones(1)
            for i, s in enumerate(sites)
        ]
        wn1 = np.where(usable, wn, 1.0)
        wxr = np.where(usable, big_x - wx, 0.0)
        wnr = np.where(usable, big_n - wn, 1.0)
        fast_low = (  # read only without overdispersion (else the beta-binomial, _tails)
            _weighted_lower(
                _fisher_lower_at(wx, wn1, wxr, wnr, window_weights),
                wx,
                wn1,
                window_weights,
            ).tolist()
            if rho_net == 0
            else []
        )
        fast_expected: list[float] = []
        if expected:
            target = float(expected["low"])
            fast_expected = _weighted_lower(
                _binomial_lower_at(wx, wn, target, window_weights),
                wx,
                wn,
                window_weights,
            ).tolist()
        net_failed = sum(c.failed for c in pooled.values())
        net_tests = sum(c.tests for c in pooled.values())
        wf = np.array([min(pooled[s].failed, pooled[s].tests) for s in sites], dtype=float)
        wt = np.array([pooled[s].tests for s in sites], dtype=float)
        testable = (wt > 0) & (net_tests - wt > 0)
        fail_high = np.where(
            testable,
            pvalues.fisher_tails_many(
                np.where(testable, wf, 0.0),
                np.where(testable, wt, 1.0),
                np.where(testable, np.maximum(net_failed - wf, 0.0), 0.0),
                np.where(testable, net_tests - wt, 1.0),
            )[1],
            1.0,
        ).tolist()
        small_network, small_expected = _small_window_tails(
            sites,
            pooled,
            noises,
            big_x,
            big_n,
            rho_net,
            excess,
            float(expected["low"]) if expected else None,
        )
        for index, site in enumerate(sites):
            c = pooled[site]
            site_noise = noises[site]
            x_rest, n_rest = big_x - c.positive, big_n - c.valid
            entry: Json = {
                "window": {
                    "positive": c.positive,
                    "valid": c.valid,
                    "failed": c.failed,
                    "tests": c.tests,
                    "rate": _frac(c.positive, c.valid),
                    "ci95": list(stats.wilson(c.positive, c.valid)) if c.valid else None,
                    "periods": [label for label, _, _ in series[site]],
                },
                "method_class": classes[site],
                "class_rate": _frac(class_totals[classes[site]][0], class_totals[classes[site]][1]),
            }
            out[site][biomarker] = entry
            ref_x, ref_n = (ref[0], ref[1]) if ref and ref[1] > 0 else (x_rest, n_rest)
            if classes[site] == "rna_capable" and ref and site_noise.vectorised:
                ref_x, ref_n = ref[0] - c.positive, ref[1] - c.valid
                if ref_n <= 0:
                    ref_x, ref_n = x_rest, n_rest
            theta_ref = ref_x / ref_n if ref_n > 0 else theta_net
            entry["shrinkage"] = rare.shrinkage(
                c.positive,
                c.valid,
                theta_ref,
                rho_dl,
                theta_net,
                float(expected["low"]) if expected else None,
            )
            seq = []
            for label, x, n in series[site]:
                tx, tn = period_totals[label]
                seq.append((label, x, n, _frac(tx - x, tn - n)))
            entry["sequential"] = rare.sequential(seq)
            missed = rare.patients_missed(c, ref_x, ref_n)
            entry["patients_missed"] = missed
            causes = []
            if biomarker in rare.RNA_DETECTED and classes[site] in ("dna_only", "other"):
                causes.append("no RNA-capable method")
            if fail_high[index] < 0.05:
                causes.append("failures above the network's")
            causes.extend(eqa_errors.get((site, biomarker), []))
            entry["likely_causes"] = causes
            if site_noise.enabled and not site_noise.accepted:
                run.note(site, f"rare driver {biomarker}", f"not tested: {site_noise.reason}")
                continue
            if c.valid <= 0:
                continue
            figures = {
                "positive": c.positive,
                "valid": c.valid,
                "rate": _frac(c.positive, c.valid),
                "periods": len(series[site]),
                "reference_rate": _frac(x_rest, n_rest),
                "method_class": classes[site],
                "patients_missed": missed["estimate"] if missed else None,
                "patients_missed_ci95": missed["ci95"] if missed else None,
                "likely_causes": causes,
            }
            if n_rest > 0:
                if rho_net == 0 and site_noise.small(c.valid * x_rest / n_rest):
                    low = small_network[site]  # noise.released_sum_lower
                    reference = "binomial+perturbation"
                elif rho_net == 0 and vectorised[index]:
                    low = fast_low[index]
                    reference = (
                        "fisher+perturbation" if len(window_weights[index]) > 1 else "fisher"
                    )
                else:
                    low, _, reference = _tails(
                        c.positive, c.valid, x_rest, n_rest, rho_net, site_noise, c.cells
                    )
                entry["reference"] = reference
                run.test(
                    entry,
                    "_network",
                    "window",
                    site,
                    "rare_driver_window",
                    biomarker,
                    low,
                    "low",
                    figures,
                    standard.source("funnel"),
                )
            if expected:
                p_expected = (
                    small_expected[site]  # noise.released_sum_tails, lower
                    if site_noise.small(c.valid * float(expected["low"]))
                    else fast_expected[index]
                    if vectorised[index]
                    else _lower_vs(c.positive, c.valid, float(expected["low"]), site_noise, c.cells)
                )
                run.test(
                    entry,
                    "_expected",
                    "window",
                    site,
                    "rare_driver_below_expected",
                    biomarker,
                    p_expected,
                    "low",
                    {**figures, "expected_low": expected["low"]},
                    str(expected.get("source", "")),
                )
    return dict(out), network_out


def _eqa(
    rounds: list[EqaRoundInput], period: Period, standard: Standard
) -> tuple[dict[str, Json], list[Json]]:
    """Scores of the rounds whose deadline falls in the period, per sub-scheme; persistent poor
    performance over those rounds and the ones before them."""
    out: dict[str, Json] = {}
    flags: list[Json] = []
    ordered = sorted(rounds, key=lambda r: (r.round.deadline, r.round.round_id))
    poor_history: dict[str, list[bool | None]] = defaultdict(list)
    all_sites = sorted({s for r in ordered for s in r.responses})
    poor_need, poor_window = standard.persistent_poor
    for entry in ordered:
        try:
            truth = eqa.parse_truth(entry.truth)
            schemes = eqa.parse_schemes(entry.truth)
        except eqa.EqaError:
            continue
        in_period = period.start.isoformat() <= entry.round.deadline <= period.end.isoformat()

        def mark(cases: int, announced: float = entry.round.pass_share) -> float:
            return standard.eqa_pass_share(cases, announced)

        sheets: Json = {}
        for site in all_sites:
            if site not in entry.responses:
                poor_history[site].append(None)
                continue
            leaf, response = entry.responses[site]
            sheet = eqa.score(entry.round, truth, site, response, leaf, mark, schemes)
            parts = eqa.subschemes(sheet, mark, schemes)
            poor_history[site].append(not sheet.passed)
            if not in_period:
                continue
            persistent = eqa.persistent_poor(poor_history[site], poor_need, poor_window)
            sheets[site] = {
                "points": sheet.points,
                "max_points": sheet.max_points,
                "score": sheet.score,
                "passed": sheet.passed,
                "errors": sheet.errors,
                "technical_failures": sheet.technical_failures,
                "outcomes": {
                    f"{line.sample_id}/{line.biomarker}": line.outcome for line in sheet.lines
                },
                "subschemes": {name: part.as_dict() for name, part in parts.items()},
                "persistent_poor": persistent,
            }
            if not sheet.passed:
                failed_parts = {n: p.as_dict() for n, p in parts.items() if not p.passed}
                wrong = [
                    f"{line.sample_id} {line.biomarker} ({line.outcome.replace('_', ' ')})"
                    for line in sheet.lines
                    if line.outcome != "correct"
                ]
                flags.append(
                    flag(
                        site,
                        "eqa",
                        "alarm",
                        entry.round.round_id,
                        {
                            k: sheets[site][k]
                            for k in (
                                "points",
                                "max_points",
                                "score",
                                "errors",
                                "technical_failures",
                            )
                        }
                        | {
                            "failed_subschemes": failed_parts,
                            "not_correct": wrong,
                            "pass_share": sheet.pass_share,
                        },
                        standard.source("eqa"),
                    )
                )
            if persistent:
                taken = [h for h in poor_history[site] if h is not None][-poor_window:]
                flags.append(
                    flag(
                        site,
                        "eqa_persistent_poor",
                        "alarm",
                        entry.round.round_id,
                        {
                            "poor_rounds": sum(bool(h) for h in taken),
                            "rounds": len(taken),
                            "rule": f"{poor_need} of {poor_window}",
                        },
                        standard.source("eqa"),
                    )
                )
        if in_period:
            out[entry.round.round_id] = {
                "deadline": entry.round.deadline,
                "commitment_sha256": entry.round.commitment_sha256,
                "sites": sheets,
            }
    return out, flags


def _likely_missed(rare_drivers: dict[str, Json]) -> Json:
    """Per rare driver where the lab finds fewer than the reference: the estimate of patients
    likely missed, its 95% interval and the likely cause (the report's summary of rare_drivers)."""
    out: Json = {}
    for biomarker, entry in sorted(rare_drivers.items()):
        missed = entry.get("patients_missed")
        if not missed or missed["among_valid"]["estimate"] <= 0:
            continue
        out[biomarker] = {
            "estimate": missed["estimate"],
            "interval": missed["ci95"],
            "likely_cause": "; ".join(entry["likely_causes"]) or "not identified",
        }
    return out


def _status_from(entry: Json, test: Test) -> None:
    if test.level and test.rule == "positivity_funnel":
        entry["status"] = f"{test.level}_{test.direction}"
    elif test.level and "status" in entry and test.rule != "positivity_below_expected":
        if entry["status"] in ("ok", "alert") or test.level == "alarm":
            entry["status"] = test.level


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Pause Python's cyclic garbage collector, then restore it as it was.

    A benchmark allocates millions of small dicts and lists (the result alone holds several per
    stratum) and none of them form reference cycles; while the heap grows, the collector keeps
    traversing all of it to find nothing (measured: 2.4 of 5.6 CPU seconds at 1,000 sites).
    Reference counting still frees everything as usual. Overlapping computations in threads
    leave it as the first found it: only the one that turned it off turns it back on.

    Turned back on, the collector would find every object made meanwhile in its youngest
    generation and traverse them all at its next allocation (measured: 0.5-1.2 CPU seconds at
    3,000 sites, for nothing). So they are first moved to the oldest generation, as survivors of
    earlier collections would be, without a traversal (gc.freeze then gc.unfreeze): they are
    examined at the next full collection, which Python schedules by the size of that
    generation. Any cycle made meanwhile (by this or another thread) is collected then."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()  # every tracked object to the permanent generation, counts reset
            gc.unfreeze()  # ... and back into the oldest generation, none traversed
            gc.enable()


def compute(data: Inputs, period: str, standard: Standard) -> Json:
    """The benchmark from signed inputs alone (no database): what an auditor recomputes."""
    with _without_cycle_collection():
        return _compute(data, period, standard)


def _compute(data: Inputs, period: str, standard: Standard) -> Json:
    by_period_all, revoked = data.by_period, data.revoked
    p = parse_period(period)
    latest = by_period_all.get(p.label, {})
    summaries = {site: s for site, (_, s) in latest.items()}
    plain = {
        label: {site: s for site, (_, s) in entries.items()}
        for label, entries in by_period_all.items()
    }
    # each site's noise as its latest summary in the window states it (the period's if it has one)
    noises = {site: _Noise(s) for site, s in summaries.items()}
    for label in reversed(plain):
        noises.update({site: _Noise(s) for site, s in plain[label].items() if site not in noises})
    run = _Run(standard)
    alert_q, alarm_q = standard.q_levels
    classed = frozenset(standard.rare_drivers)
    fields = strata.read(summaries)
    per_test = {
        label: {
            site: _per_test(fields[site] if label == p.label else s.strata, classed)
            for site, s in entries.items()
        }
        for label, entries in plain.items()
    }
    positivity, network, dispersion = _positivity(run, per_test.get(p.label, {}), noises)
    window = periods_for_trends(p, window_length(p, standard.window_quarters))
    eqa_results, eqa_flags = _eqa(data.eqa_rounds, p, standard)
    rare_sites, rare_network = _rare_drivers(
        run,
        plain,
        per_test,
        window,
        summaries,
        noises,
        network,
        dispersion,
        _eqa_errors(data.eqa_rounds),
    )
    strata_rows, network_strata = strata.rows_and_network(fields, *standard.funnel_levels)
    sites: dict[str, Json] = {}
    concordance_by_site = {}
    for site, summary in sorted(summaries.items()):
        concordance_by_site[site] = _concordance(run, site, summary, noises[site])
        if noises[site].enabled and not noises[site].accepted:
            run.note(site, "noise", noises[site].reason)
        sites[site] = {
            "site_id": site,
            "leaf_index": latest[site][0],
            "sequence": summary.sequence,
            "standard_version": summary.standard_version,
            "revoked": site in revoked,
            "policy": {
                "min_denominator": summary.policy.min_denominator,
                "small_stratum_action": summary.policy.small_stratum_action,
                "small_count_suppression": summary.policy.small_count_suppression,
            },
            "positivity": positivity.get(site, {}),
            "failure": _failure(run, site, summary, fields[site], noises[site]),
            "turnaround": _turnaround(run, site, summary, noises[site]),
            "panel": _panel(run, site, summary, noises[site]),
            "concordance": concordance_by_site[site],
            "rare_drivers": rare_sites.get(site, {}),
            "patients_likely_missed": _likely_missed(rare_sites.get(site, {})),
            "eqa": {r: e["sites"][site] for r, e in eqa_results.items() if site in e["sites"]},
        }
    families = decide(run.tests, alert_q, alarm_q)
    for entry, _pkey, qkey, test in run.pending:
        entry[qkey] = test.q
        if test.level:  # only a flagged test changes a status
            _status_from(entry, test)
    flags = as_flags(run.tests) + eqa_flags
    flags.sort(key=lambda f: (f["site_id"], f["level"] != "alarm", f["rule"], f["subject"]))
    flags_by_site: dict[str, list[Json]] = defaultdict(list)
    for f in flags:
        flags_by_site[f["site_id"]].append(f)
    for site in sites:
        sites[site]["strata"] = strata_rows[site]
        sites[site]["flags"] = flags_by_site[site]
        levels = {f["level"] for f in sites[site]["flags"]}
        sites[site]["status"] = (
            "alarm" if "alarm" in levels else "alert" if "alert" in levels else "ok"
        )
    return {
        "period": p.label,
        "method_version": METHOD_VERSION,
        "method": {
            "pvalue": "mid-P (Lancaster 1961), one-sided; two-sided = twice the smaller tail",
            "fdr": "Benjamini-Hochberg within each family (Jones, Ohlssen & Spiegelhalter 2008)",
            "alert_q": alert_q,
            "alarm_q": alarm_q,
            "funnel_levels": list(standard.funnel_levels),
            "families": families,
            "window_periods": [w.label for w in window],
            "rare_drivers": standard.rare_drivers,
            "rna_methods": list(standard.rna_methods),
            "max_noise_scale": noise.MAX_NOISE_SCALE,
        },
        "standard": {"id": standard.id, "version": standard.version, "sha256": standard.sha256},
        "sites": sites,
        "network": {
            "positivity": network,
            "strata": network_strata,
            "concordance": _pooled_concordance(concordance_by_site),
            "rare_drivers": rare_network,
        },
        "eqa": eqa_results,
        "flags": flags,
        "notes": run.notes,
        "trends": _trends(per_test, periods_for_trends(p), list(sites)),
    }


def for_site(benchmark: Json, site_id: str) -> Json:
    """A site's own view: its section in full, peers as anonymous points (no names). Peers are
    ordered by what is shown of them, so the order reveals nothing the page does not."""
    own = benchmark["sites"].get(site_id)
    shown = sorted(
        (
            {
                "positivity": {
                    b: {"positive": v["positive"], "valid": v["valid"], "rate": v["rate"]}
                    for b, v in entry["positivity"].items()
                },
                "status": entry["status"],
            }
            for other, entry in benchmark["sites"].items()
            if other != site_id
        ),
        key=lambda peer: json.dumps(peer, sort_keys=True),
    )
    peers = [{"peer": f"peer-{n}", **peer} for n, peer in enumerate(shown, start=1)]
    return {
        "period": benchmark["period"],
        "method_version": benchmark.get("method_version"),
        "standard": benchmark["standard"],
        "site": own,
        "network": {"positivity": benchmark["network"]["positivity"]},
        "peers": peers,
    }
