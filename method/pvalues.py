"""Exact one-sided p-values for counts, as mid-P values (Lancaster, JASA 1961).

Every p-value in the benchmark is a *mid-P* value: the probability of a result more extreme than
the one observed plus half the probability of the observed result. For discrete counts the plain
exact p-value is conservative (its type I error is below the nominal level, badly so for rare
events); the mid-P value is close to uniform under the null, and the false-flag rates in
docs/method.md are measured with it. `exact` p-values are available for comparison.

Reference distributions:
- binomial(n, theta): a site against a fixed rate (the standard's target or maximum);
- beta-binomial(n, theta, rho): a site against the rest of the network when between-lab
  variation is present (rho is the intra-class correlation; rho = 0 is the binomial);
- hypergeometric (Fisher's exact test, conditional on the margins): one group against another;
- any of these plus integer noise with a known distribution (sites that add DP noise).

Boundaries: x = 0 and x = n give finite, non-zero mid-P values (half the boundary probability).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln

from method.distributions import binom_cdf, binom_pmf, binom_sf
from method.hypergeom import fisher_tails as hypergeom_tails

Pmf = NDArray[np.float64]

_LOG_FACTORIAL: NDArray[np.float64] = np.zeros(1)


def log_factorials(n: int) -> NDArray[np.float64]:
    """ln k! for k = 0..at least n (a table grown on demand: exact sums of logs)."""
    global _LOG_FACTORIAL
    if len(_LOG_FACTORIAL) <= n:
        size = max(n + 1, 2 * len(_LOG_FACTORIAL))
        _LOG_FACTORIAL = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, size, dtype=float)))])
    return _LOG_FACTORIAL


_LOG_GAMMA_FACTORIAL: NDArray[np.float64] = np.zeros(1)


def _log_gamma_factorials(n: int) -> NDArray[np.float64]:
    """gammaln(j + 1.0) for j = 0..at least n, computed by gammaln itself (so the same values as
    evaluating it at each j), a table grown on demand."""
    global _LOG_GAMMA_FACTORIAL
    if len(_LOG_GAMMA_FACTORIAL) <= n:
        size = max(n + 1, 2 * len(_LOG_GAMMA_FACTORIAL))
        _LOG_GAMMA_FACTORIAL = np.asarray(gammaln(np.arange(size, dtype=float) + 1.0))
    return _LOG_GAMMA_FACTORIAL


CACHED_PMF_MAX_N = 4096  # pmfs up to this n are kept (at most 32 KB each, 1,024 of them)


def binomial_pmf(n: int, theta: float) -> Pmf:
    """P(X = k), k = 0..n, for X ~ Bin(n, theta). Read-only: a pmf with n up to CACHED_PMF_MAX_N
    is computed once per (n, theta) and shared (sites' volumes repeat against the same target)."""
    n = max(int(n), 0)
    if n <= CACHED_PMF_MAX_N:
        return _cached_binomial_pmf(n, float(theta))
    return _binomial_pmf(n, theta)


@lru_cache(maxsize=1024)
def _cached_binomial_pmf(n: int, theta: float) -> Pmf:
    pmf = _binomial_pmf(n, theta)
    pmf.flags.writeable = False
    return pmf


def _binomial_pmf(n: int, theta: float) -> Pmf:
    if theta <= 0.0:
        pmf = np.zeros(n + 1)
        pmf[0] = 1.0
        return pmf
    if theta >= 1.0:
        pmf = np.zeros(n + 1)
        pmf[-1] = 1.0
        return pmf
    lf = log_factorials(n)
    k = np.arange(n + 1)
    log_pmf = lf[n] - lf[k] - lf[n - k] + k * math.log(theta) + (n - k) * math.log1p(-theta)
    pmf = np.exp(log_pmf - log_pmf.max())
    return np.asarray(pmf / pmf.sum(), dtype=float)


def beta_binomial_pmf(n: int, theta: float, rho: float) -> Pmf:
    """P(X = k) for the beta-binomial with mean n*theta and intra-class correlation rho.

    Beta(a, b) with a = theta*(1/rho - 1), b = (1-theta)*(1/rho - 1); rho = 0 is the binomial.
    """
    if rho <= 0.0 or theta <= 0.0 or theta >= 1.0:
        return binomial_pmf(n, theta)
    n = max(int(n), 0)
    rho = min(rho, 0.999)
    strength = 1.0 / rho - 1.0
    a, b = theta * strength, (1.0 - theta) * strength
    k = np.arange(n + 1, dtype=float)
    ln_factorial = _log_gamma_factorials(n)  # gammaln(j + 1.0) by table: the same values
    log_pmf = (
        ln_factorial[n]
        - ln_factorial[: n + 1]
        - ln_factorial[n::-1]
        + gammaln(k + a)
        + gammaln(n - k + b)
        - gammaln(n + a + b)
        + gammaln(a + b)
        - gammaln(a)
        - gammaln(b)
    )
    pmf = np.exp(log_pmf - log_pmf.max())
    return np.asarray(pmf / pmf.sum(), dtype=float)


def hypergeometric_pmf(x_total: int, n_group: int, n_total: int) -> tuple[int, Pmf]:
    """Fisher's exact test: of n_total results with x_total positives, n_group are in the group.

    Returns (lowest k, pmf over k = lowest..highest) for the group's positives.
    """
    lo = max(0, n_group - (n_total - x_total))
    hi = min(n_group, x_total)
    k = np.arange(lo, hi + 1)
    other = n_total - x_total
    lf = log_factorials(n_total)
    log_pmf = (
        lf[x_total]
        - lf[k]
        - lf[x_total - k]
        + lf[other]
        - lf[n_group - k]
        - lf[other - n_group + k]
    )
    pmf = np.exp(log_pmf - log_pmf.max())
    return lo, np.asarray(pmf / pmf.sum(), dtype=float)


def tails(pmf: Pmf, x: int, offset: int = 0, mid: bool = True) -> tuple[float, float]:
    """(lower, upper) one-sided p-values of the observed x: P(X < x) + w P(X = x) and
    P(X > x) + w P(X = x), with w = 1/2 (mid-P) or 1 (exact). x outside the support is clamped."""
    i = int(x) - offset
    i = min(max(i, 0), len(pmf) - 1)
    at = float(pmf[i])
    below = float(pmf[:i].sum())
    above = float(pmf[i + 1 :].sum())
    w = 0.5 if mid else 1.0
    return min(1.0, below + w * at), min(1.0, above + w * at)


def two_sided(lower: float, upper: float) -> float:
    """The two-sided p-value of two one-sided ones: twice the smaller, at most 1."""
    return min(1.0, 2.0 * min(lower, upper))


def binomial_tails(x: int, n: int, theta: float, mid: bool = True) -> tuple[float, float]:
    return tails(binomial_pmf(n, theta), x, mid=mid)


def fisher_lower(x: int, n: int, x_other: int, n_other: int, mid: bool = True) -> float:
    """One-sided p-value that the group's rate x/n is below the other group's x_other/n_other."""
    offset, pmf = hypergeometric_pmf(x + x_other, n, n + n_other)
    return tails(pmf, x, offset, mid)[0]


def fisher_tails(
    x: int, n: int, x_other: int, n_other: int, mid: bool = True
) -> tuple[float, float]:
    offset, pmf = hypergeometric_pmf(x + x_other, n, n + n_other)
    return tails(pmf, x, offset, mid)


def with_noise(pmf: Pmf, noise: Pmf) -> tuple[int, Pmf]:
    """The distribution of X + E for independent X (pmf over 0..n) and E (pmf over -K..K):
    (lowest value, pmf)."""
    k = (len(noise) - 1) // 2
    return -k, np.asarray(np.convolve(pmf, noise), dtype=float)


def noisy_lower_tail(pmf: Pmf, offset: int, noise: Pmf, x: int) -> float:
    """The lower mid-P at x of X + E, X ~ pmf over offset.. and E ~ noise over -K..K, with x in
    the support of X: the sum over e of P(E = e) (P(X < x - e) + P(X = x - e) / 2). What
    tails(with_noise(pmf, noise), x, offset - K)[0] gives, up to rounding (the same terms summed
    in another order), in O(len(pmf) + len(noise)) instead of their product, which grows with
    the square of the network when E is a whole method class's noise."""
    half = (len(noise) - 1) // 2
    below = np.concatenate([[0.0], np.cumsum(pmf)])  # below[j] = P(X < offset + j)
    j = x - offset - np.arange(-half, half + 1)  # the index in pmf of x - e, for each e
    at = np.where((j >= 0) & (j < len(pmf)), pmf[np.clip(j, 0, len(pmf) - 1)], 0.0)
    return min(1.0, float(np.dot(noise, below[np.clip(j, 0, len(pmf))] + 0.5 * at)))


def binomial_tails_many(
    x: NDArray[np.float64], n: NDArray[np.float64], theta: NDArray[np.float64] | float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Vectorised mid-P (lower, upper) tails of x under Bin(n, theta)."""
    at = binom_pmf(x, n, theta)
    return np.minimum(binom_cdf(x - 1, n, theta) + 0.5 * at, 1.0), np.minimum(
        binom_sf(x, n, theta) + 0.5 * at, 1.0
    )


def binomial_lower_many(
    x: NDArray[np.float64], n: NDArray[np.float64], theta: NDArray[np.float64] | float
) -> NDArray[np.float64]:
    """The lower tail of binomial_tails_many alone."""
    lower: NDArray[np.float64] = np.minimum(
        binom_cdf(x - 1, n, theta) + 0.5 * binom_pmf(x, n, theta), 1.0
    )
    return lower


DEEP = 1e-280  # a starting pmf below this may be subnormal or 0: its row is computed count by count


def binomial_lower_along(
    first: NDArray[np.float64], width: int, n: NDArray[np.float64], theta: float
) -> NDArray[np.float64]:
    """binomial_lower_many(k, n, theta) at k = first + j, j = 0..width - 1, for each row
    (columns past k = n repeat k = n): scipy at the first count, then the recurrences
    P(X < k + 1) = P(X < k) + P(X = k) and P(X = k + 1) = P(X = k) (n - k) / (k + 1) theta /
    (1 - theta), positive terms only (a few units in the last place over a noise's width).
    Rows whose first or last pmf is below DEEP, and every row at a rate of 0 or 1, are computed
    count by count."""
    first, n = np.asarray(first, dtype=float), np.asarray(n, dtype=float)
    out = np.zeros((len(first), width))
    if not 0.0 < theta < 1.0:
        for j in range(width):
            out[:, j] = binomial_lower_many(np.minimum(first + j, n), n, theta)
        return out
    odds = theta / (1.0 - theta)
    k = first.copy()
    below, at = binom_cdf(k - 1, n, theta), binom_pmf(k, n, theta)
    at_first = at
    out[:, 0] = np.minimum(below + 0.5 * at, 1.0)
    for j in range(1, width):
        step = k < n
        below = np.where(step, below + at, below)
        at = np.where(step, at * (n - k) / (k + 1) * odds, at)
        k = np.where(step, k + 1, k)
        out[:, j] = np.minimum(below + 0.5 * at, 1.0)
    deep = np.flatnonzero((at_first < DEEP) | (at < DEEP))
    if len(deep):
        for j in range(width):
            k_deep = np.minimum(first[deep] + j, n[deep])
            out[deep, j] = binomial_lower_many(k_deep, n[deep], theta)
    return out


def fisher_lower_many(
    x: NDArray[np.float64],
    n: NDArray[np.float64],
    x_other: NDArray[np.float64],
    n_other: NDArray[np.float64],
) -> NDArray[np.float64]:
    """The lower tail of fisher_tails_many alone."""
    return fisher_tails_many(x, n, x_other, n_other)[0]


def fisher_tails_many(
    x: NDArray[np.float64],
    n: NDArray[np.float64],
    x_other: NDArray[np.float64],
    n_other: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Vectorised mid-P (lower, upper) tails of Fisher's exact test: the group's x of n against
    the other group's x_other of n_other (hypergeometric, conditional on the margins), by
    method.hypergeom: scipy.stats.hypergeom takes about a millisecond a call below 104,729
    results (its exact prime-factorisation path) and is accurate to only ~1e-10 above it."""
    return hypergeom_tails(x, n, x_other, n_other)
