"""The benchmark's vectorised paths give what the one-site-at-a-time reference gives.

The benchmark computes most figures for every site (or stratum) at once: funnel limits once per
distinct (n, rate), mid-P values of noisy counts one noise shift at a time for only the sites the
shift reaches, the stratum rows' intervals and positions as arrays. Hypothesis draws many sites
with mixed volumes, rates and noise, and each site's figure must equal the scalar computation of
the same formula (exactly where the arithmetic is the same, to 1e-9 where the reference takes another exact
route: the method's own pmfs summed, where the vectorised path calls scipy's distributions)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import gammaln

from method import benchmark, pvalues, stats, strata
from protos.rarenet.v1 import summary_pb2 as pb

volumes = st.integers(0, 400)
rates = st.sampled_from([0.0, 1.0]) | st.floats(0.001, 0.999)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(volumes, rates), min_size=1, max_size=40))
def test_funnel_limits_of_many_pairs_equal_each_pair_alone(pairs: list[tuple[int, float]]) -> None:
    ns = np.array([n for n, _ in pairs], dtype=float)
    thetas = np.array([t for _, t in pairs])
    together = stats.funnel_limits_many(ns, thetas)
    for i, (n, theta) in enumerate(pairs):
        alone = stats.funnel_limits_many(np.array([float(n)]), theta)
        reference = stats.funnel_limits(n, theta)  # cumulated pmf: the scalar route
        for name in strata.LIMIT_NAMES:
            assert together[name][i] == alone[name][0] or (n == 0 and np.isnan(alone[name][0]))
            if n > 0 and 0 < theta < 1:  # at a rate of 0 or 1 the limits are drawn at it
                assert together[name][i] == pytest.approx(getattr(reference, name), abs=1e-9)


def _noise(kind: str) -> benchmark._Noise:
    summary = pb.SiteSummary()
    if kind == "cell_key":
        p = summary.policy.perturbation
        p.mechanism, p.table, p.max_noise, p.noise_variance = "cell_key", "rarenet-ptable-1", 2, 1.2
        p.zero_exact = True
    return benchmark._Noise(summary)


site = st.tuples(
    st.integers(1, 300),  # valid results
    st.floats(0.0, 0.3),  # share positive
    st.integers(1, 12),  # cells summed
    st.sampled_from(["none", "cell_key"]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(site, min_size=2, max_size=25), st.floats(0.001, 0.2))
def test_noisy_mid_p_of_many_sites_equals_each_site_alone(
    sites: list[tuple[int, float, int, str]], target: float
) -> None:
    n = np.array([s[0] for s in sites], dtype=float)
    x = np.floor(n * np.array([s[1] for s in sites]))
    noises = [_noise(s[3]) for s in sites]
    weights = [nz.weights(s[2], int(xi)) for nz, s, xi in zip(noises, sites, x)]
    x_rest, n_rest = x.sum() - x, n.sum() - n
    low, high = benchmark._weighted(
        benchmark._fisher_at(x, n, x_rest, n_rest, weights), x, n, weights
    )
    low_only = benchmark._weighted_lower(
        benchmark._fisher_lower_at(x, n, x_rest, n_rest, weights), x, n, weights
    )
    below = benchmark._weighted_lower(
        benchmark._binomial_lower_at(x, n, target, weights), x, n, weights
    )
    assert np.array_equal(low, low_only)
    for i, (valid, _, cells, _) in enumerate(sites):
        xi, xr, nr = int(x[i]), int(x_rest[i]), int(n_rest[i])
        if nr <= 0:
            continue
        ref_low, ref_high = _fisher_with_noise(xi, valid, xr, nr, weights[i])
        assert low[i] == pytest.approx(ref_low, abs=1e-9)
        assert high[i] == pytest.approx(ref_high, abs=1e-9)
        ref_below = benchmark._lower_vs(xi, valid, target, noises[i], cells)
        assert below[i] == pytest.approx(ref_below, abs=1e-9)


def _fisher_with_noise(
    x: int, n: int, x_rest: int, n_rest: int, noise: np.ndarray
) -> tuple[float, float]:
    """One site's mid-P tails, one noise shift d at a time: Fisher's exact test of the true count
    x - d (0 and 1 beyond 0..n), weighted by the noise's probability of d."""
    half = (len(noise) - 1) // 2
    low = high = 0.0
    for d, w in zip(range(-half, half + 1), noise):
        k = x - d
        if k < 0:
            low_k, high_k = 0.0, 1.0
        elif k > n:
            low_k, high_k = 1.0, 0.0
        else:
            low_k, high_k = pvalues.fisher_tails(k, n, x_rest, n_rest)
        low += w * low_k
        high += w * high_k
    return min(low, 1.0), min(high, 1.0)


