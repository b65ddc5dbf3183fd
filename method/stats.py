"""Descriptive statistics for benchmarks (../shared/reference, section 6).

- Wilson score intervals for proportions (as statsmodels proportion_confint(method="wilson")).
- Newcombe's hybrid score interval for a difference of proportions (Newcombe, Stat Med 1998,
  method 10; statsmodels confint_proportions_2indep(method="newcomb")).
- Funnel limits with interpolation (Spiegelhalter, Stat Med 2005, Appendix A.1.1) at the standard's
  [funnel] alert and alarm levels, exact binomial, or beta-binomial under overdispersion.
- Cohen's kappa with the Fleiss-Cohen-Everitt (1969) large-sample standard error.
- PPA/NPA/OPA for 2x2 tables (CLSI EP12: a both positive, b index+/comparator-,
  c index-/comparator+, d both negative).
Flags are not decided here: see method.flags (p-values and false-discovery control).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from method import pvalues
from method.distributions import binom_cdf, binom_ppf

Z95 = 1.959964
Z998 = 3.090232


def wilson(x: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n <= 0:
        return (0.0, 1.0)
    p = x / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denom = 1 + z2 / n
    return (max(0.0, (centre - half) / denom), min(1.0, (centre + half) / denom))


def geometric_noise_variance(scale: float) -> float:
    """Variance of two-sided geometric noise with P(k) proportional to exp(-|k|/scale)."""
    if scale <= 0:
        return 0.0
    alpha = math.exp(-1.0 / scale)
    return 2 * alpha / (1 - alpha) ** 2


def wilson_with_noise(
    x: int, n: int, cells: int, noise_variance: float, z: float = Z95
) -> tuple[float, float]:
    """Wilson interval widened for noisy counts: x and the negatives each carry the noise of `cells`
    strata; by the delta method var(x/n) grows by cells*V*((1-p)^2 + p^2)/n^2."""
    lo, hi = wilson(x, n, z)
    if n <= 0 or noise_variance <= 0:
        return lo, hi
    p = x / n
    extra = z * math.sqrt(cells * noise_variance * ((1 - p) ** 2 + p**2)) / n
    return max(0.0, lo - extra), min(1.0, hi + extra)


def _cdf(n: int, theta: float, rho: float) -> np.ndarray:
    return np.minimum(np.cumsum(pvalues.beta_binomial_pmf(n, theta, rho)), 1.0)


def interpolated_limit(cdf: np.ndarray, p: float) -> float:
    """Spiegelhalter's interpolated limit at probability p from a count distribution's CDF."""
    n = len(cdf) - 1
    if n <= 0:
        return float("nan")
    r = int(np.searchsorted(cdf, p - 1e-12, side="left"))  # smallest r with F(r) >= p
    r = min(r, n)
    below = cdf[r - 1] if r > 0 else 0.0
    mass = cdf[r] - below
    alpha = (cdf[r] - p) / mass if mass > 0 else 0.0
    return float(min(1.0, max(0.0, (r - alpha) / n)))


def binomial_limit(n: int, theta: float, p: float) -> float:
    """Spiegelhalter's interpolated exact binomial limit for a proportion, at probability p."""
    if n <= 0:
        return float("nan")
    return interpolated_limit(_cdf(n, theta, 0.0), p)


@dataclass(frozen=True)
class FunnelLimits:
    lower998: float
    lower95: float
    upper95: float
    upper998: float


@lru_cache(maxsize=65536)
def funnel_limits(
    n: int, theta: float, rho: float = 0.0, alert: float = 0.95, alarm: float = 0.998
) -> FunnelLimits:
    """Funnel limits at the two-sided levels `alert` and `alarm` (the standard's [funnel]): exact
    binomial with interpolation, or beta-binomial with intra-class correlation rho when
    overdispersion is applied (the same interpolation; rho = 0 is the binomial, so the limits
    widen continuously). The key names keep the default levels (95%, 99.8%)."""
    if n <= 0:
        nan = float("nan")
        return FunnelLimits(nan, nan, nan, nan)
    cdf = _cdf(n, theta, rho)
    return FunnelLimits(
        interpolated_limit(cdf, (1 - alarm) / 2),
        interpolated_limit(cdf, (1 - alert) / 2),
        interpolated_limit(cdf, 1 - (1 - alert) / 2),
        interpolated_limit(cdf, 1 - (1 - alarm) / 2),
    )


def funnel_position(x: int, n: int, limits: FunnelLimits) -> str:
    """Where a point lies against the drawn limits (descriptive; flags come from q-values)."""
    if n <= 0:
        return "no_data"
    rate = x / n
    if rate < limits.lower998:
        return "below_alarm_limit"
    if rate > limits.upper998:
        return "above_alarm_limit"
    if rate < limits.lower95:
        return "below_alert_limit"
    if rate > limits.upper95:
        return "above_alert_limit"
    return "inside"


