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
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln, logsumexp

from method import pvalues
from method.distributions import beta_ppf
from method.pvalues import Pmf, log_factorials

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


SMALL_COUNT = 30  # counts expected (under the null) up to this: compared with the exact rows


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


# Rows of one batch of released_sum_tails_many: at most this many (row x part x count) numbers
# in memory at once (16 MB of float64).
BATCH_CELLS = 2_000_000


def released_sum_tails_many(
    x: Sequence[int], parts: Sequence[Sequence[int]], theta: Sequence[float], table: str
) -> tuple[Pmf, Pmf]:
    """released_sum_tails for many rows at once: (lower, upper) arrays, row i being
    released_sum_tails(x[i], parts[i], theta[i], table) up to the order in which the same
    products are summed (a relative difference of a few units in the last place).

    Rows are grouped by x rounded up to 4j + 3 (the truncation length: 3, 7, 11, ...; a row's
    tails are exact in any longer truncation; fewer groups, little padding), each group
    computed as arrays
    (_sum_tails_at): a row's parts padded with empty cells (n = 0: a true 0 released as 0, the
    identity of the convolution) to the group's widest. Rows whose rate is 0 or 1 (a point
    mass, no logarithm) go through the scalar function."""
    xs = np.asarray(x, dtype=np.int64)
    rates = np.asarray(theta, dtype=float)
    lower, upper = np.zeros(len(xs)), np.zeros(len(xs))
    inside = (rates > 0.0) & (rates < 1.0)
    for i in np.flatnonzero(~inside).tolist():
        lower[i], upper[i] = released_sum_tails(int(xs[i]), list(parts[i]), float(rates[i]), table)
    longest = xs | 3
    for length in np.unique(longest[inside]).tolist():
        rows = np.flatnonzero(inside & (longest == length))
        width = max(1, max(len(parts[i]) for i in rows.tolist()))
        step = max(1, BATCH_CELLS // (width * (length + 3)))
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            sizes = np.zeros((len(chunk), width), dtype=np.int64)
            for r, i in enumerate(chunk.tolist()):
                sizes[r, : len(parts[i])] = parts[i]
            lower[chunk], upper[chunk] = _sum_tails_at(
                xs[chunk], length, sizes, rates[chunk], table
            )
    return lower, upper


def _truncated_binomials(sizes: NDArray[np.int64], theta: Pmf, top: int) -> Pmf:
    """_truncated_binomial for every (row, part): P(X = k), k = 0..top, X ~ Bin(sizes[r, j],
    theta[r]), 0 for k > n: the same expression, element by element, so the same numbers."""
    k = np.arange(top + 1)
    n = sizes[:, :, None]
    lf = log_factorials(max(int(sizes.max(initial=0)), top))
    # math.log and math.log1p as the scalar function uses them (numpy's may differ in the last bit)
    log_theta = np.array([math.log(t) for t in theta.tolist()])[:, None, None]
    log_rest = np.array([math.log1p(-t) for t in theta.tolist()])[:, None, None]
    log_pmf = lf[n] - lf[k] - lf[np.maximum(n - k, 0)] + k * log_theta + (n - k) * log_rest
    return np.exp(np.where(k <= n, log_pmf, -np.inf))


def _sum_tails_at(
    x: NDArray[np.int64], length: int, sizes: NDArray[np.int64], theta: Pmf, table: str
) -> tuple[Pmf, Pmf]:
    """released_sum_tails at x[r] (each at most `length`) for rows of cells (sizes[r, j] valid
    results; 0 pads): each cell's released pmf over 0..length (its true pmf through the
    kernel), then the pmf of the rows' sums over 0..length, convolving one part at a time for
    all rows at once as length + 1 shifted multiply-adds (released values above it cannot bring
    a sum back to it or below), read at each row's x."""
    half = (len(CELL_KEY_TABLES[table]) - 1) // 2
    top = length + half
    released = _truncated_binomials(sizes, theta, top) @ _kernel(table, top)[:, : length + 1]
    total = np.zeros((len(sizes), length + 1))
    total[:, 0] = 1.0
    for j in range(sizes.shape[1]):
        cell = released[:, j, :]
        summed = cell[:, :1] * total
        for r in range(1, length + 1):
            summed[:, r:] += cell[:, r : r + 1] * total[:, : length + 1 - r]
        total = summed
    below = np.where(np.arange(length + 1) < x[:, None], total, 0.0).sum(axis=1)
    at = total[np.arange(len(x)), x]
    return np.minimum(1.0, below + 0.5 * at), np.maximum(0.0, 1.0 - below - 0.5 * at)


# The likelihood-ratio test of small perturbed counts (method-class comparisons).
LR_ALTERNATIVE = 0.5  # the alternative: half the reference rate (the CUSUM's, method.rare)
LR_STEPS_PER_NAT = 32  # the statistic is the log-likelihood ratio rounded to 1/32 nat
LR_FLOOR = -12.0  # a cell's log-likelihood ratio below -12 nats counts as -12


def log_released_pmf(n: int, theta: float, table: str, top: int) -> Pmf:
    """ln P(released = r), r = 0..top, of a cell whose true count is binomial(n, theta), released
    through every row of the table (a true 0 stays 0, a true 1 becomes 1-3, ...). Exact: released
    values up to `top` come from true counts up to top + max_noise. -inf where impossible."""
    half = (len(CELL_KEY_TABLES[table]) - 1) // 2
    deepest = min(n, top + half)
    true = np.arange(deepest + 1)
    with np.errstate(divide="ignore"):
        if 0.0 < theta < 1.0:
            lf = pvalues.log_factorials(n)
            log_true = (
                lf[n]
                - lf[true]
                - lf[n - true]
                + true * math.log(theta)
                + (n - true) * math.log1p(-theta)
            )
        else:
            log_true = np.log(pvalues.binomial_pmf(n, theta)[: deepest + 1])
        log_kernel = np.log(_kernel(table, deepest)[:, : top + 1])
    return np.asarray(logsumexp(log_true[:, None] + log_kernel, axis=0), dtype=float)


def _lr_top(n: int, theta: float, table: str) -> int:
    """The largest released value scored on its own (beyond it the floor): depends on n and the
    reference rate only, never on what was released."""
    half = (len(CELL_KEY_TABLES[table]) - 1) // 2
    spread = math.sqrt(n * theta * (1.0 - theta))
    return int(min(n + half, math.ceil(n * theta + 8.0 * spread) + 4 * half + 4))


def _lr_scores(n: int, theta: float, table: str) -> NDArray[np.int64]:
    """A cell's integer score at r = 0..top: the log of P(r | rate theta / 2) / P(r | theta)
    in 1/32 nat, at least the floor."""
    top = _lr_top(n, theta, table)
    log_null = log_released_pmf(n, theta, table, top)
    log_alt = log_released_pmf(n, theta * LR_ALTERNATIVE, table, top)
    with np.errstate(invalid="ignore"):
        ratio = np.where(np.isfinite(log_null), log_alt - log_null, LR_FLOOR)
    ratio = np.nan_to_num(ratio, nan=LR_FLOOR, neginf=LR_FLOOR)
    scores: NDArray[np.int64] = np.rint(np.maximum(ratio, LR_FLOOR) * LR_STEPS_PER_NAT).astype(
        np.int64
    )
    return scores


def _upper_mid(cells: list[tuple[NDArray[np.int64], Pmf, float]], observed: int) -> float:
    """P(T > observed) + P(T = observed) / 2 for T the sum of independent cells, each given as
    (its score at r = 0..top, P(r) there, P(r > top), which scores the floor)."""
    bottom = int(round(LR_FLOOR * LR_STEPS_PER_NAT))
    # Partial totals that cannot reach the observed one, even with every later cell at its
    # highest score, only add to P(T < observed): they are dropped as the convolution goes.
    highest = [int(scores.max()) for scores, _, _ in cells]
    reach = np.cumsum(highest[::-1])[::-1].tolist()[1:] + [0]
    dist, lo = np.ones(1), 0
    for j, (scores, null, above) in enumerate(cells):
        atoms = np.concatenate([scores, [bottom]]) - bottom
        mass = np.bincount(atoms, weights=np.concatenate([null, [above]]))
        out = np.zeros(len(dist) + len(mass) - 1)
        for shift in np.flatnonzero(mass):
            out[shift : shift + len(dist)] += mass[shift] * dist
        lo += bottom
        cut = observed - reach[j] - lo
        if cut > 0:
            out = out[cut:]
            lo += cut
        dist = out
    at = observed - lo
    if at < 0:
        return min(1.0, float(dist.sum()))
    if at >= len(dist):
        return 0.0
    return min(1.0, float(dist[at + 1 :].sum() + 0.5 * dist[at]))


def released_lr_lower(
    released: list[int],
    parts: list[int],
    theta: float,
    table: str,
    nodes: list[tuple[float, float]] | None = None,
) -> float:
    """Exact mid-P that the true rate behind perturbed cells is below theta, by the likelihood
    ratio of the released cells (released[j] positives of parts[j] valid results, true counts
    binomial(parts[j], theta) under the null, each through the table's rows) against half the
    rate, rounded to 1/32 nat: P(T > t) + P(T = t) / 2 under the null, T's distribution by exact
    convolution of the cells' score distributions. Unlike the released sum, the statistic uses
    where the counts fall: a released 0 is a true 0 (strong evidence of a low rate), a released 1
    may be a true 1, 2 or 3 (next to none). Without perturbation it orders outcomes as the sum
    does (the binomial likelihood ratio is monotone in the count).

    `nodes` ((rate, weight), ...) makes the null a mixture over the reference rate's uncertainty
    (reference_nodes); the scores stay those at theta."""
    if not parts:
        return 1.0
    if not 0.0 < theta < 1.0:
        return released_sum_tails(sum(released), parts, theta, table)[0]
    sizes = [max(int(n), 0) for n in parts]
    scores = [_lr_scores(n, theta, table) for n in sizes]
    bottom = int(round(LR_FLOOR * LR_STEPS_PER_NAT))
    observed = sum(
        int(cell[r]) if 0 <= r < len(cell) else bottom
        for r, cell in zip(released, scores, strict=True)
    )
    total = 0.0
    for rate, weight in nodes or [(theta, 1.0)]:
        cells = []
        for n, cell in zip(sizes, scores, strict=True):
            null = np.exp(log_released_pmf(n, rate, table, len(cell) - 1))
            cells.append((cell, null, max(0.0, 1.0 - float(null.sum()))))
        total += weight * _upper_mid(cells, observed)
    return min(1.0, total)


def _excess_terms(n: NDArray[np.float64], theta: float, table: str) -> list[tuple[float, Pmf]]:
    """For each small-count row of the table whose shift is not 0: (its mean shift, each cell's
    probability of that true count at rate theta, cells of n[j] valid results)."""
    out = []
    for count, row in CELL_KEY_SMALL_ROWS[table].items():
        shift = sum(d * w for d, w in row)
        if shift:
            k = np.minimum(count, n)
            log_p = (
                gammaln(n + 1)
                - gammaln(k + 1)
                - gammaln(n - k + 1)
                + k * math.log(theta)
                + (n - k) * math.log1p(-theta)
            )
            out.append((shift, np.where(n >= count, np.exp(log_p), 0.0)))
    return out


def expected_excess(parts: list[int], theta: float, table: str) -> float:
    """E(released - true) summed over cells of parts[j] valid results at rate theta: the table's
    small-count rows are not centred (a true 1 is released as 1.5 on average), so a released
    total overstates the true one; rows for 3 or more are centred."""
    if not parts or not 0.0 < theta < 1.0:
        return 0.0
    excess = 0.0
    for shift, terms in _excess_terms(np.asarray(parts, dtype=float), theta, table):
        excess += shift * float(np.sum(terms))
    return excess


def expected_excess_many(parts: Sequence[list[int]], theta: float, table: str) -> list[float]:
    """expected_excess of many sites' cells at the same rate: each cell's term computed once for
    all cells together (the same expression, element by element), then each site's terms summed
    as expected_excess sums them (np.sum over the site's own cells, in order): the same numbers."""
    if not 0.0 < theta < 1.0:
        return [0.0] * len(parts)
    n = np.asarray([v for p in parts for v in p], dtype=float)
    ends = np.cumsum([len(p) for p in parts]).tolist()
    starts = [0, *ends[:-1]]
    excess = [0.0] * len(parts)
    for shift, terms in _excess_terms(n, theta, table):
        for i, (a, b) in enumerate(zip(starts, ends, strict=True)):
            excess[i] += shift * float(np.sum(terms[a:b]))
    return excess


def unbiased_total(released_total: float, parts: list[int], table: str) -> float:
    """The true total a released total of cells estimates: released minus the expected excess,
    at the rate it implies (method of moments; two fixed-point steps, plenty at these excesses)."""
    n = float(sum(parts))
    if n <= 0:
        return released_total
    estimate = released_total
    for _ in range(2):
        estimate = max(0.0, released_total - expected_excess(parts, estimate / n, table))
    return estimate


REFERENCE_NODES = 12  # Gauss-Legendre nodes over the reference rate's distribution
REFERENCE_SHARE = 0.01  # below this share of the reference's size, its rate is taken as known


def reference_nodes(x_ref: float, n_ref: float, n_own: float) -> list[tuple[float, float]]:
    """The reference rate's uncertainty as (rate, weight) nodes: Beta(x + 1/2, n - x + 1/2) (the
    Jeffreys posterior of the reference's true total x of n), integrated by Gauss-Legendre
    quadrature on its probability scale. The p-value averaged over it is the prior-predictive
    p-value (Box, JRSS A 1980;143:383-430), which, like Fisher's conditional test, allows for the
    reference being a sample too. When the tested count is under 1% of the reference's size
    (variance inflated by under 1%) the rate is taken as known: one node."""
    if n_ref <= 0:
        return [(0.0, 1.0)]
    x = min(max(x_ref, 0.0), n_ref)
    if n_own < REFERENCE_SHARE * n_ref:
        return [(x / n_ref, 1.0)]
    points, weights = np.polynomial.legendre.leggauss(REFERENCE_NODES)
    rates = beta_ppf((points + 1.0) / 2.0, x + 0.5, n_ref - x + 0.5)
    return [(float(r), float(w) / 2.0) for r, w in zip(rates, weights, strict=True)]


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
    if alpha == 0.0:  # a scale below ~1/745: every draw is 0 (exp underflows)
        return np.ones(1)
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


def released_sum_lower(x: int, parts: list[int], x_ref: float, n_ref: float, table: str) -> float:
    """Mid-P lower tail of a released sum x of perturbed cells (released_sum_tails) against a
    reference of (unbiased) x_ref positives in n_ref, averaged over the reference rate's
    uncertainty (reference_nodes)."""
    nodes = reference_nodes(x_ref, n_ref, float(sum(parts)))
    return min(1.0, sum(w * released_sum_tails(x, parts, rate, table)[0] for rate, w in nodes))


def reference_nodes_many(
    x_ref: Sequence[float], n_ref: Sequence[float], n_own: Sequence[float]
) -> list[list[tuple[float, float]]]:
    """reference_nodes for many references at once (the same numbers: the Beta quantiles of all
    that need them in one vectorised call, which computes each element as a single call does)."""
    out: list[list[tuple[float, float]]] = []
    uncertain: list[tuple[int, float, float]] = []  # (index in out, x, n_ref)
    for i, (xr, nr, own) in enumerate(zip(x_ref, n_ref, n_own, strict=True)):
        if nr <= 0:
            out.append([(0.0, 1.0)])
            continue
        x = min(max(xr, 0.0), nr)
        if own < REFERENCE_SHARE * nr:
            out.append([(x / nr, 1.0)])
            continue
        out.append([])
        uncertain.append((i, x, nr))
    if uncertain:
        points, weights = np.polynomial.legendre.leggauss(REFERENCE_NODES)
        xs = np.array([u[1] for u in uncertain])[:, None]
        ns = np.array([u[2] for u in uncertain])[:, None]
        rates = beta_ppf((points + 1.0) / 2.0, xs + 0.5, ns - xs + 0.5).tolist()
        halves = [float(w) / 2.0 for w in weights]
        for (i, _, _), row in zip(uncertain, rates, strict=True):
            out[i] = [(float(r), w) for r, w in zip(row, halves, strict=True)]
    return out


def released_sum_lower_many(
    x: Sequence[int],
    parts: Sequence[list[int]],
    x_ref: Sequence[float],
    n_ref: Sequence[float],
    table: str,
) -> list[float]:
    """released_sum_lower for many released sums at once: every reference node of every sum is
    one row of released_sum_tails_many; each sum's nodes are then added in the order
    released_sum_lower adds them."""
    nodes = reference_nodes_many(x_ref, n_ref, [float(sum(p)) for p in parts])
    rows = [i for i, own in enumerate(nodes) for _ in own]
    lower, _ = released_sum_tails_many(
        [x[i] for i in rows],
        [parts[i] for i in rows],
        [rate for own in nodes for rate, _ in own],
        table,
    )
    tails = iter(lower.tolist())
    return [min(1.0, sum(w * next(tails) for _, w in own)) for own in nodes]
