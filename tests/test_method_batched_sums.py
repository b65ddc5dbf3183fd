"""Released sums of perturbed cells computed for many sites at once equal the one-site function
(noise.released_sum_tails, itself checked against brute-force enumeration and scipy in
test_method_perturbation.py) up to the order in which the same products are added."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from method import noise, pvalues

TABLE = "rarenet-ptable-1"

request = st.tuples(
    st.integers(0, 40),  # the released sum
    st.lists(st.integers(0, 600), max_size=14),  # valid results of each cell
    st.sampled_from([0.0, 1.0]) | st.floats(1e-4, 0.5),  # the rate
)


@settings(max_examples=80, deadline=None)
@given(st.lists(request, min_size=1, max_size=40))
def test_many_sums_equal_each_sum_alone(requests: list[tuple[int, list[int], float]]) -> None:
    lower, upper = noise.released_sum_tails_many(
        [r[0] for r in requests], [r[1] for r in requests], [r[2] for r in requests], TABLE
    )
    for i, (x, parts, theta) in enumerate(requests):
        low, high = noise.released_sum_tails(x, parts, theta, TABLE)
        assert lower[i] == pytest.approx(low, rel=1e-12, abs=1e-300)
        # the upper tail is 1 minus the lower sum in both: equal to the same absolute precision
        assert upper[i] == pytest.approx(high, rel=1e-12, abs=4e-16)


def test_rows_in_batches_smaller_than_the_group_are_the_same() -> None:
    """A group of rows larger than BATCH_CELLS is cut into batches: the cut changes nothing."""
    rng = np.random.default_rng(7)
    parts = [[int(v) for v in rng.integers(0, 300, size=12)] for _ in range(300)]
    xs, rates = [5] * 300, [float(r) for r in rng.uniform(0.001, 0.05, size=300)]
    whole = noise.released_sum_tails_many(xs, parts, rates, TABLE)
    kept = noise.BATCH_CELLS
    try:
        noise.BATCH_CELLS = 12 * 8 * 7  # seven rows a batch
        cut = noise.released_sum_tails_many(xs, parts, rates, TABLE)
    finally:
        noise.BATCH_CELLS = kept
    assert np.array_equal(whole[0], cut[0]) and np.array_equal(whole[1], cut[1])


reference = st.tuples(
    st.integers(0, 25),
    st.lists(st.integers(0, 400), min_size=1, max_size=12),
    st.floats(-2.0, 3000.0),  # the reference's unbiased positives (clamped to 0..n)
    st.sampled_from([0.0, 50.0, 3000.0, 40_000.0, 2_000_000.0]),  # its valid results
)


@settings(max_examples=40, deadline=None)
@given(st.lists(reference, min_size=1, max_size=20))
def test_many_lower_tails_against_uncertain_references_equal_each_alone(
    requests: list[tuple[int, list[int], float, float]],
) -> None:
    got = noise.released_sum_lower_many(
        [r[0] for r in requests],
        [r[1] for r in requests],
        [r[2] for r in requests],
        [r[3] for r in requests],
        TABLE,
    )
    for i, (x, parts, x_ref, n_ref) in enumerate(requests):
        assert noise.reference_nodes_many([x_ref], [n_ref], [float(sum(parts))])[0] == (
            noise.reference_nodes(x_ref, n_ref, float(sum(parts)))
        )
        want = noise.released_sum_lower(x, parts, x_ref, n_ref, TABLE)
        assert got[i] == pytest.approx(want, rel=1e-12, abs=1e-300)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 600), max_size=14), min_size=1, max_size=30),
    st.sampled_from([0.0, 1.0]) | st.floats(1e-4, 0.9),
)
def test_many_expected_excesses_equal_each_alone(parts: list[list[int]], theta: float) -> None:
    """The same terms summed the same way: equal to the last bit."""
    want = [noise.expected_excess(p, theta, TABLE) for p in parts]
    assert noise.expected_excess_many(parts, theta, TABLE) == want


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5000), st.floats(0.0, 1.0)), min_size=1, max_size=30),
    st.sampled_from([0.0, 1.0]) | st.floats(1e-4, 0.9),
    st.integers(1, 49),
)
def test_binomial_tails_along_a_range_equal_scipys_at_each_count(
    sites: list[tuple[int, float]], theta: float, width: int
) -> None:
    """The recurrences from scipy's tail at the first count give scipy's tail at every count
    (to 1e-12, growing with |ln p| far out; tails below 1e-200 to 1e-200 absolute)."""
    n = np.array([s[0] for s in sites], dtype=float)
    first = np.floor(n * np.array([s[1] for s in sites]))
    lower = pvalues.binomial_lower_along(first, width, n, theta)
    for j in range(width):
        want = pvalues.binomial_lower_many(np.minimum(first + j, n), n, theta)
        with np.errstate(divide="ignore"):
            scale = np.maximum(1.0, -np.log(np.maximum(want, 1e-300)) / 69.0)
        assert np.all(np.abs(lower[:, j] - want) <= 1e-12 * scale * want + 1e-200)
