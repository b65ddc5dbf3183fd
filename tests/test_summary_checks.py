"""Intake's meaning checks of a summary's tables (coordinator/summary_checks.py): each refusal
names the table and what is wrong, with the standard's vocabulary and without it."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest

from coordinator.errors import InvalidRequest
from coordinator.standards import DEFAULT_STANDARD
from coordinator.standards import load as load_standard
from coordinator.summary_checks import MAX_BINS, MAX_COUNT, Vocabulary, check_summary
from protos import wire
from protos.errors import PayloadError
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


def _outcome(summary: pb.SiteSummary, vocabulary: Vocabulary | None, fields=None) -> str:
    try:
        check_summary(summary, vocabulary, fields)
    except InvalidRequest as exc:
        return f"refused: {exc}"
    return "accepted"


def _rich() -> pb.SiteSummary:
    """The valid summary with every kind of table and value filled in."""
    summary = valid()
    summary.strata.add(
        biomarker="ALK",
        method="any",
        specimen="any",
        histology_group="all",
        tests=4,
        positive=1,
        negative=3,
        suppressed_cells=["failed", "equivocal"],
    )
    summary.strata.add(biomarker="ROS1", method="pcr", specimen="tissue", withheld=True)
    summary.panel.CopyFrom(
        pb.PanelCoverage(
            patients=10,
            with_all_required=8,
            biomarkers=[pb.BiomarkerCoverage(biomarker="EGFR", with_valid_result=9)],
        )
    )
    summary.policy.differential_privacy.CopyFrom(
        pb.DifferentialPrivacy(enabled=True, mechanism="geometric", epsilon=1.0, noise_scale=4.0)
    )
    summary.vaf.add(biomarker="ALK", method="pcr", edges=EDGES, withheld=True)
    return summary


@pytest.mark.parametrize("case", ["valid", *REFUSED], ids=str)
def test_the_json_object_a_summary_was_decoded_from_is_checked_as_the_message_is(
    case: str,
) -> None:
    """Intake checks the JSON object the fast decoding path made the message from (dict lookups,
    several times cheaper than the message's attributes): same refusals, same words."""
    summary = valid()
    if case != "valid":
        REFUSED[case][0](summary)
    decoded, fields = wire.decode_fields(wire.encode(summary), pb.SiteSummary)
    assert fields is not None, "the fast path did not read it"
    for vocabulary in (VOCABULARY, None):
        assert _outcome(decoded, vocabulary, fields) == _outcome(summary, vocabulary)


def _leaf_paths(tree, path=()) -> list[tuple]:
    if not isinstance(tree, (dict, list)):
        return [path]
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    return [path] + [p for key, value in items for p in _leaf_paths(value, path + (key,))]


# Values put in each place of a summary: wrong types, defaults, nulls, limits, and integers in
# float fields (2**53 + 1 is no float: as a bin edge after 2**53 it is not increasing).
VALUES: list[object] = [None, True, 0, 1, 7, 3.0, -1, MAX_COUNT + 1, 2**53 + 1, 2**64, 10**400]
VALUES += ["", "EGFR", "any", "failed", "NaN", "Infinity", "5", [], ["failed", "failed"], [0, 5]]
VALUES += [[9007199254740992.0, 2**53 + 1], [1, 2, 3], {}, [{}], {"biomarker": "EGFR"}]


def test_a_summary_changed_in_any_place_is_checked_the_same_from_its_json_object() -> None:
    """Each value in each place of a summary: where the fast path decodes it, checking its JSON
    object and checking the message refuse the same way (or both accept)."""
    rich = json.loads(wire.encode(_rich()))
    compared = 0
    for path in _leaf_paths(rich):
        if not path:
            continue
        for value in VALUES:
            tree = json.loads(json.dumps(rich))
            node = tree
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            try:
                decoded, fields = wire.decode_fields(json.dumps(tree).encode(), pb.SiteSummary)
            except PayloadError:
                continue
            if fields is None:
                continue
            compared += 1
            for vocabulary in (VOCABULARY, None):
                assert _outcome(decoded, vocabulary, fields) == _outcome(decoded, vocabulary), (
                    path,
                    value,
                )
    assert compared > 500  # most places take many of the values