stratum = st.builds(
    pb.StratumCounts,
    biomarker=st.sampled_from(["EGFR", "ALK"]),
    method=st.sampled_from(["all", "ngs_dna"]),
    specimen=st.sampled_from(["tissue", "plasma"]),
    tests=st.integers(0, 200),
    positive=st.integers(0, 60),
    negative=st.integers(0, 140),
    withheld=st.booleans(),
    suppressed_cells=st.lists(st.sampled_from(["positive", "negative", "failed"]), max_size=2),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(stratum, max_size=8), min_size=1, max_size=12))
def test_stratum_rows_equal_the_scalar_figures(site_strata: list[list[pb.StratumCounts]]) -> None:
    summaries = {f"site-{i:02d}": pb.SiteSummary(strata=s) for i, s in enumerate(site_strata)}
    by_site, network = strata.rows_and_network(strata.read(summaries), 0.95, 0.998)
    assert list(by_site) == sorted(summaries)
    rows = [row for site_rows in by_site.values() for row in site_rows]
    assert [r["site_id"] for r in rows] == [
        site for site, s in sorted(summaries.items()) for _ in s.strata
    ]

    def released(s: pb.StratumCounts | dict) -> bool:
        suppressed = set(s["suppressed_cells"] if isinstance(s, dict) else s.suppressed_cells)
        withheld = s["withheld"] if isinstance(s, dict) else s.withheld
        return not withheld and not {"positive", "negative"} & suppressed

    pooled: dict[tuple[str, str, str], list[int]] = {}
    for s in (s for summary in summaries.values() for s in summary.strata):
        if released(s):
            cell = pooled.setdefault((s.biomarker, s.method, s.specimen), [0, 0])
            cell[0] += s.positive
            cell[1] += s.negative
    assert [(e["biomarker"], e["method"], e["specimen"]) for e in network] == sorted(pooled)
    for row in rows:
        key = (row["biomarker"], row["method"], row["specimen"])
        x, n = row["positive"], row["positive"] + row["negative"]
        if not released(row):
            assert row["status"] == "withheld" and row["limits"] is None
            continue
        theta = pooled[key][0] / sum(pooled[key]) if sum(pooled[key]) else 0.0
        assert row["network_rate"] == theta
        if n == 0:
            assert row["status"] == "no_data" and row["limits"] is None
            continue
        limits = stats.FunnelLimits(*stats_limits(n, theta))
        assert row["ci95"] == list(stats.wilson(x, n))
        assert row["rate"] == x / n
        assert row["limits"] == {k: getattr(limits, k) for k in strata.LIMIT_NAMES}
        assert row["status"] == benchmark.funnel_status(x, n, limits)


def stats_limits(n: int, theta: float) -> list[float]:
    """The limits of one stratum computed on its own."""
    alone = stats.funnel_limits_many(np.array([float(n)]), theta)
    return [float(alone[k][0]) for k in strata.LIMIT_NAMES]


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 3000), st.floats(0.001, 0.999), st.floats(1e-4, 0.9995))
def test_beta_binomial_pmf_equals_the_gammaln_formula(n: int, theta: float, rho: float) -> None:
    strength = 1.0 / min(rho, 0.999) - 1.0
    a, b = theta * strength, (1.0 - theta) * strength
    k = np.arange(n + 1, dtype=float)
    log_pmf = (
        gammaln(n + 1.0)
        - gammaln(k + 1.0)
        - gammaln(n - k + 1.0)
        + gammaln(k + a)
        + gammaln(n - k + b)
        - gammaln(n + a + b)
        + gammaln(a + b)
        - gammaln(a)
        - gammaln(b)
    )
    pmf = np.exp(log_pmf - log_pmf.max())
    assert np.array_equal(pvalues.beta_binomial_pmf(n, theta, rho), pmf / pmf.sum())


def test_a_shared_binomial_pmf_cannot_be_changed_by_a_caller() -> None:
    pmf = pvalues.binomial_pmf(50, 0.3)
    with pytest.raises(ValueError):
        pmf[0] = 1.0
    assert pvalues.binomial_pmf(50, 0.3)[0] == pytest.approx(0.7**50)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 60), st.integers(1, 300), st.integers(1, 300), st.integers(1, 40), st.data())
def test_noisy_lower_tail_equals_the_convolved_pmf(
    positives: int, group: int, rest: int, cells: int, data: st.DataObject
) -> None:
    """The method-class test's noisy lower mid-P without the convolution equals it with one."""
    total = group + rest
    positives = min(positives, total)
    offset, pmf = pvalues.hypergeometric_pmf(positives, group, total)
    x = data.draw(st.integers(offset, offset + len(pmf) - 1))
    noise = _noise("cell_key").pmf(cells)
    shift, convolved = pvalues.with_noise(pmf, noise)
    expected = pvalues.tails(convolved, x, offset + shift)[0]
    assert pvalues.noisy_lower_tail(pmf, offset, noise, x) == pytest.approx(expected, rel=1e-12)
