"""Noisy counts: the noise is part of the reference distribution.

Cell-key perturbation (summary.proto `Perturbation`, the default of every node): each released
count cell is the true count plus d from a public table; for "rarenet-ptable-1" a cell of 3 or
more gets d = -2..+2 with probabilities 0.1, 0.2, 0.4, 0.2, 0.1 and a true 0 stays 0 (zero_exact).
A count summed over `cells` cells carries the sum of `cells` draws: the reference distribution of a
released count is the count's exact distribution convolved with that sum, and a released 0 (a true
0) is compared exactly. Small cells (1, 2) have their own rows in the table; the n >= 3 row is used
for every cell (its spread is the largest). An unknown table, or a claimed max_noise or variance
that does not match it, is not modelled: the site is not tested on counted indicators, with a note.

Differential privacy (the older `DifferentialPrivacy`, no longer offered by nodes):

A site with `differential_privacy.enabled` adds independent two-sided geometric noise to every
released stratum cell: P(E = k) proportional to alpha^|k|, alpha = exp(-1/scale), where `scale` is
the summary's `noise_scale` (variance 2 alpha / (1 - alpha)^2). A positive count summed over
`cells` strata carries the sum of `cells` such draws, so its reference distribution is the
binomial (or beta-binomial) convolved with that sum (method.pvalues.with_noise).

The method accepts a claimed scale only when it is finite and 0 <= scale <= MAX_NOISE_SCALE
(and the mechanism is one it models). Otherwise, and for the indicators whose noise it does not
model (failure rates, whose numerator and denominator are both noisy), the site is not flagged on
those indicators and the benchmark says so in a note.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from method import pvalues
from method.pvalues import Pmf

MAX_NOISE_SCALE = 50.0
MODELLED_MECHANISMS = ("geometric", "")
CELL_KEY_TABLES = {"rarenet-ptable-1": (0.1, 0.2, 0.4, 0.2, 0.1)}
# The rows for true counts 1 and 2 (summary.proto): true count: ((d, probability), ...).
CELL_KEY_SMALL_ROWS = {
    "rarenet-ptable-1": {1: ((0, 0.6), (1, 0.3), (2, 0.1)), 2: ((-1, 0.3), (0, 0.4), (1, 0.3))}
}


def accepted_perturbation(
    mechanism: str, table: str, max_noise: int, variance: float
) -> tuple[bool, str]:
    """Whether the method models this cell-key perturbation, and why not."""
    if mechanism != "cell_key":
        return False, f"the perturbation mechanism {mechanism!r} is not modelled by the method"
    if table not in CELL_KEY_TABLES:
        return False, f"the perturbation table {table!r} is not one the method knows"
    row = CELL_KEY_TABLES[table]
    half = (len(row) - 1) // 2
    expected = sum(p * (k - half) ** 2 for k, p in enumerate(row))
    if max_noise != half or not math.isfinite(variance) or abs(variance - expected) > 1e-6:
        return False, (
            f"the perturbation claims max_noise {max_noise} and variance {variance!r}, which "
            f"{table} does not have ({half}, {expected:g})"
        )
    return True, ""


SMALL_COUNT = 30  # released counts up to this are compared with the table's exact rows


@lru_cache(maxsize=256)
def _kernel(table: str, top: int) -> Pmf:
    """K[k, m] = P(released m | true k) for k = 0..top under the table."""
    row = CELL_KEY_TABLES[table]
    half = (len(row) - 1) // 2
    small = CELL_KEY_SMALL_ROWS[table]
    kernel = np.zeros((top + 1, top + half + 1))
    kernel[0, 0] = 1.0
    for count in range(1, top + 1):
        if count in small:
            for d, w in small[count]:
                kernel[count, count + d] += w
        else:
            for j, w in enumerate(row):
                kernel[count, count + j - half] += w
    return kernel


def _truncated_binomial(n: int, theta: float, top: int) -> Pmf:
    """P(X = k) for k = 0..min(n, top), X ~ Bin(n, theta) (exact, not renormalised)."""
    k = np.arange(min(n, top) + 1)
    if theta <= 0.0 or theta >= 1.0:
        return pvalues.binomial_pmf(n, theta)[: len(k)]
    lf = pvalues.log_factorials(n)
    return np.asarray(
        np.exp(lf[n] - lf[k] - lf[n - k] + k * math.log(theta) + (n - k) * math.log1p(-theta)),
        dtype=float,
    )


def released_sum_tails(x: int, parts: list[int], theta: float, table: str) -> tuple[float, float]:
    """Exact mid-P (lower, upper) of a released sum of perturbed cells at x: each cell's true
    count ~ binomial(n_j, theta), released through every row of the table (a true 0 stays 0, a
    true 1 becomes 1-3, ...), cells independent. Only released values up to x matter for the
    lower tail, and they come from true counts up to x + max_noise: the computation is truncated
    there, so it is cheap for the small counts where the small-count rows matter."""
    half = (len(CELL_KEY_TABLES[table]) - 1) // 2
    top = x + half
    kernel = _kernel(table, top)
    total = np.ones(1)
    for n_j in parts:
        true = _truncated_binomial(n_j, theta, top)
        total = np.convolve(total, true @ kernel[: len(true)])[: x + 1]
    below = float(total[:x].sum())
    at = float(total[x]) if len(total) > x else 0.0
    return min(1.0, below + 0.5 * at), max(0.0, 1.0 - below - 0.5 * at)


@lru_cache(maxsize=1024)
def table_pmf(table: str, cells: int = 1) -> Pmf:
    """pmf over -K..K of the sum of `cells` independent draws of the table's n >= 3 row."""
    one = np.asarray(CELL_KEY_TABLES[table], dtype=float)
    total = np.ones(1)
    for _ in range(max(cells, 1)):
        total = np.convolve(total, one)
    return np.asarray(total, dtype=float)


def accepted_scale(mechanism: str, scale: float) -> tuple[bool, str]:
    """Whether the method can model this noise, and why not."""
    if not math.isfinite(scale) or scale < 0:
        return False, f"the claimed noise scale {scale!r} is not a finite non-negative number"
    if scale > MAX_NOISE_SCALE:
        return (
            False,
            f"the claimed noise scale {scale:g} exceeds the {MAX_NOISE_SCALE:g} the method accepts",
        )
    if mechanism not in MODELLED_MECHANISMS:
        return False, f"the noise mechanism {mechanism!r} is not modelled by the method"
    return True, ""


def geometric_variance(scale: float) -> float:
    """Variance of two-sided geometric noise with P(k) proportional to exp(-|k|/scale)."""
    if scale <= 0 or not math.isfinite(scale):
        return 0.0
    alpha = math.exp(-1.0 / scale)
    return 2 * alpha / (1 - alpha) ** 2


def geometric_pmf(scale: float, cells: int = 1) -> Pmf:
    """pmf over -K..K of the sum of `cells` independent two-sided geometric draws (tails below
    1e-12 dropped)."""
    if scale <= 0 or cells <= 0:
        return np.ones(1)
    alpha = math.exp(-1.0 / scale)
    k = max(1, math.ceil(math.log(1e-12) / math.log(alpha)))
    support = np.arange(-k, k + 1)
    one = alpha ** np.abs(support)
    one = one / one.sum()
    total = one
    for _ in range(cells - 1):
        total = np.convolve(total, one)
        excess = (len(total) - (2 * k * cells + 1)) // 2
        if excess > 0:
            total = total[excess:-excess]
    return np.asarray(total / total.sum(), dtype=float)