def newcombe_difference(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Interval for p1 - p2 by Newcombe's hybrid score method (method 10) from Wilson intervals."""
    if n1 <= 0 or n2 <= 0:
        return (-1.0, 1.0)
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


@dataclass(frozen=True)
class Agreement:
    n: int
    ppa: float | None
    ppa_ci: tuple[float, float] | None
    npa: float | None
    npa_ci: tuple[float, float] | None
    opa: float | None
    opa_ci: tuple[float, float] | None
    kappa: float | None
    kappa_se: float | None
    kappa_ci: tuple[float, float] | None


def cohens_kappa(
    a: int, b: int, c: int, d: int, z: float = Z95
) -> tuple[float, float, tuple[float, float]] | None:
    """Kappa, its Fleiss-Cohen-Everitt standard error, and kappa +/- z*SE clipped to [-1, 1].

    Rows are the index test (positive, negative), columns the comparator. None when undefined
    (no pairs, or chance agreement is 1).
    """
    n = a + b + c + d
    if n == 0:
        return None
    # Python floats: the arithmetic numpy scalars did, in the same order, at a tenth of the cost;
    # the chance agreement by numpy's dot product as before (its sum is BLAS's, fused or not).
    p00, p01, p10, p11 = a / n, b / n, c / n, d / n
    row0, row1, col0, col1 = p00 + p01, p10 + p11, p00 + p10, p01 + p11
    po = p00 + p11
    pe = float(np.array([row0, row1]) @ np.array([col0, col1]))
    if pe >= 1.0:
        return None
    kappa = (po - pe) / (1 - pe)
    term_a = (
        p00 * (1 - (row0 + col0) * (1 - kappa)) ** 2 + p11 * (1 - (row1 + col1) * (1 - kappa)) ** 2
    )
    term_b = (1 - kappa) ** 2 * (p01 * (col0 + row1) ** 2 + p10 * (col1 + row0) ** 2)
    term_c = (kappa - pe * (1 - kappa)) ** 2
    var = (term_a + term_b - term_c) / ((1 - pe) ** 2 * n)
    se = math.sqrt(max(var, 0.0))
    return kappa, se, (max(-1.0, kappa - z * se), min(1.0, kappa + z * se))


def agreement(a: int, b: int, c: int, d: int) -> Agreement:
    n = a + b + c + d

    def prop(x: int, m: int) -> tuple[float | None, tuple[float, float] | None]:
        return (x / m, wilson(x, m)) if m > 0 else (None, None)

    ppa, ppa_ci = prop(a, a + c)
    npa, npa_ci = prop(d, b + d)
    opa, opa_ci = prop(a + d, n)
    k = cohens_kappa(a, b, c, d)
    return Agreement(
        n,
        ppa,
        ppa_ci,
        npa,
        npa_ci,
        opa,
        opa_ci,
        k[0] if k else None,
        k[1] if k else None,
        k[2] if k else None,
    )


def histogram_quantile(counts: list[int], q: float) -> int | None:
    """The smallest bin value d such that at least q of the observations are <= d."""
    total = sum(counts)
    if total == 0:
        return None
    need = q * total
    running = 0
    for value, count in enumerate(counts):
        running += count
        if running >= need - 1e-9:
            return value
    return len(counts) - 1


def _distinct_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (a, b) pairs, and for each original position the index of its pair (what
    np.unique(..., axis=0, return_inverse=True) gives, by one sort instead of its slower
    row-wise comparison)."""
    order = np.lexsort((b, a))
    sorted_a, sorted_b = a[order], b[order]
    first = np.ones(len(a), dtype=bool)  # the first of each run of equal pairs
    first[1:] = (sorted_a[1:] != sorted_a[:-1]) | (sorted_b[1:] != sorted_b[:-1])
    back = np.empty(len(a), dtype=np.intp)
    back[order] = np.cumsum(first) - 1
    return sorted_a[first], sorted_b[first], back


def funnel_limits_many(
    ns: np.ndarray, theta: np.ndarray | float, alert: float = 0.95, alarm: float = 0.998
) -> dict[str, np.ndarray]:
    """Exact binomial funnel limits (rho = 0) for many denominators at once, against one rate or
    each against its own (theta an array like ns): the same interpolation as funnel_limits, with
    scipy's binomial quantile and CDF, computed once per distinct (n, theta). NaN where n = 0."""
    all_n = np.asarray(ns, dtype=float)
    all_theta = np.broadcast_to(np.asarray(theta, dtype=float), all_n.shape)
    n, rate, back = _distinct_pairs(all_n, all_theta)
    inside = (rate > 0.0) & (rate < 1.0)
    safe = np.where(inside, rate, 0.5)  # at a rate of 0 or 1 the limits are 0 or 1: no quantile
    out: dict[str, np.ndarray] = {}
    for name, p in (
        ("lower998", (1 - alarm) / 2),
        ("lower95", (1 - alert) / 2),
        ("upper95", 1 - (1 - alert) / 2),
        ("upper998", 1 - (1 - alarm) / 2),
    ):
        r = binom_ppf(p, n, safe)
        f, f_below = binom_cdf(r, n, safe), binom_cdf(r - 1, n, safe)
        mass = f - f_below
        alpha = np.where(mass > 0, (f - p) / np.where(mass > 0, mass, 1.0), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            limit = np.clip((r - alpha) / n, 0.0, 1.0)
        limit = np.where(inside, limit, np.where(rate <= 0.0, 0.0, 1.0))
        out[name] = np.where(n > 0, limit, np.nan)[back]
    return out


def wilson_many(x: np.ndarray, n: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson intervals for many proportions at once ((0, 1) where n = 0)."""
    x = np.asarray(x, dtype=float)
    n = np.asarray(n, dtype=float)
    safe = np.where(n > 0, n, 1.0)
    p = x / safe
    z2 = z * z
    centre = p + z2 / (2 * safe)
    half = z * np.sqrt(np.maximum(p * (1 - p) / safe + z2 / (4 * safe * safe), 0.0))
    denom = 1 + z2 / safe
    lo = np.where(n > 0, np.maximum(0.0, (centre - half) / denom), 0.0)
    hi = np.where(n > 0, np.minimum(1.0, (centre + half) / denom), 1.0)
    return lo, hi
