"""Intake's meaning checks of a summary's tables (coordinator/summary_checks.py): each refusal
names the table and what is wrong, with the standard's vocabulary and without it."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from coordinator.errors import InvalidRequest
from coordinator.standards import DEFAULT_STANDARD
from coordinator.standards import load as load_standard
from coordinator.summary_checks import MAX_BINS, MAX_COUNT, Vocabulary, check_summary
from protos.rarenet.v1 import summary_pb2 as pb

VOCABULARY = Vocabulary.of(load_standard(DEFAULT_STANDARD))
EDGES = [0.0, 5.0, 10.0, 100.0]


def valid() -> pb.SiteSummary:
    return pb.SiteSummary(
        site_id="lab-a",
        period="2026Q3",
        sequence=1,
        strata=[
            pb.StratumCounts(
                biomarker="EGFR",
                method="pcr",
                specimen="tissue",
                histology_group="all",
                tests=10,
                positive=3,
                negative=7,
            )
        ],
        turnaround=[pb.TurnaroundHistogram(specimen="tissue", counts=[2, 3], total=5)],
        concordance=[
            pb.ConcordanceTable(
                kind="inter_method",
                biomarker="EGFR",
                index_method="pcr",
                comparator_method="ngs_dna",
                both_positive=2,
                both_negative=8,
            )
        ],
        vaf=[pb.VafHistogram(biomarker="EGFR", method="pcr", edges=EDGES, counts=[1, 1, 1])],
        specimen_tests=[
            pb.SpecimenTests(specimen="tissue", tests=10, failed=1),
            pb.SpecimenTests(specimen="any", withheld=True),
        ],
    )


def _set(path: str, value: object) -> Callable[[pb.SiteSummary], None]:
    table, field = path.split(".")

    def mutate(m: pb.SiteSummary) -> None:
        setattr(getattr(m, table)[0], field, value)

    return mutate


def _extend(path: str, values: list) -> Callable[[pb.SiteSummary], None]:
    table, field = path.split(".")

    def mutate(m: pb.SiteSummary) -> None:
        getattr(getattr(m, table)[0], field).extend(values)

    return mutate


def _replace(field: str, values: list) -> Callable[[pb.SiteSummary], None]:
    def mutate(m: pb.SiteSummary) -> None:
        del getattr(m.vaf[0], field)[:]
        getattr(m.vaf[0], field).extend(values)

    return mutate


def _edges(values: list[float]) -> Callable[[pb.SiteSummary], None]:
    return _replace("edges", values)


REFUSED = {
    "turnaround specimen": (
        _set("turnaround.specimen", "blood"),
        "turnaround histogram blood: specimen 'blood' is not in the standard's vocabulary",
        True,
    ),
    "turnaround bins": (
        _extend("turnaround.counts", [0] * MAX_BINS),
        f"{MAX_BINS + 2} bins in the turnaround histogram tissue, more than the {MAX_BINS}",
        False,
    ),
    "turnaround total": (
        _set("turnaround.total", 6),
        "turnaround histogram tissue: the bins add up to 5, total is 6 and 0 are within target",
        False,
    ),
    "concordance pairs": (
        _set("concordance.both_negative", MAX_COUNT),
        "concordance table inter_method EGFR: 100,002 pairs is more than",
        False,
    ),
    "concordance kind": (
        _set("concordance.kind", "other"),
        "concordance table other EGFR: kind must be inter_method or tissue_plasma",
        False,
    ),
    "concordance biomarker": (
        _set("concordance.biomarker", "XYZ"),
        "concordance table inter_method XYZ: biomarker 'XYZ' is not in",
        True,
    ),
    "concordance index method": (
        _set("concordance.index_method", "guess"),
        "concordance table inter_method EGFR: index method 'guess' is not in",
        True,
    ),
    "concordance comparator method": (
        _set("concordance.comparator_method", "guess"),
        "concordance table inter_method EGFR: comparator method 'guess' is not in",
        True,
    ),
    "VAF biomarker": (
        _set("vaf.biomarker", "XYZ"),
        "VAF histogram XYZ/pcr: biomarker 'XYZ' is not in",
        True,
    ),
    "VAF method": (_set("vaf.method", "guess"), "VAF histogram EGFR/guess: method 'guess'", True),
    "VAF edge not finite": (
        _edges([0.0, math.inf, 100.0, 200.0]),
        "VAF histogram EGFR/pcr: bin edges must be finite and increasing",
        False,
    ),
    "VAF edge NaN": (
        _edges([0.0, math.nan, 100.0, 200.0]),
        "bin edges must be finite and increasing",
        False,
    ),
    "VAF edges not increasing": (
        _edges([0.0, 5.0, 5.0, 100.0]),
        "bin edges must be finite and increasing",
        False,
    ),
    "VAF edges": (
        _edges([float(e) for e in range(MAX_BINS + 1)]),
        f"{MAX_BINS + 1} bin edges in the VAF histogram EGFR/pcr, more than the {MAX_BINS}",
        False,
    ),
    "VAF results": (
        _replace("counts", [MAX_COUNT, 1, 0]),
        "VAF histogram EGFR/pcr: 100,001 results is more than",
        False,
    ),
    "VAF counts": (
        _replace("counts", [1, 1]),
        "VAF histogram EGFR/pcr: 4 edges need 3 counts, not 2",
        False,
    ),
    "tests per specimen: specimen": (
        _set("specimen_tests.specimen", "blood"),
        "tests per specimen blood: specimen 'blood' is not in the standard's vocabulary",
        True,
    ),
    "tests per specimen: failed > tests": (
        _set("specimen_tests.failed", 11),
        "tests per specimen tissue: 11 failed tests of 10 tests; it cannot be more",
        False,
    ),
    "tests per specimen: too many": (
        _set("specimen_tests.tests", MAX_COUNT + 1),
        "tests per specimen tissue: 100,001 tests is more than",
        False,
    ),
    "tests per specimen: twice": (
        lambda m: m.specimen_tests.append(m.specimen_tests[0]),
        "tests per specimen tissue: the specimen appears twice",
        False,
    ),
    "tests per specimen: withheld with counts": (
        lambda m: setattr(m.specimen_tests[0], "withheld", True),
        "tests per specimen tissue: a withheld count releases no tests",
        False,
    ),
}


def test_the_valid_summary_passes() -> None:
    check_summary(valid(), VOCABULARY)
    check_summary(valid(), None)


@pytest.mark.parametrize("case", REFUSED, ids=str)
def test_each_refusal_names_the_table_and_the_fault(case: str) -> None:
    mutate, message, needs_vocabulary = REFUSED[case]
    summary = valid()
    mutate(summary)
    with pytest.raises(InvalidRequest) as refused:
        check_summary(summary, VOCABULARY)
    assert message in str(refused.value)
    if needs_vocabulary:
        check_summary(summary, None)
    else:
        with pytest.raises(InvalidRequest) as without:
            check_summary(summary, None)
        assert str(without.value) == str(refused.value)
