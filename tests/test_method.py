"""The method's statistics against scipy and statsmodels: mid-P values, Fisher's test, the
beta-binomial, Benjamini-Hochberg, overdispersion, shrinkage, Newcombe's interval, EQA pass marks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep

from coordinator.standards import DEFAULT_STANDARD
from method import eqa, noise, pvalues, rare, stats
from method.fdr import bh_qvalues
from method.overdispersion import estimate
from method.standard import parse
from protos.rarenet.v1 import eqa_pb2 as epb

cases = st.integers(1, 3000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@settings(max_examples=300, deadline=None)
@given(cases, st.floats(0.0005, 0.9))
def test_binomial_mid_p_is_scipy_exact_less_half_the_observed(case, theta) -> None:
    x, n = case
    low, high = pvalues.binomial_tails(x, n, theta)
    at = sps.binom.pmf(x, n, theta)
    exact_low = sps.binomtest(x, n, theta, alternative="less").pvalue
    exact_high = sps.binomtest(x, n, theta, alternative="greater").pvalue
    assert low == pytest.approx(exact_low - 0.5 * at, abs=1e-10)
    assert high == pytest.approx(exact_high - 0.5 * at, abs=1e-10)
    assert pvalues.binomial_tails(x, n, theta, mid=False) == pytest.approx(
        (exact_low, exact_high), abs=1e-10
    )


@settings(max_examples=200, deadline=None)
@given(cases, cases)
def test_fisher_mid_p_matches_scipy_fisher_exact(a, b) -> None:
    (x, n), (y, m) = a, b
    table = [[x, n - x], [y, m - y]]
    offset, pmf = pvalues.hypergeometric_pmf(x + y, n, n + m)
    at = pmf[x - offset]
    low, high = pvalues.fisher_tails(x, n, y, m)
    assert low == pytest.approx(
        sps.fisher_exact(table, alternative="less").pvalue - 0.5 * at, abs=1e-9
    )
    assert high == pytest.approx(
        sps.fisher_exact(table, alternative="greater").pvalue - 0.5 * at, abs=1e-9
    )
    many = pvalues.fisher_tails_many(*(np.array([v], dtype=float) for v in (x, n, y, m)))
    assert (many[0][0], many[1][0]) == pytest.approx((low, high), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 800), st.floats(0.001, 0.6), st.floats(0.0001, 0.4))
def test_beta_binomial_matches_scipy(n, theta, rho) -> None:
    strength = 1 / rho - 1
    ours = pvalues.beta_binomial_pmf(n, theta, rho)
    theirs = sps.betabinom.pmf(np.arange(n + 1), n, theta * strength, (1 - theta) * strength)
    assert np.allclose(ours, theirs, atol=1e-10)
    assert np.allclose(
        pvalues.beta_binomial_pmf(n, theta, 0.0), sps.binom.pmf(np.arange(n + 1), n, theta)
    )


def test_boundaries_x_zero_and_x_n_behave() -> None:
    # x = n = 1 at 50%: not an alarm any more (the old funnel flagged 1/1 as alarm_high).
    low, high = pvalues.binomial_tails(1, 1, 0.5)
    assert pvalues.two_sided(low, high) == pytest.approx(0.5)
    # ROS1 at 1.56%, n = 10: the old funnel gave alert_high 14.6% of the time at the true rate;
    # a two-sided mid-P of 0.05 or less now happens with probability at most 5%.
    theta = 0.0156
    chance = 0.0
    for x in range(11):
        lo, hi = pvalues.binomial_tails(x, 10, theta)
        assert 0 < lo <= 1 and 0 < hi <= 1
        if pvalues.two_sided(lo, hi) <= 0.05:
            chance += sps.binom.pmf(x, 10, theta)
    assert chance <= 0.05
    # Zero positives: the p-value is half the probability of zero, exactly.
    assert pvalues.binomial_tails(0, 400, 0.02)[0] == pytest.approx(0.5 * 0.98**400)
    # A test of n = 0 is not a test: the whole mass is at 0 and both tails are 1/2.
    assert pvalues.binomial_tails(0, 0, 0.02) == (0.5, 0.5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=60))
def test_bh_qvalues_match_statsmodels(ps) -> None:
    assert bh_qvalues(ps) == pytest.approx(list(multipletests(ps, method="fdr_bh")[1]), abs=1e-12)


def test_overdispersion_chi_square_and_tau2_follow_spiegelhalter_2005() -> None:
    rng = np.random.default_rng(11)
    ns = rng.integers(50, 1000, 40)
    calm = [int(rng.binomial(n, 0.1)) for n in ns]
    theta = sum(calm) / sum(ns)
    od = estimate(calm, list(ns), theta)
    # The test: I phi against chi-square on I - 1 degrees of freedom.
    assert od.p == pytest.approx(sps.chi2.sf(od.chi2, od.df))
    rates = rng.beta(2, 18, 40)
    wild = [int(rng.binomial(n, p)) for n, p in zip(ns, rates)]
    theta = sum(wild) / sum(ns)
    od = estimate(wild, list(ns), theta)
    assert od.applied and od.p is not None and od.p < 1e-6
    # DerSimonian-Laird on the arcsine scale (FunnelPlotR): (I phi - (I - 1)) / (sum w - sum w^2/sum w).
    w = 4.0 * ns
    assert od.tau2_dl == pytest.approx((od.chi2 - od.df) / (w.sum() - (w * w).sum() / w.sum()))
    # The applied variance starts at zero at the test's critical value: no jump.
    critical = sps.chi2.isf(0.05, od.df)
    assert od.tau2 == pytest.approx((od.chi2 - critical) / (w.sum() - (w * w).sum() / w.sum()))
    # The true between-lab spread of rates is recovered on the probability scale: rho = 4 tau^2.
    true_rho = rates.var() / (theta * (1 - theta))
    assert 0.3 * true_rho < 4 * od.tau2_dl < 3 * true_rho
    # Fewer than 10 sites: never applied.
    assert not estimate(wild[:9], list(ns[:9]), theta).applied


def test_funnel_limits_widen_continuously_with_overdispersion() -> None:
    base = stats.funnel_limits(500, 0.05)
    tiny = stats.funnel_limits(500, 0.05, 1e-9)
    wide = stats.funnel_limits(500, 0.05, 0.01)
    assert tiny.lower998 == pytest.approx(base.lower998, abs=1e-6)
    assert tiny.upper998 == pytest.approx(base.upper998, abs=1e-6)
    assert wide.lower998 <= base.lower998 and wide.upper998 >= base.upper998
    # The standard's [funnel] levels are honoured: 90% limits lie inside 95% ones.
    ninety = stats.funnel_limits(500, 0.05, 0.0, 0.90, 0.998)
    assert base.lower95 <= ninety.lower95 and ninety.upper95 <= base.upper95


@settings(max_examples=100, deadline=None)
@given(cases, st.floats(0.001, 0.3), st.floats(0.0001, 0.3))
def test_shrinkage_posterior_is_scipy_beta(case, theta, rho) -> None:
    x, n = case
    out = rare.shrinkage(x, n, theta, rho, theta, 0.01)
    strength = 1 / max(rho, rare.RHO_FLOOR) - 1
    posterior = sps.beta(theta * strength + x, (1 - theta) * strength + n - x)
    assert out["p_below_network"] == pytest.approx(posterior.cdf(theta), abs=1e-9)
    assert out["p_below_expected"] == pytest.approx(posterior.cdf(0.01), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(cases, cases)
def test_newcombe_difference_matches_statsmodels(a, b) -> None:
    (x1, n1), (x2, n2) = a, b
    lo, hi = confint_proportions_2indep(x1, n1, x2, n2, method="newcomb", compare="diff")
    ours = stats.newcombe_difference(x1, n1, x2, n2)
    assert ours == pytest.approx((lo, hi), abs=1e-6)


def test_noise_pmf_has_the_geometric_variance_and_adds_to_the_reference() -> None:
    for scale, cells in ((0.5, 1), (2.0, 3), (8.0, 2)):
        pmf = noise.geometric_pmf(scale, cells)
        k = np.arange(len(pmf)) - (len(pmf) - 1) // 2
        assert float(pmf.sum()) == pytest.approx(1.0)
        assert float((k * k * pmf).sum()) == pytest.approx(
            cells * noise.geometric_variance(scale), rel=1e-6
        )
    assert noise.geometric_variance(2.0) == pytest.approx(stats.geometric_noise_variance(2.0))
    # A scale so small that exp(-1/scale) underflows is no noise at all (it raised before: a
    # hostile site's summary broke GetBenchmark; tests/test_hostile_property.py found it).
    for tiny in (1e-6, 1e-3):
        assert noise.geometric_pmf(tiny, 3).tolist() == [1.0]
    assert max(noise.geometric_pmf(0.0015, 2)) == pytest.approx(1.0)  # just above: nearly none
    # Bounds: a claimed scale must be finite, non-negative and within the method's maximum.
    for bad in (math.nan, math.inf, -1.0, noise.MAX_NOISE_SCALE * 2):
        assert not noise.accepted_scale("geometric", bad)[0]
    assert noise.accepted_scale("geometric", 3.0)[0]


def test_eqa_sub_schemes_and_the_nine_case_pass_mark() -> None:
    standard = parse(DEFAULT_STANDARD.read_text())
    # Ten samples x three biomarkers, all three ALK positives missed: the pooled score is 90%, which
    # passed before; per sub-scheme ALK scores 70% and the round is failed.
    samples = [
        epb.EqaSample(sample_id=f"S{i}", biomarkers=["ALK", "EGFR", "KRAS"]) for i in range(10)
    ]
    round_ = epb.EqaRound(round_id="R", samples=samples, pass_share=0.9, points_correct=2)
    truth = {
        (f"S{i}", b): ("positive" if b == "ALK" and i < 3 else "negative", "")
        for i in range(10)
        for b in ("ALK", "EGFR", "KRAS")
    }
    calls = [epb.EqaCall(sample_id=s, biomarker=b, result="negative") for (s, b) in truth]
    sheet = eqa.score(
        round_,
        truth,
        "lab",
        epb.EqaResponse(calls=calls),
        pass_mark=lambda c: standard.eqa_pass_share(c, 0.9),
    )
    assert sheet.score == pytest.approx(0.9) and not sheet.passed
    parts = eqa.subschemes(sheet, lambda c: standard.eqa_pass_share(c, 0.9))
    assert parts["ALK"].score == pytest.approx(0.7) and not parts["ALK"].passed
    assert parts["EGFR"].passed and parts["KRAS"].passed
    # Nine cases: 88% is the mark (ESP), so 8 of 9 correct (88.9%) passes; 8 of 10 would not.
    assert standard.eqa_pass_share(9, 0.9) == 0.88 and standard.eqa_pass_share(10, 0.9) == 0.9
    nine = epb.EqaRound(
        round_id="R9",
        samples=[epb.EqaSample(sample_id=f"S{i}", biomarkers=["EGFR"]) for i in range(9)],
        pass_share=0.9,
        points_correct=2,
    )
    truth9 = {(f"S{i}", "EGFR"): ("positive" if i == 0 else "negative", "") for i in range(9)}
    calls9 = [epb.EqaCall(sample_id=s, biomarker=b, result="negative") for (s, b) in truth9]
    sheet9 = eqa.score(
        nine,
        truth9,
        "lab",
        epb.EqaResponse(calls=calls9),
        pass_mark=lambda c: standard.eqa_pass_share(c, 0.9),
    )
    assert sheet9.passed and sheet9.score == pytest.approx(8 / 9)


@pytest.mark.parametrize(
    ("history", "persistent"),
    [
        ([True, False, True], True),
        ([True, True], True),
        ([True, False, False, True], False),  # only 1 of the last 3
        ([True, None, True], True),  # a round not taken does not break the run
        ([False, False, True], False),
    ],
)
def test_persistent_poor_performance_is_2_of_3(history, persistent) -> None:
    assert eqa.persistent_poor(history) is persistent


def test_released_sum_of_perturbed_cells_matches_a_simulation_of_the_table() -> None:
    # Four cells of 150 tests at 2%, released through rarenet-ptable-1 (summary.proto): the exact
    # lower mid-P at 3 against 100,000 simulated releases.
    rng = np.random.default_rng(1)
    rows = {
        1: ([0, 1, 2], [0.6, 0.3, 0.1]),
        2: ([-1, 0, 1], [0.3, 0.4, 0.3]),
    }
    wide = ([-2, -1, 0, 1, 2], [0.1, 0.2, 0.4, 0.2, 0.1])
    true = rng.binomial(150, 0.02, size=(100_000, 4))
    released = true.copy()
    for count in np.unique(true):
        if count == 0:
            continue
        values, probs = rows.get(int(count), wide)
        where = true == count
        released[where] += rng.choice(values, size=int(where.sum()), p=probs)
    sums = released.sum(axis=1)
    simulated = (sums < 3).mean() + 0.5 * (sums == 3).mean()
    low, high = noise.released_sum_tails(3, [150] * 4, 0.02, "rarenet-ptable-1")
    assert low == pytest.approx(simulated, abs=0.0006)
    assert low + high == pytest.approx(1.0)
