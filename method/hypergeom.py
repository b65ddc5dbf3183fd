"""Mid-P tails of Fisher's exact test for many tables at once, in numpy.

scipy.stats.hypergeom (Boost) computes its pmf exactly by prime factorisation when the total is
below 104,729: accurate but about a millisecond per call, which made the benchmark of a network
of a few hundred labs cost 190 ms a lab. Here the same quantities, accurate to a few units in the
last place at every size:

- the pmf at x by Loader's saddle-point expansion ("Fast and accurate computation of binomial
  probabilities", 2000; R's dhyper and dbinom_raw): the hypergeometric pmf is
  b(x; K, p) b(n - x; N - K, p) / b(n; N, p) with p = n / N, each binomial term as
  exp(stirlerr and deviance terms) / sqrt(2 pi x (n - x) / n), with no cancellation of large logs;
- the tail on the short side of the mean as the pmf at x times a sum of ratios of consecutive
  pmf values (R's pdhyper), stopped when a term falls below the double precision of the sum;
  the other tail as 1 minus it (mid-P lower + upper = 1).

tests/test_method_hypergeom.py holds these to scipy.stats.hypergeom and scipy.stats.fisher_exact.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]

_PI = Decimal("3.14159265358979323846264338327950288419716939937510")
_LN_SQRT_2PI = 0.918938533204672741780329736406  # ln sqrt(2 pi)
_LN_2PI = 1.837877066409345483560659472811  # ln 2 pi


def _exact_stirlerr(n: int) -> float:
    """ln n! - (n + 1/2) ln n + n - ln sqrt(2 pi), to 50 digits, then rounded (n >= 1)."""
    with localcontext() as ctx:
        ctx.prec = 50
        value = (
            Decimal(math.factorial(n)).ln()
            - (Decimal(n) + Decimal("0.5")) * Decimal(n).ln()
            + n
            - (2 * _PI).ln() / 2
        )
    return float(value)


# stirlerr at 0..15, where its series is not accurate (0 at n = 0 is never read: no x = 0 path
# uses it)
_SMALL_STIRLERR = np.array([0.0] + [_exact_stirlerr(n) for n in range(1, 16)])


def stirlerr(n: Floats) -> Floats:
    """The error of Stirling's formula, ln n! - ln(sqrt(2 pi n) (n / e)^n), for integers n >= 0:
    exact (rounded) up to 15, the asymptotic series beyond (R's stirlerr)."""
    s0, s1, s2, s3, s4 = 1 / 12, 1 / 360, 1 / 1260, 1 / 1680, 1 / 1188
    m = np.maximum(n, 16.0)
    nn = m * m
    series = np.select(
        [m > 500, m > 80, m > 35],
        [
            (s0 - s1 / nn) / m,
            (s0 - (s1 - s2 / nn) / nn) / m,
            (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / m,
        ],
        (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / m,
    )
    small = _SMALL_STIRLERR[np.clip(n, 0, 15).astype(np.intp)]
    return np.asarray(np.where(n <= 15, small, series), dtype=float)


def bd0(x: Floats, np_: Floats) -> Floats:
    """The deviance term x ln(x / np) + np - x, by its Taylor series in v = (x - np) / (x + np)
    where |v| < 0.1 (no cancellation), directly elsewhere (R's bd0). x > 0, np > 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = x * np.log(x / np_) + np_ - x
        v = (x - np_) / (x + np_)
    close = np.abs(x - np_) < 0.1 * (x + np_)
    v = np.where(close, v, 0.0)
    s = (x - np_) * v
    ej = 2 * x * v
    v2 = v * v
    for j in range(1, 1000):
        ej = ej * v2
        s_next = s + ej / (2 * j + 1)
        if np.array_equal(s_next, s, equal_nan=True):
            break
        s = s_next
    return np.asarray(np.where(close, s, direct), dtype=float)


def _binomial_raw(x: Floats, n: Floats, p: Floats, q: Floats) -> Floats:
    """ln P(X = x), X ~ Bin(n, p), q = 1 - p given separately, 0 <= x <= n, 0 < p < 1
    (R's dbinom_raw, on the log scale)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        at_zero = np.where(p < 0.1, -bd0(n, n * q) - n * p, n * np.log(q))
        at_n = np.where(q < 0.1, -bd0(n, n * p) - n * q, n * np.log(p))
        inner = x > 0
        xi = np.where((x > 0) & (x < n), x, 1.0)
        ni = np.where((x > 0) & (x < n), n, 2.0)
        lc = (
            stirlerr(ni) - stirlerr(xi) - stirlerr(ni - xi) - bd0(xi, ni * p) - bd0(ni - xi, ni * q)
        )
        lf = _LN_2PI + np.log(xi) + np.log1p(-xi / ni)
        general = lc - 0.5 * lf
    out = np.where(x >= n, at_n, general)
    out = np.where(n == 0, 0.0, out)
    return np.asarray(np.where(inner, out, np.where(n == 0, 0.0, at_zero)), dtype=float)


def pmf(x: Floats, n: Floats, positives: Floats, total: Floats) -> Floats:
    """P(X = x) for X the positives among n drawn from `total` results of which `positives` are
    positive (scipy.stats.hypergeom.pmf(x, total, positives, n)), x inside the support."""
    p = n / total
    q = (total - n) / total
    log_pmf = (
        _binomial_raw(x, positives, p, q)
        + _binomial_raw(n - x, total - positives, p, q)
        - _binomial_raw(n, total, p, q)
    )
    # drawing all (q = 0) or none (p = 0): the count is fixed
    fixed = (p <= 0) | (q <= 0)
    return np.asarray(np.where(fixed, 1.0, np.exp(np.where(fixed, 0.0, log_pmf))), dtype=float)


def _ratio_sum(
    x: Floats, n: Floats, positives: Floats, total: Floats, down: NDArray[np.bool_]
) -> Floats:
    """1 + sum over k beyond x of pmf(k) / pmf(x): below x where `down`, above it elsewhere,
    each term the previous one times the ratio of consecutive pmf values, stopped when a term
    falls below double precision of the sum or the support ends (R's pdhyper, both ways)."""
    negatives = total - positives
    s = np.ones(len(x))
    term = np.ones(len(x))
    k = x.copy()
    low_end = np.maximum(0.0, n - negatives)
    high_end = np.minimum(n, positives)
    active = np.where(down, k > low_end, k < high_end)
    eps = np.finfo(float).eps
    while active.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(
                down,
                k * (negatives - n + k) / (n + 1 - k) / (positives + 1 - k),
                (positives - k) * (n - k) / (k + 1) / (negatives - n + k + 1),
            )
        term = np.where(active, term * ratio, 0.0)
        s = s + term
        k = np.where(active, np.where(down, k - 1, k + 1), k)
        active = active & (term >= eps * s) & np.where(down, k > low_end, k < high_end)
    return s


def _point(k: Floats, n: Floats, positives: Floats, total: Floats) -> tuple[Floats, Floats, Floats]:
    """(P(X = k), P(X <= k), P(X >= k)): the tail on the short side of the mean summed from the
    pmf at k, the other 1 minus it plus the pmf at k."""
    at = pmf(k, n, positives, total)
    down = k * total <= n * positives  # k at or below the mean: the lower tail is the short one
    short: Floats = at * _ratio_sum(k, n, positives, total, down)
    return at, np.where(down, short, 1.0 - short + at), np.where(down, 1.0 - short + at, short)


def fisher_tails(x: Floats, n: Floats, x_other: Floats, n_other: Floats) -> tuple[Floats, Floats]:
    """Mid-P (lower, upper) of Fisher's exact test for each row: the group's x of n against the
    other group's x_other of n_other, P(X < x) + P(X = x) / 2 and P(X > x) + P(X = x) / 2 for X
    hypergeometric given the margins."""
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    positives = x + np.asarray(x_other, dtype=float)
    total = n + np.asarray(n_other, dtype=float)
    at, at_most, at_least = _point(x, n, positives, total)
    lower = np.clip(at_most - 0.5 * at, 0.0, 1.0)
    return lower, np.clip(at_least - 0.5 * at, 0.0, 1.0)


def fisher_tails_along(
    first: Floats, width: int, n: Floats, x_other: Floats, n_other: Floats, upper: bool = True
) -> tuple[Floats, Floats]:
    """fisher_tails(k, n, x_other, n_other) at k = first + j, j = 0..width - 1, for each row
    (columns past k = n are not computed): a noisy count's tails at every count its noise could
    have come from, where each k is a table of its own (the margin k + x_other moves with k).

    Two evaluations per row, at the first and the last k; the columns between by the exact
    recurrences between neighbouring tables, with the margin of positives K = k + x_other:
    adding one positive to the group adds one to K, so with N = n + n_other
      P_{K+1}(X = k+1)  = P_K(X = k) (K + 1)(n - k) / ((k + 1)(N - K))
      P_{K+1}(X <= k+1) = P_K(X <= k) + P_K(X = k) x_other (n - k) / ((k + 1)(N - K))
      P_{K-1}(X = k-1)  = P_K(X = k) k (N - K + 1) / (K (n - k + 1))
      P_{K-1}(X >= k-1) = P_K(X >= k) + P_{K-1}(X = k-1) (n_other - x_other) / (N - K + 1)
    (the (K+1)-th positive falls in the group with probability (n - k)/(N - K)). Every step adds
    a positive term, so each tail keeps its relative precision (lower tails built upwards,
    upper tails downwards)."""
    first = np.asarray(first, dtype=float)
    n, c = np.asarray(n, dtype=float), np.asarray(x_other, dtype=float)
    total = n + np.asarray(n_other, dtype=float)
    rest_negative = total - n - c
    rows = np.arange(len(first))
    lower = np.zeros((len(first), width))
    higher = np.zeros((len(first), width))
    k = first.copy()
    at, at_most, _ = _point(k, n, k + c, total)
    lower[:, 0] = at_most - 0.5 * at
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(1, width):
            step = k < n
            grown = at * (n - k) / ((k + 1) * (total - k - c))
            at_most = np.where(step, at_most + grown * c, at_most)
            at = np.where(step, grown * (k + c + 1), at)
            k = np.where(step, k + 1, k)
            lower[:, j] = at_most - 0.5 * at
        if upper:
            k = np.minimum(first + (width - 1), n)
            at, _, at_least = _point(k, n, k + c, total)
            higher[rows, (k - first).astype(np.intp)] = at_least - 0.5 * at
            for _ in range(1, width):
                step = k > first
                big_k = k + c
                shrunk = at * k * (total - big_k + 1) / (big_k * (n - k + 1))
                at_least = np.where(
                    step, at_least + shrunk * rest_negative / (total - big_k + 1), at_least
                )
                at = np.where(step, shrunk, at)
                k = np.where(step, k - 1, k)
                higher[rows, (k - first).astype(np.intp)] = at_least - 0.5 * at
    _recompute_deep_tails(first, width, n, c, total - n, lower, higher, upper)
    return np.clip(lower, 0.0, 1.0), np.clip(higher, 0.0, 1.0)


DEEP = 1e-280  # a starting pmf below this may be subnormal or 0: its row is computed count by count


def _recompute_deep_tails(
    first: Floats,
    width: int,
    n: Floats,
    x_other: Floats,
    n_other: Floats,
    lower: Floats,
    higher: Floats,
    upper: bool,
) -> None:
    """Rows whose first or last table's pmf is deep in a tail (below DEEP: subnormal numbers
    carry fewer bits and 0 would propagate): their tails computed at each count with
    fisher_tails instead of by the recurrences, in place."""
    last = np.minimum(first + (width - 1), n)
    at_first = pmf(first, n, first + x_other, n + n_other)
    at_last = pmf(last, n, last + x_other, n + n_other)
    rows = np.flatnonzero((at_first < DEEP) | (at_last < DEEP))
    if not len(rows):
        return
    for j in range(width):
        k = np.minimum(first[rows] + j, n[rows])
        low, high = fisher_tails(k, n[rows], x_other[rows], n_other[rows])
        lower[rows, j] = low
        if upper:
            higher[rows, j] = high
