"""Disclosure control: merging, withholding, small-count suppression, and its properties."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from node.cellkey import CellKeys
from node.config import Disclosure
from node.disclosure import CELLS, apply, apply_min_denominator, suppress_small_counts
from protos.rarenet.v1 import summary_pb2 as pb


def stratum(b, m, s, pos, neg, fail=0, eq=0):
    return pb.StratumCounts(
        biomarker=b,
        method=m,
        specimen=s,
        histology_group="all",
        tests=pos + neg + fail + eq,
        positive=pos,
        negative=neg,
        failed=fail,
        equivocal=eq,
    )


def test_small_strata_merge_into_specimen_any_then_method_any() -> None:
    strata = [
        stratum("MET_EX14", "ngs_dna", "tissue", 0, 400),  # 0 positives in 400: released as it is
        stratum("MET_EX14", "ngs_dna", "cytology", 0, 6),  # small: merged with plasma below
        stratum("MET_EX14", "ngs_dna", "plasma", 1, 4),
        stratum("MET_EX14", "pcr", "tissue", 1, 3),  # small: merged over methods with ihc
        stratum("MET_EX14", "ihc", "tissue", 0, 6),
        stratum("RET", "fish", "tissue", 0, 2),  # small even merged: withheld, and said so
    ]
    out = {
        (s.biomarker, s.method, s.specimen): s for s in apply_min_denominator(strata, 10, "merge")
    }
    assert (
        out["MET_EX14", "ngs_dna", "tissue"].positive,
        out["MET_EX14", "ngs_dna", "tissue"].tests,
    ) == (0, 400)
    merged = out["MET_EX14", "ngs_dna", "any"]
    assert (merged.tests, merged.positive) == (11, 1) and "merged" in merged.disclosure_note
    over_methods = out["MET_EX14", "any", "any"]  # pcr (4) + ihc (6) = 10 tests
    assert (over_methods.tests, over_methods.positive, over_methods.withheld) == (10, 1, False)
    assert out["RET", "any", "any"].withheld
    assert set(out) == {
        ("MET_EX14", "ngs_dna", "tissue"),
        ("MET_EX14", "ngs_dna", "any"),
        ("MET_EX14", "any", "any"),
        ("RET", "any", "any"),
    }
    withheld = [s for s in out.values() if s.withheld]
    assert all(
        "withheld" in s.disclosure_note and s.tests == 0 and s.positive == 0 for s in withheld
    )


def test_withhold_action_marks_each_small_stratum() -> None:
    out = apply_min_denominator(
        [stratum("ROS1", "fish", "tissue", 1, 3), stratum("ROS1", "ngs_rna", "tissue", 1, 99)],
        10,
        "withhold",
    )
    assert [(s.method, s.withheld) for s in sorted(out, key=lambda s: s.method)] == [
        ("fish", True),
        ("ngs_rna", False),
    ]


def test_complementary_suppression_hides_a_second_cell() -> None:
    s = stratum("ALK", "ihc", "tissue", 2, 120, 9, 0)
    suppress_small_counts(s, 5)
    assert list(s.suppressed_cells) == [
        "positive",
        "failed",
    ]  # failed is the smallest other non-zero cell
    assert (s.positive, s.failed, s.tests, s.negative) == (0, 0, 131, 120)
    lone = stratum("ALK", "ihc", "tissue", 3, 0)
    suppress_small_counts(lone, 5)
    assert lone.tests == 0 and list(lone.suppressed_cells) == ["positive"]


strata_strategy = st.lists(
    st.builds(
        stratum,
        st.sampled_from(["EGFR", "ALK", "MET_EX14"]),
        st.sampled_from(["ngs_dna", "ihc", "all"]),
        st.sampled_from(["tissue", "cytology", "plasma"]),
        st.integers(0, 30),
        st.integers(0, 60),
        st.integers(0, 8),
        st.integers(0, 3),
    ),
    max_size=20,
    unique_by=lambda s: (s.biomarker, s.method, s.specimen),
)


@settings(max_examples=300, deadline=None)
@given(strata_strategy, st.integers(1, 40), st.sampled_from(["merge", "withhold"]))
def test_no_released_stratum_under_threshold_and_totals_conserved(strata, n, action) -> None:
    out = apply_min_denominator(
        [s for s in strata if s.method != "all"], n, action
    ) + apply_min_denominator([s for s in strata if s.method == "all"], n, action)
    for s in out:
        if not s.withheld:
            assert s.tests >= n
            assert sum(getattr(s, c) for c in CELLS) == s.tests
    original: defaultdict[tuple[str, bool], int] = defaultdict(int)
    released: defaultdict[tuple[str, bool], int] = defaultdict(int)
    for s in strata:
        original[(s.biomarker, s.method == "all")] += s.tests
    for s in out:
        released[(s.biomarker, s.method == "all")] += s.tests
    for key, total in original.items():
        assert released[key] <= total
        withheld_here = any(
            s.withheld and s.biomarker == key[0] and (s.method == "all") == key[1] for s in out
        )
        if not withheld_here:
            assert released[key] == total, "counts were lost without a withheld marker"


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(2, 10),
)
def test_no_suppressed_cell_can_be_recomputed_from_margins(pos, neg, fail, eq, threshold) -> None:
    original = stratum("EGFR", "ngs_dna", "tissue", pos, neg, fail, eq)
    s = pb.StratumCounts()
    s.CopyFrom(original)
    suppress_small_counts(s, threshold)
    hidden = set(s.suppressed_cells)
    released = [c for c in CELLS if c not in hidden]
    for c in released:
        value = getattr(s, c)
        assert value == getattr(original, c)
        assert value == 0 or value >= threshold
    if hidden:
        # With tests released, one hidden cell would be tests minus the others: never exactly one.
        assert len(hidden) >= 2 or s.tests == 0
    if s.tests:
        assert s.tests == original.tests


def test_apply_records_the_policy_and_withholds_small_tables() -> None:
    summary = pb.SiteSummary(
        strata=[stratum("EGFR", "ngs_dna", "tissue", 40, 60)],
        concordance=[
            pb.ConcordanceTable(
                kind="inter_method",
                biomarker="ALK",
                index_method="ihc",
                comparator_method="fish",
                both_negative=4,
            )
        ],
        panel=pb.PanelCoverage(patients=3, with_all_required=1),
    )
    out = apply(summary, Disclosure(min_denominator=10), CellKeys())
    assert out.policy.min_denominator == 10 and out.policy.small_stratum_action == "merge"
    assert out.policy.perturbation.mechanism == "cell_key" and out.policy.perturbation.zero_exact
    assert out.concordance[0].withheld and out.concordance[0].both_negative == 0
    assert out.panel.withheld and out.panel.patients == 0
    assert summary.panel.patients == 3  # the input is left as it was
