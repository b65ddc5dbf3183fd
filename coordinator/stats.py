"""Statistics for benchmarks, following ../shared/reference conventions (section 6).

- Wilson score intervals for proportions (as statsmodels proportion_confint(method="wilson")).
- Exact binomial funnel limits with interpolation (Spiegelhalter, Stat Med 2005, Appendix A.1.1).
- Cohen's kappa with the Fleiss-Cohen-Everitt (1969) large-sample standard error.
- PPA/NPA/OPA for 2x2 tables (CLSI EP12: a both positive, b index+/comparator-,
  c index-/comparator+, d both negative).
Only numpy is used at run time; scipy and statsmodels check these in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

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


_LOG_FACTORIAL = np.zeros(1)


def _log_factorials(n: int) -> np.ndarray:
    global _LOG_FACTORIAL
    if len(_LOG_FACTORIAL) <= n:
        size = max(n + 1, 2 * len(_LOG_FACTORIAL))
        _LOG_FACTORIAL = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, size, dtype=float)))])
    return _LOG_FACTORIAL


@lru_cache(maxsize=65536)
def binomial_cdf(n: int, theta: float) -> np.ndarray:
    """F(k) = P(Bin(n, theta) <= k) for k = 0..n."""
    if theta <= 0.0:
        return np.ones(n + 1)
    if theta >= 1.0:
        cdf = np.zeros(n + 1)
        cdf[-1] = 1.0
        return cdf
    lf = _log_factorials(n)
    k = np.arange(n + 1)
    log_pmf = lf[n] - lf[k] - lf[n - k] + k * math.log(theta) + (n - k) * math.log1p(-theta)
    cdf = np.cumsum(np.exp(log_pmf))
    return np.minimum(cdf / cdf[-1], 1.0)


def binomial_limit(n: int, theta: float, p: float) -> float:
    """Spiegelhalter's interpolated exact binomial limit for a proportion, at probability p."""
    if n <= 0:
        return float("nan")
    cdf = binomial_cdf(n, theta)
    r = int(np.searchsorted(cdf, p - 1e-12, side="left"))  # smallest r with F(r) >= p
    r = min(r, n)
    below = cdf[r - 1] if r > 0 else 0.0
    mass = cdf[r] - below
    alpha = (cdf[r] - p) / mass if mass > 0 else 0.0
    return min(1.0, max(0.0, (r - alpha) / n))


@dataclass(frozen=True)
class FunnelLimits:
    lower998: float
    lower95: float
    upper95: float
    upper998: float


@lru_cache(maxsize=262144)
def funnel_limits(n: int, theta: float, phi: float = 1.0) -> FunnelLimits:
    """Exact binomial limits at 95% and 99.8%; with phi > 1, the overdispersed normal limits
    theta +/- z*sqrt(phi*theta*(1-theta)/n) (Spiegelhalter 2005, section 3.3)."""
    if phi > 1.0:
        se = math.sqrt(phi * theta * (1 - theta) / n) if n > 0 else float("inf")
        clamp = lambda v: min(1.0, max(0.0, v))  # noqa: E731
        return FunnelLimits(
            clamp(theta - Z998 * se),
            clamp(theta - Z95 * se),
            clamp(theta + Z95 * se),
            clamp(theta + Z998 * se),
        )
    return FunnelLimits(
        binomial_limit(n, theta, 0.001),
        binomial_limit(n, theta, 0.025),
        binomial_limit(n, theta, 0.975),
        binomial_limit(n, theta, 0.999),
    )


def funnel_status(x: int, n: int, limits: FunnelLimits) -> str:
    if n <= 0:
        return "no_data"
    rate = x / n
    if rate < limits.lower998:
        return "alarm_low"
    if rate > limits.upper998:
        return "alarm_high"
    if rate < limits.lower95:
        return "alert_low"
    if rate > limits.upper95:
        return "alert_high"
    return "in_control"


def overdispersion(xs: list[int], ns: list[int], theta: float) -> float:
    """phi: the mean of squared z-scores winsorised at their 10th and 90th percentiles (Spiegelhalter 2005)."""
    pairs = [(x, n) for x, n in zip(xs, ns) if n > 0]
    if len(pairs) < 3 or not 0 < theta < 1:
        return 1.0
    z = np.array([(x / n - theta) / math.sqrt(theta * (1 - theta) / n) for x, n in pairs])
    lo, hi = np.percentile(z, [10, 90])
    z = np.clip(z, lo, hi)
    return float(np.mean(z * z))


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
    p = np.array([[a, b], [c, d]], dtype=float) / n
    row, col = p.sum(axis=1), p.sum(axis=0)
    po = p[0, 0] + p[1, 1]
    pe = float(row @ col)
    if pe >= 1.0:
        return None
    kappa = (po - pe) / (1 - pe)
    term_a = sum(p[i, i] * (1 - (row[i] + col[i]) * (1 - kappa)) ** 2 for i in range(2))
    term_b = (1 - kappa) ** 2 * sum(
        p[i, j] * (col[i] + row[j]) ** 2 for i in range(2) for j in range(2) if i != j
    )
    term_c = (kappa - pe * (1 - kappa)) ** 2
    var = (term_a + term_b - term_c) / ((1 - pe) ** 2 * n)
    se = math.sqrt(max(var, 0.0))
    return float(kappa), se, (max(-1.0, kappa - z * se), min(1.0, kappa + z * se))


def agreement(a: int, b: int, c: int, d: int) -> Agreement:
    n = a + b + c + d

    def prop(x: int, m: int):
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
