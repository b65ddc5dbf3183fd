"""Benchmark statistics against scipy/statsmodels and against published concordance figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom
from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa
from statsmodels.stats.proportion import proportion_confint

from method import stats
from method.overdispersion import phi_winsorised


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_statsmodels(case) -> None:
    x, n = case
    lo, hi = proportion_confint(x, n, alpha=0.05, method="wilson")
    ours = stats.wilson(x, n)
    assert ours[0] == pytest.approx(lo, abs=1e-6) and ours[1] == pytest.approx(hi, abs=1e-6)


def spiegelhalter_reference(n: int, theta: float, p: float) -> float:
    """Appendix A.1.1 with scipy's binomial: r_p = quantile, alpha interpolates, limit = (r_p - alpha)/n."""
    r = binom.ppf(p, n, theta)
    f, f_below = binom.cdf(r, n, theta), binom.cdf(r - 1, n, theta)
    alpha = (f - p) / (f - f_below) if f > f_below else 0.0
    return min(1.0, max(0.0, (r - alpha) / n))


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 4000), st.floats(0.001, 0.7), st.sampled_from([0.001, 0.025, 0.975, 0.999]))
def test_exact_binomial_funnel_limits_match_scipy(n, theta, p) -> None:
    assert stats.binomial_limit(n, theta, p) == pytest.approx(
        spiegelhalter_reference(n, theta, p), abs=1e-9
    )


def test_funnel_flags_zero_met_exon14_in_400_dna_only_tests() -> None:
    limits = stats.funnel_limits(400, 0.018)
    assert stats.funnel_position(0, 400, limits) == "below_alarm_limit"
    assert stats.funnel_position(7, 400, limits) == "inside"
    assert stats.wilson(0, 400)[1] < 0.010  # below the standard's expected 1.0-4.0%


def test_overdispersion_is_one_without_excess_variation_and_grows_with_it() -> None:
    rng = np.random.default_rng(3)
    ns = [500] * 40
    calm = [int(rng.binomial(500, 0.1)) for _ in ns]
    wild = [int(rng.binomial(500, p)) for p in rng.uniform(0.02, 0.25, 40)]
    assert 0.5 < phi_winsorised(calm, ns, sum(calm) / sum(ns)) < 1.6
    assert phi_winsorised(wild, ns, sum(wild) / sum(ns)) > 5


@pytest.mark.filterwarnings(
    "ignore:invalid value:RuntimeWarning"
)  # statsmodels on degenerate tables
@settings(max_examples=400, deadline=None)
@given(st.integers(0, 300), st.integers(0, 300), st.integers(0, 300), st.integers(0, 300))
def test_kappa_and_its_interval_match_statsmodels(a, b, c, d) -> None:
    table = np.array([[a, b], [c, d]])
    ours = stats.cohens_kappa(a, b, c, d)
    n = a + b + c + d
    pe = ((a + b) * (a + c) + (c + d) * (b + d)) / n**2 if n else 1.0
    if n == 0 or pe >= 1.0 - 1e-12:
        assert ours is None
        return
    assert ours is not None
    reference = sm_kappa(table)
    kappa, se, (lo, hi) = ours
    assert kappa == pytest.approx(reference.kappa, abs=1e-9)
    if math.isnan(reference.std_kappa):
        # statsmodels takes the square root of a variance that rounded to a tiny negative number.
        assert reference.var_kappa > -1e-12 and se == 0.0
        return
    assert se == pytest.approx(reference.std_kappa, abs=1e-9)
    assert lo == pytest.approx(max(-1.0, reference.kappa_low), abs=1e-6)
    assert hi == pytest.approx(min(1.0, reference.kappa_upp), abs=1e-6)


def test_kappa_textbook_example() -> None:
    # Cohen's kappa, standard worked example (50 items: 20 both yes, 5 / 10 split, 15 both no):
    # po = 0.70, pe = 0.50, kappa = 0.40.
    result = stats.cohens_kappa(20, 5, 10, 15)
    assert result is not None
    kappa, _, _ = result
    assert kappa == pytest.approx(0.40, abs=1e-12)


@pytest.mark.parametrize(
    "source,table,published",
    [
        # Wynes et al., J Thorac Oncol 2014;9:631-638 (PMID 24722153): ALK IHC (D5F3) vs FISH, 100 evaluable
        # cases, sensitivity 90%, specificity 95%, accuracy 93%. The only integer table with those figures
        # has 40 FISH-positive cases (36 IHC-positive) and 60 FISH-negative (57 IHC-negative).
        ("Wynes 2014", (36, 3, 4, 57), {"ppa": 0.90, "npa": 0.95, "opa": 0.93}),
        # Acta Cytologica 2015;59(2):213: ALK ICC on FNA smears vs FISH, 47 specimens: 5 of 7 FISH-positive
        # ICC-positive (71.4%), 39 of 40 FISH-negative ICC-negative (97.5%), overall correlation 93.6%.
        ("Acta Cytol 2015", (5, 1, 2, 39), {"ppa": 0.714, "npa": 0.975, "opa": 0.936}),
        # Minca et al., J Mol Diagn 2013;15:341-346 (PMID 23499337): ultrasensitive ALK IHC concordant with
        # FFPE-FISH on 229 of 231 dual-informative samples (31 positive, 198 negative); the two discordant
        # cases were IHC-negative / FISH borderline-positive.
        ("Minca 2013", (31, 0, 2, 198), {"opa": 0.991, "npa": 1.0}),
    ],
)
def test_published_concordance_tables_are_reproduced(source, table, published) -> None:
    agreement = stats.agreement(*table)
    for name, value in published.items():
        assert round(getattr(agreement, name), 3) == pytest.approx(value, abs=5e-4), (source, name)
    # And the kappa for each table is what statsmodels computes from the same counts.
    a, b, c, d = table
    assert agreement.kappa == pytest.approx(sm_kappa(np.array([[a, b], [c, d]])).kappa)


def test_agreement_is_undefined_not_invented_without_data() -> None:
    empty = stats.agreement(0, 0, 0, 0)
    assert empty.ppa is None and empty.npa is None and empty.kappa is None
    only_negatives = stats.agreement(0, 0, 0, 30)
    assert only_negatives.ppa is None and only_negatives.npa == 1.0 and only_negatives.kappa is None


@pytest.mark.parametrize(
    "counts,q,expected",
    [
        ([0, 0, 3, 0, 1], 0.5, 2),
        ([0, 0, 3, 0, 1], 0.9, 4),
        ([5], 0.5, 0),
        ([1, 1], 0.5, 0),
        ([1, 1], 0.51, 1),
    ],
)
def test_histogram_quantiles(counts, q, expected) -> None:
    assert stats.histogram_quantile(counts, q) == expected
    assert math.isfinite(expected)
