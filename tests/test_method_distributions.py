"""method/distributions.py gives scipy.stats.binom's and scipy.stats.beta's numbers, bit for bit.

The method computes its binomial tails, funnel limits and reference quantiles through
method.distributions (the Boost ufuncs of scipy.special, with scipy.stats's argument and support
checks) so that a process running it need not import scipy.stats. Hypothesis draws counts,
sizes, rates and probabilities, including the edges (k outside 0..n, n = 0, rates of 0 and 1,
probabilities of 0 and 1, invalid parameters), and each must equal scipy.stats exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from method import distributions

counts = st.integers(-3, 2100).map(float) | st.sampled_from([np.inf, -np.inf, np.nan, 2.5])
sizes = st.integers(0, 2000).map(float) | st.sampled_from([-1.0, 3.5])
rates = st.sampled_from([0.0, 1.0, 1e-9, 1.0 - 1e-9, -0.1, 1.1]) | st.floats(0.0, 1.0)
probabilities = st.sampled_from([0.0, 1.0, 1e-12, 0.5]) | st.floats(0.0, 1.0)


def same(ours: object, theirs: object) -> bool:
    a, b = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(counts, sizes, rates), min_size=1, max_size=30))
def test_binomial_functions_equal_scipy_stats(rows: list[tuple[float, float, float]]) -> None:
    k, n, p = (np.array(column) for column in zip(*rows, strict=True))
    assert same(distributions.binom_pmf(k, n, p), stats.binom.pmf(k, n, p))
    assert same(distributions.binom_cdf(k, n, p), stats.binom.cdf(k, n, p))
    assert same(distributions.binom_sf(k, n, p), stats.binom.sf(k, n, p))
    assert same(distributions.binom_cdf(k - 1, n, 0.3), stats.binom.cdf(k - 1, n, 0.3))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(probabilities, sizes, rates), min_size=1, max_size=30))
def test_binomial_quantile_equals_scipy_stats(rows: list[tuple[float, float, float]]) -> None:
    q, n, p = (np.array(column) for column in zip(*rows, strict=True))
    assert same(distributions.binom_ppf(q, n, p), stats.binom.ppf(q, n, p))
    assert same(distributions.binom_ppf(0.025, n, p), stats.binom.ppf(0.025, n, p))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 5000.0), min_size=1, max_size=10),
    st.lists(st.floats(0.0, 5000.0), min_size=1, max_size=10),
)
def test_beta_quantile_equals_scipy_stats(xs: list[float], ns: list[float]) -> None:
    """As method.noise asks for them: Gauss-Legendre probabilities for rows of Beta(x + 1/2,
    n - x + 1/2), and single values at the edges."""
    width = min(len(xs), len(ns))
    x, n = np.array(xs[:width])[:, None], np.array(ns[:width])[:, None]
    q = (np.polynomial.legendre.leggauss(12)[0] + 1.0) / 2.0
    assert same(
        distributions.beta_ppf(q, x + 0.5, n - x + 0.5), stats.beta.ppf(q, x + 0.5, n - x + 0.5)
    )
    for edge in (0.0, 1.0, 0.5):
        assert same(distributions.beta_ppf(edge, 2.0, 3.0), stats.beta.ppf(edge, 2.0, 3.0))
    assert same(distributions.beta_ppf(0.5, 0.0, 3.0), stats.beta.ppf(0.5, 0.0, 3.0))


def test_a_scalar_comes_back_as_scipy_gives_it() -> None:
    ours, theirs = distributions.binom_pmf(3, 10, 0.2), stats.binom.pmf(3, 10, 0.2)
    assert type(ours) is type(theirs) and ours == theirs
