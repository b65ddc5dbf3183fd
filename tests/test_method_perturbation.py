"""The method's model of cell-key perturbation, checked against independent code: the node's own
perturbation table (node/cellkey.py), scipy's binomial and beta distributions, and brute-force
enumeration of every released outcome."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from method import noise
from node import cellkey

TABLE = "rarenet-ptable-1"


def released_pmf(n: int, theta: float) -> dict[int, float]:
    """P(released = r) by enumeration: the true count from scipy's binomial, then the node's own
    table rows (node/cellkey.TABLE_ROWS; 3 or more uses the last row)."""
    out: dict[int, float] = {}
    for t in range(n + 1):
        values, weights = cellkey.TABLE_ROWS[min(t, 3)]
        for d, w in zip(values, weights, strict=True):
            out[t + d] = out.get(t + d, 0.0) + float(stats.binom.pmf(t, n, theta)) * w
    return out


def lr_score(null: dict[int, float], alt: dict[int, float], r: int) -> int:
    """The statistic as docs/method.md defines it: ln P(r | theta/2) - ln P(r | theta), at least
    -12 nats, rounded to 1/32 nat."""
    if null.get(r, 0.0) <= 0 or alt.get(r, 0.0) <= 0:
        return round(-12 * 32)
    return round(max(math.log(alt[r]) - math.log(null[r]), -12.0) * 32)


def brute_force_lr(
    released: list[int], parts: list[int], theta: float, rates: list[tuple[float, float]]
) -> float:
    nulls = [released_pmf(n, theta) for n in parts]
    alts = [released_pmf(n, theta / 2) for n in parts]
    observed = sum(lr_score(nulls[j], alts[j], r) for j, r in enumerate(released))
    total = 0.0
    for rate, weight in rates:
        under = [released_pmf(n, rate) for n in parts]
        above = at = 0.0
        for combo in itertools.product(*[sorted(u) for u in under]):
            p = float(np.prod([under[j][r] for j, r in enumerate(combo)]))
            t = sum(lr_score(nulls[j], alts[j], r) for j, r in enumerate(combo))
            above += p if t > observed else 0.0
            at += p if t == observed else 0.0
        total += weight * (above + 0.5 * at)
    return total


def test_the_method_and_the_node_use_the_same_table() -> None:
    assert noise.CELL_KEY_TABLES[TABLE] == cellkey.TABLE_ROWS[3][1]
    for count, row in noise.CELL_KEY_SMALL_ROWS[TABLE].items():
        values, weights = cellkey.TABLE_ROWS[count]
        assert row == tuple(zip(values, weights, strict=True))


@pytest.mark.parametrize(
    ("released", "parts", "theta"),
    [
        ([0, 1, 2], [20, 30, 15], 0.05),
        ([0, 0, 0], [40, 40, 40], 0.03),
        ([3, 1], [25, 10], 0.1),
        ([1, 2, 1, 0], [12, 14, 10, 9], 0.08),
        ([5], [30], 0.1),
        ([0], [0], 0.1),
    ],
)
def test_likelihood_ratio_p_value_is_the_enumerated_one(
    released: list[int], parts: list[int], theta: float
) -> None:
    got = noise.released_lr_lower(released, parts, theta, TABLE)
    assert got == pytest.approx(brute_force_lr(released, parts, theta, [(theta, 1.0)]), abs=1e-12)


def test_likelihood_ratio_p_value_over_an_uncertain_reference_is_the_enumerated_mixture() -> None:
    nodes = noise.reference_nodes(12.0, 400.0, 70.0)
    assert len(nodes) == noise.REFERENCE_NODES
    got = noise.released_lr_lower([0, 1], [30, 40], 0.03, TABLE, nodes)
    assert got == pytest.approx(brute_force_lr([0, 1], [30, 40], 0.03, nodes), abs=1e-12)


def test_reference_nodes_integrate_the_jeffreys_posterior() -> None:
    x, n = 37.0, 1500.0
    nodes = noise.reference_nodes(x, n, 300.0)
    rates = np.array([r for r, _ in nodes])
    weights = np.array([w for _, w in nodes])
    posterior = stats.beta(x + 0.5, n - x + 0.5)  # Gauss-Legendre on its quantiles: to 1e-3
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert (weights * rates).sum() == pytest.approx(posterior.mean(), rel=1e-3)
    assert (weights * rates**2).sum() == pytest.approx(posterior.moment(2), rel=1e-3)
    # A count under 1% of the reference's size: its rate is taken as known.
    assert noise.reference_nodes(x, n, 10.0) == [(x / n, 1.0)]


def test_expected_excess_is_the_enumerated_mean_shift() -> None:
    parts = [48, 96, 500, 2]
    theta = 0.02
    shift = sum(sum(r * p for r, p in released_pmf(n, theta).items()) - n * theta for n in parts)
    assert noise.expected_excess(parts, theta, TABLE) == pytest.approx(shift, abs=1e-9)
    assert noise.expected_excess(parts, theta, TABLE) > 0  # a true 1 is released as 1.5
    # Unbiased total: the released total minus the excess at the rate it implies.
    assert noise.unbiased_total(20.0, parts, TABLE) < 20.0


def test_likelihood_ratio_test_keeps_its_level() -> None:
    """The exact size of {p <= alpha} under the null, over every released outcome."""
    parts, theta = [80, 80], 0.03
    under = [released_pmf(n, theta) for n in parts]
    outcomes = {
        (a, b): under[0][a] * under[1][b]
        for a, b in itertools.product(sorted(under[0]), sorted(under[1]))
        if under[0][a] * under[1][b] > 1e-12
    }
    p = {o: noise.released_lr_lower(list(o), parts, theta, TABLE) for o in outcomes}
    for alpha in (0.0125, 0.05):
        size = sum(mass for o, mass in outcomes.items() if p[o] <= alpha)
        assert size <= alpha


@pytest.mark.slow
def test_likelihood_ratio_beats_the_released_sum_for_the_dna_only_lab() -> None:
    """The design claim of docs/method.md, computed exactly (no simulation): four quarters of 144
    valid results, MET exon 14 at 0.3% against a known 2%, the method-class family's first BH
    threshold 0.05/4. Exact counts: power 0.97; released sum: 0.88; likelihood ratio: >= 0.9."""
    n, null_rate, lab_rate, alpha = 144, 0.02, 0.003, 0.05 / 4
    top = 25
    null = np.array([released_pmf(n, null_rate).get(r, 0.0) for r in range(top)])
    lab = np.array([released_pmf(n, lab_rate).get(r, 0.0) for r in range(top)])
    grid = np.array(np.meshgrid(*[np.arange(top)] * 4, indexing="ij")).reshape(4, -1)
    p_null, p_lab = np.prod(null[grid], axis=0), np.prod(lab[grid], axis=0)

    def power(statistic: np.ndarray) -> float:
        """Mid-P of the observed statistic (larger = lower rate), by enumeration."""
        values, index = np.unique(statistic, return_inverse=True)
        mass = np.bincount(index, weights=p_null)
        above = mass[::-1].cumsum()[::-1] - mass
        mid = (above + 0.5 * mass)[index]
        return float(p_lab[mid <= alpha].sum())

    half = np.array([released_pmf(n, null_rate / 2).get(r, 0.0) for r in range(top)])
    score = np.array(
        [lr_score(dict(enumerate(null)), dict(enumerate(half)), r) for r in range(top)]
    )
    # Exact counts: flagged with 4 or fewer positives of 576 (mid-P 0.004 at 4, 0.015 at 5).
    assert float(stats.binom(4 * n, lab_rate).cdf(4)) == pytest.approx(0.969, abs=0.002)
    assert power(-grid.sum(axis=0)) == pytest.approx(0.880, abs=0.002)
    assert power(score[grid].sum(axis=0)) >= 0.9
    # The module's p-value agrees with the enumeration at an outcome near the threshold.
    outcome = [0, 2, 1, 0]
    p = noise.released_lr_lower(outcome, [n] * 4, null_rate, TABLE)
    observed = int(score[outcome].sum())
    values = score[grid].sum(axis=0)
    enumerated = p_null[values > observed].sum() + 0.5 * p_null[values == observed].sum()
    assert p == pytest.approx(enumerated, abs=1e-6)


def test_released_sum_against_an_uncertain_reference() -> None:
    parts = [144, 144, 144, 144]
    # A reference 1,000 times the lab's size: its rate is taken as known.
    known = noise.released_sum_lower(2, parts, 11520.0, 576000.0, TABLE)
    assert known == pytest.approx(noise.released_sum_tails(2, parts, 0.02, TABLE)[0], abs=1e-15)
    # A reference five times the lab's size, as in a network of six labs: less certain, so a
    # low count is less extreme than against a known rate (the plug-in rate over-flagged).
    assert noise.released_sum_lower(2, parts, 57.6, 2880.0, TABLE) > known


def test_method_classes_are_compared_for_drivers_dna_panels_miss() -> None:
    from bench import bench_method
    from coordinator.standards import DEFAULT_STANDARD
    from method.benchmark import compute
    from method.inputs import Inputs
    from method.standard import parse

    standard = parse(DEFAULT_STANDARD.read_text(encoding="utf-8"))
    full = bench_method.network(5, np.random.default_rng(3), dna_lab=True)
    result = compute(Inputs(full, set(), []), "2026Q3", standard)
    compared = {
        b for b, v in result["network"]["rare_drivers"].items() if "dna_only" in v["comparisons"]
    }
    assert compared == {"MET_EX14", "ROS1", "RET", "NTRK"}
    assert result["method"]["families"]["method_class"] == 4
    # BRAF V600E and ERBB2 are still tested for the DNA-only lab, in the window.
    window = {
        b
        for b, v in result["sites"]["lab-dna"]["rare_drivers"].items()
        if v.get("p_network") is not None
    }
    assert {"BRAF_V600E", "ERBB2"} <= window
