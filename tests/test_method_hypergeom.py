"""Fisher's exact test for many tables at once (method/hypergeom.py), checked against scipy's
hypergeometric distribution and fisher_exact, and against exact rational arithmetic where scipy's
own path for large totals is less accurate."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from method import hypergeom

table = st.tuples(
    st.integers(1, 400),  # the group's results
    st.integers(1, 20_000),  # the other group's results
    st.floats(0.0, 1.0),  # share positive in the group
    st.floats(0.0, 1.0),  # share positive in the other group
)


def _tables(rows: list[tuple[int, int, float, float]]) -> tuple[np.ndarray, ...]:
    n = np.array([r[0] for r in rows], dtype=float)
    n_other = np.array([r[1] for r in rows], dtype=float)
    x = np.floor(n * np.array([r[2] for r in rows]))
    x_other = np.floor(n_other * np.array([r[3] for r in rows]))
    return x, n, x_other, n_other


def _scipy_mid_p(x: float, n: float, x_other: float, n_other: float) -> tuple[float, float]:
    dist = stats.hypergeom(int(n + n_other), int(x + x_other), int(n))
    at = float(dist.pmf(x))
    return float(dist.cdf(x - 1)) + 0.5 * at, float(dist.sf(x)) + 0.5 * at


def _exact_mid_p(x: int, n: int, x_other: int, n_other: int) -> tuple[float, float]:
    """Mid-P tails in rational arithmetic from binomial coefficients."""
    positives, total = x + x_other, n + n_other
    ways = comb(total, n)
    lowest = max(0, n - (total - positives))
    below = sum(comb(positives, k) * comb(total - positives, n - k) for k in range(lowest, x))
    at = comb(positives, x) * comb(total - positives, n - x)
    above = ways - below - at
    return float(Fraction(2 * below + at, 2 * ways)), float(Fraction(2 * above + at, 2 * ways))


@settings(max_examples=60, deadline=None)
@given(st.lists(table, min_size=1, max_size=30))
def test_tails_equal_scipys_hypergeometric(rows: list[tuple[int, int, float, float]]) -> None:
    x, n, x_other, n_other = _tables(rows)
    lower, upper = hypergeom.fisher_tails(x, n, x_other, n_other)
    for i in range(len(x)):
        want_low, want_high = _scipy_mid_p(x[i], n[i], x_other[i], n_other[i])
        assert lower[i] == pytest.approx(want_low, rel=1e-12, abs=1e-300)
        assert upper[i] == pytest.approx(want_high, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(
    ("x", "n", "x_other", "n_other"),
    [(5, 15, 698, 1373), (0, 40, 12, 900), (40, 40, 3, 60), (66, 256, 2128, 6489)],
)
def test_the_one_sided_exact_p_is_fisher_exacts(x: int, n: int, x_other: int, n_other: int) -> None:
    """P(X <= x) (the mid-P lower tail plus half the pmf) is fisher_exact's one-sided p."""
    arrays = [np.array([float(v)]) for v in (x, n, x_other, n_other)]
    lower, upper = hypergeom.fisher_tails(*arrays)
    at = hypergeom.pmf(arrays[0], arrays[1], arrays[0] + arrays[2], arrays[1] + arrays[3])
    table_ = [[x, n - x], [x_other, n_other - x_other]]
    assert lower[0] + 0.5 * at[0] == pytest.approx(
        stats.fisher_exact(table_, alternative="less")[1], rel=1e-12
    )
    assert upper[0] + 0.5 * at[0] == pytest.approx(
        stats.fisher_exact(table_, alternative="greater")[1], rel=1e-12
    )


@pytest.mark.parametrize(
    ("x", "n", "x_other", "n_other"),
    [(103, 2396, 6122, 134451), (20, 400, 9000, 300000), (130, 2500, 14000, 450000)],
)
def test_large_tables_are_exact_to_the_last_bits(
    x: int, n: int, x_other: int, n_other: int
) -> None:
    """Above 104,729 results scipy leaves its exact path (errors up to ~1e-10 measured here);
    these tails stay within 1e-13 of rational arithmetic."""
    arrays = [np.array([float(v)]) for v in (x, n, x_other, n_other)]
    lower, upper = hypergeom.fisher_tails(*arrays)
    want_low, want_high = _exact_mid_p(x, n, x_other, n_other)
    assert lower[0] == pytest.approx(want_low, rel=1e-13)
    assert upper[0] == pytest.approx(want_high, rel=1e-13)


@settings(max_examples=40, deadline=None)
@given(st.lists(table, min_size=1, max_size=20), st.integers(1, 30))
def test_tails_along_a_range_equal_each_count_alone(
    rows: list[tuple[int, int, float, float]], width: int
) -> None:
    """The recurrences between neighbouring tables give the tails computed at each count."""
    x, n, x_other, n_other = _tables(rows)
    first = np.clip(x - width // 2, 0, n)
    lower, upper = hypergeom.fisher_tails_along(first, width, n, x_other, n_other)
    for j in range(width):
        k = first + j
        alone_low, alone_high = hypergeom.fisher_tails(np.minimum(k, n), n, x_other, n_other)
        inside = k <= n
        _close(lower[inside, j], alone_low[inside])
        _close(upper[inside, j], alone_high[inside])


def _close(got: np.ndarray, want: np.ndarray) -> None:
    """Equal to 1e-12 relative; for tails far out (1e-30 and below) a pmf from exp of a large
    negative log carries a relative error of about |ln p| units in the last place, so the bound
    grows with |ln p|. The recurrences start from the first and last count's tails: where one
    of those is subnormal (below 2.2e-308, fewer significant bits) its error carries into its
    neighbours (2e-11 seen at 1e-268), so tails below 1e-200 are compared to 1e-200 absolute."""
    with np.errstate(divide="ignore"):
        scale = np.maximum(1.0, -np.log(np.maximum(want, 1e-300)) / 69.0)
    assert np.all(np.abs(got - want) <= 1e-12 * scale * np.abs(want) + 1e-200), (got, want)


def test_tails_along_a_range_of_large_tables_are_exact() -> None:
    n, x_other, n_other = 400, 9000, 300000
    first = np.array([14.0])  # the counts 14..26, around the group's expected 12
    lower, upper = hypergeom.fisher_tails_along(
        first, 13, np.array([float(n)]), np.array([float(x_other)]), np.array([float(n_other)])
    )
    for j in range(13):
        want_low, want_high = _exact_mid_p(14 + j, n, x_other, n_other)
        assert lower[0, j] == pytest.approx(want_low, rel=1e-13)
        assert upper[0, j] == pytest.approx(want_high, rel=1e-13)


def test_tails_along_a_range_deep_in_a_tail_are_not_lost_to_underflow() -> None:
    """A group of 3,000 with a sixth of the network's rate: the first table's pmf is subnormal
    (4.7e-310, few significant bits), yet the tails 48 counts on are normal numbers (1.4e-278):
    computed count by count there, not carried from the subnormal start."""
    n, x_other, n_other = np.array([3000.0]), np.array([50_000.0]), np.array([100_000.0])
    first = np.array([500.0])
    assert hypergeom.pmf(first, n, first + x_other, n + n_other)[0] < 1e-300
    lower, upper = hypergeom.fisher_tails_along(first, 49, n, x_other, n_other)
    for j in range(49):
        alone_low, alone_high = hypergeom.fisher_tails(first + j, n, x_other, n_other)
        assert lower[0, j] == alone_low[0] and upper[0, j] == alone_high[0]
    assert lower[0, 48] > 1e-280
