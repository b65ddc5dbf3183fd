"""Tests and failed tests per specimen (SiteSummary.specimen_tests; issue 14 point 6): each test is
counted once, and failed when no result of it (any biomarker, any method) is valid; the table goes
through the same disclosure control as every count; the method's failure rate reads it, and falls
back to the largest-stratum proxy for summaries from earlier nodes; the coordinator accepts both."""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import pytest
from scipy import stats as sps

from coordinator import benchmark as coordinator_benchmark
from coordinator.standards import DEFAULT_STANDARD
from method.benchmark import compute
from method.inputs import Inputs
from method.standard import parse as parse_method_standard
from node import metrics, send
from node.standard import load_cached
from node.vocabulary import BIOMARKERS
from node.workdays import WorkingDays
from protos import dsse, wire
from protos.rarenet.v1 import summary_pb2 as pb
from tests.conftest import PERIOD
from tests.test_privacy_attacks import make_lab, result, rows_of

STANDARD = parse_method_standard(DEFAULT_STANDARD.read_text(encoding="utf-8"))


def by_specimen(summary: pb.SiteSummary) -> dict[str, pb.SpecimenTests]:
    return {t.specimen: t for t in summary.specimen_tests}


# What a test is and when it failed -------------------------------------------------------------


def test_each_test_is_counted_once_and_fails_only_without_any_valid_result(tmp_path) -> None:
    lab = make_lab(tmp_path)
    rows = (
        # T1: a whole panel failed (11 biomarkers, one test): one failed test, not eleven
        [result("T1", b, "ngs_dna_rna", "tissue", "failed") for b in BIOMARKERS]
        # T2: EGFR failed but ALK negative: a partial failure, the test did not fail
        + [
            result("T2", "EGFR", "pcr", "tissue", "failed"),
            result("T2", "ALK", "ihc", "tissue", "negative"),
        ]
        # T3: only an equivocal ALK IHC: no valid result, a failed test
        + [result("T3", "ALK", "ihc", "tissue", "equivocal")]
        # T4: ALK failed by IHC but positive by FISH: valid
        + [
            result("T4", "ALK", "ihc", "tissue", "failed"),
            result("T4", "ALK", "fish", "tissue", "positive"),
        ]
        # T5: cytology, failed by both methods
        + [
            result("T5", "EGFR", "pcr", "cytology", "failed"),
            result("T5", "EGFR", "ngs_dna", "cytology", "failed"),
        ]
        # T6: one test id, two specimens: each specimen's part is a test (as in turnaround)
        + [
            result("T6", "EGFR", "ngs_dna", "tissue", "negative"),
            result("T6", "KRAS", "ngs_dna", "plasma", "failed"),
        ]
        # not counted: an EQA sample and a result reported in another quarter
        + [
            dict(result("E1", "EGFR", "pcr", "tissue", "failed"), eqa_round="R1", eqa_sample="S1"),
            result("T7", "EGFR", "pcr", "tissue", "failed", reported="2026-10-02"),
        ]
    )
    lab.load(rows)
    raw = metrics.compute(lab.conn, PERIOD, lab.standard(), WorkingDays("CN"))
    counted = {s: (t.tests, t.failed) for s, t in by_specimen(raw).items()}
    assert counted == {"tissue": (5, 2), "cytology": (1, 1), "plasma": (1, 1)}
    # The per-test strata count T1 once per biomarker: the proxy problem this table removes.
    failed_calls = sum(s.failed for s in raw.strata if s.method == "all" and s.specimen == "tissue")
    assert failed_calls == 11 + 1  # T1 eleven times, T2 (EGFR); T3 is equivocal, T4 positive


def test_the_counts_match_the_stored_rows_of_a_synthetic_lab(tmp_path, synthetic_csv) -> None:
    """Against an independent count from the stored rows (a failing-cytology lab)."""
    lab = make_lab(tmp_path)
    lab.load(
        list(csv.DictReader(synthetic_csv("lab-a", 3000, profiles=("failing_cytology",)).open()))
    )
    valid: dict[tuple[str, str], bool] = defaultdict(bool)
    for test, specimen, outcome in lab.conn.execute(
        "SELECT test_id, specimen, result FROM results WHERE eqa_round IS NULL"
        " AND reported_date BETWEEN '2026-07-01' AND '2026-09-30'"
    ):
        valid[(test, specimen)] |= outcome in ("positive", "negative")
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (_, specimen), ok in valid.items():
        expected[specimen][0] += 1
        expected[specimen][1] += not ok
    raw = metrics.compute(lab.conn, PERIOD, lab.standard(), WorkingDays("CN"))
    assert {s: [t.tests, t.failed] for s, t in by_specimen(raw).items()} == dict(expected)
    assert expected["cytology"][1] > 0.2 * expected["cytology"][0]  # the planted failures


# Disclosure control ----------------------------------------------------------------------------


def test_specimens_merge_and_withhold_as_turnaround_does(tmp_path) -> None:
    lab = make_lab(tmp_path)
    lab.reset(
        rows_of("t", 30, "EGFR", "pcr", "tissue", 5)
        + rows_of("c", 4, "EGFR", "pcr", "cytology", 1)
        + rows_of("p", 7, "EGFR", "pcr", "plasma", 1),
        "merge",
    )
    released = lab.build()
    assert set(by_specimen(released)) == {h.specimen for h in released.turnaround}
    merged = by_specimen(released)["any"]
    assert not merged.withheld and abs(merged.tests - 11) <= 4
    assert "merged" in merged.disclosure_note
    lab.reset(
        rows_of("t", 30, "EGFR", "pcr", "tissue", 5) + rows_of("c", 4, "EGFR", "pcr", "cytology", 1)
    )
    small = by_specimen(lab.build())["any"]
    assert small.withheld and small.tests == 0 and small.failed == 0
    assert "withheld" in small.disclosure_note


def failing_rows(p: str, tests: int, failed: int, specimen: str = "tissue") -> list[dict]:
    return [
        result(f"{p}{i}", "EGFR", "pcr", specimen, "failed" if i < failed else "negative")
        for i in range(tests)
    ]


@pytest.mark.slow
def test_counts_carry_bounded_consistent_noise_and_zero_stays_exact(tmp_path) -> None:
    lab = make_lab(tmp_path)
    seen_failed, seen_tests = set(), set()
    for world in range(25):
        lab.reset(
            failing_rows(f"w{world}-", 40, 6) + failing_rows(f"z{world}-", 20, 0, "plasma"),
            f"s{world}",
        )
        released = by_specimen(lab.build())
        tissue, plasma = released["tissue"], released["plasma"]
        assert abs(tissue.failed - 6) <= 2 and abs(tissue.tests - 40) <= 4
        assert plasma.failed == 0 and abs(plasma.tests - 20) <= 2  # a true 0 is released as 0
        seen_failed.add(tissue.failed)
        seen_tests.add(tissue.tests)
        again = by_specimen(lab.build())["tissue"]
        assert (again.tests, again.failed) == (
            tissue.tests,
            tissue.failed,
        )  # same records, same noise
    assert len(seen_failed) > 1 and len(seen_tests) > 1  # noise, not the true counts


def test_a_zero_beside_a_withheld_stratum_is_a_linked_zero(tmp_path) -> None:
    """Cytology: 30 EGFR PCR tests and 3 ROS1 FISH tests (withheld stratum), none failed. The
    specimen's failed 0 is a linked zero: released as 0, 1 or 2, and the table says so."""
    lab = make_lab(tmp_path)
    released = []
    for world in range(30):
        lab.reset(
            failing_rows(f"w{world}-", 30, 0, "cytology")
            + rows_of(f"r{world}-", 3, "ROS1", "fish", "cytology", 0),
            f"s{world}",
        )
        cytology = by_specimen(lab.build())["cytology"]
        assert "zeros perturbed" in cytology.disclosure_note
        released.append(cytology.failed)
    assert set(released) <= {0, 1, 2} and 0 in released and len(set(released)) > 1


# The method ------------------------------------------------------------------------------------


def site_summary(site: str, tests: int, failed: int, exact: bool) -> pb.SiteSummary:
    """A cytology lab: every failed test fails all its biomarkers (EGFR, ALK, ROS1), and 40 tests
    (none failed) tested EGFR only, so the largest stratum (EGFR) holds every test."""
    strata = []
    for biomarker, extra in (("EGFR", 40), ("ALK", 0), ("ROS1", 0)):
        n = tests - 40 + extra
        strata.append(
            pb.StratumCounts(
                biomarker=biomarker,
                method="all",
                specimen="cytology",
                histology_group="all",
                tests=n,
                negative=n - failed,
                failed=failed,
            )
        )
    summary = pb.SiteSummary(
        site_id=site, period="2026Q3", schema_version=1, sequence=1, strata=strata
    )
    if exact:
        summary.specimen_tests.append(
            pb.SpecimenTests(specimen="cytology", tests=tests, failed=failed)
        )
    return summary


def failure_of(*summaries: pb.SiteSummary) -> dict:
    inputs = Inputs({"2026Q3": {s.site_id: (i, s) for i, s in enumerate(summaries)}}, set(), [])
    return compute(inputs, "2026Q3", STANDARD)


def test_the_method_uses_the_exact_table_and_says_so() -> None:
    result_ = failure_of(site_summary("new", 500, 150, True), site_summary("old", 500, 150, False))
    new = result_["sites"]["new"]["failure"]["cytology"]
    old = result_["sites"]["old"]["failure"]["cytology"]
    assert new["exact"] is True and "exact" not in old
    assert (new["tests"], new["failed"]) == (500, 150)
    assert "EGFR stratum" in old["basis"] and (old["tests"], old["failed"]) == (500, 150)
    assert new["strata_failed_sum"] == 450  # the old per-biomarker sum, kept for comparison
    # No perturbation declared: the p-value is the binomial mid-P against the standard's maximum.
    ceiling = STANDARD.max_failure("cytology")
    mid_p = sps.binom.sf(150, 500, ceiling) + 0.5 * sps.binom.pmf(150, 500, ceiling)
    assert new["p"] == pytest.approx(mid_p, rel=1e-9)
    flagged = {(f["site_id"], f["rule"], f["subject"]) for f in result_["flags"]}
    assert ("new", "failure_rate", "cytology") in flagged


def test_the_exact_table_replaces_the_proxy_where_they_differ() -> None:
    """Failed specimens that the largest stratum does not see: 60 tests that tested only RET and
    failed. The proxy (EGFR, the stratum with most tests) misses them; the exact table does not."""
    summary = site_summary("lab", 300, 10, False)
    summary.strata.append(
        pb.StratumCounts(
            biomarker="RET",
            method="all",
            specimen="cytology",
            histology_group="all",
            tests=60,
            failed=60,
        )
    )
    proxy = failure_of(summary)["sites"]["lab"]["failure"]["cytology"]
    summary.specimen_tests.append(pb.SpecimenTests(specimen="cytology", tests=360, failed=70))
    exact = failure_of(summary)["sites"]["lab"]["failure"]["cytology"]
    assert (proxy["tests"], proxy["failed"]) == (300, 10)
    assert (exact["tests"], exact["failed"]) == (360, 70)


def test_hostile_or_withheld_entries_never_crash_the_method() -> None:
    summary = site_summary("lab", 100, 5, False)
    summary.specimen_tests.extend(
        [
            pb.SpecimenTests(specimen="cytology", tests=3, failed=50),  # failed > tests
            pb.SpecimenTests(specimen="cytology", tests=0, failed=0),  # listed twice
            pb.SpecimenTests(specimen="tissue", withheld=True),
            pb.SpecimenTests(specimen="any", tests=12, failed=1),
            pb.SpecimenTests(specimen="martian", tests=0, failed=0),
        ]
    )
    failure = failure_of(summary)["sites"]["lab"]["failure"]
    assert set(failure) == {"cytology", "martian"}
    assert failure["cytology"]["tests"] >= failure["cytology"]["failed"] == 50
    assert failure["martian"]["rate"] is None


# The coordinator: old and new summaries ----------------------------------------------------------


def test_the_coordinator_accepts_summaries_with_and_without_the_table(
    coordinator, node_factory, synthetic_csv
) -> None:
    new, old = node_factory("lab-new"), node_factory("lab-old")
    for node, seed in ((new, 1), (old, 2)):
        node.ingest(
            synthetic_csv(node.config.site_id, rows=3000, seed=seed, profiles=("failing_cytology",))
        )
    built = send.build(new.conn, new.config, load_cached(new.config.standard_path), PERIOD, 1)
    assert built.message.specimen_tests
    new.client.submit(dsse.sign(wire.SITE_SUMMARY, built.payload, new.config.signing_key()))
    earlier = send.build(old.conn, old.config, load_cached(old.config.standard_path), PERIOD, 1)
    fields = json.loads(earlier.payload)  # as a node from before the table signs it
    del fields["specimen_tests"]
    payload = json.dumps(fields, sort_keys=True, indent=2, ensure_ascii=False).encode() + b"\n"
    assert wire.decode(payload, pb.SiteSummary).specimen_tests == []
    old.client.submit(dsse.sign(wire.SITE_SUMMARY, payload, old.config.signing_key()))
    report = coordinator_benchmark.compute(
        coordinator.service.conn, PERIOD.label, coordinator.service.standard
    )
    assert report["sites"]["lab-new"]["failure"]["cytology"]["exact"] is True
    assert "exact" not in report["sites"]["lab-old"]["failure"]["cytology"]
    released = by_specimen(built.message)["cytology"]
    assert report["sites"]["lab-new"]["failure"]["cytology"]["failed"] == released.failed


def test_the_labs_preview_shows_the_tests_per_specimen_that_leave(tmp_path) -> None:
    from click.testing import CliRunner

    from node.cli import main as node_cli

    lab = make_lab(tmp_path)
    lab.load(failing_rows("t", 40, 6) + failing_rows("c", 3, 1, "cytology"))
    args = ["summarize", "--data-dir", str(lab.config.data_dir), "--period", "2026Q3"]
    readable = CliRunner().invoke(node_cli, args)
    exact = CliRunner().invoke(node_cli, [*args, "--json"])
    assert readable.exit_code == 0 and exact.exit_code == 0, readable.output
    released = wire.decode(exact.stdout_bytes, pb.SiteSummary)
    tissue = by_specimen(released)["tissue"]
    assert f"tissue    {tissue.failed} failed of {tissue.tests}" in readable.output
    assert "any       withheld  withheld: fewer than 10 tests even merged" in readable.output


def test_small_count_suppression_withholds_a_specimen_with_a_small_cell(tmp_path) -> None:
    """With small-count suppression on (threshold 5), 3 failed tissue tests of 40 are not
    released (hiding one of two cells hides both); 0 failed of 20 plasma tests is (a zero is not
    a small count). The benchmark then has no tissue failure rate rather than a wrong one."""
    lab = make_lab(tmp_path, disclosure="small_count_suppression = true")
    assert lab.config.disclosure.small_count_threshold == 5
    lab.load(failing_rows("t", 40, 3) + failing_rows("p", 20, 0, "plasma"))
    released = lab.build()
    tissue, plasma = by_specimen(released)["tissue"], by_specimen(released)["plasma"]
    assert tissue.withheld and (tissue.tests, tissue.failed) == (0, 0)
    assert "small-count suppression" in tissue.disclosure_note
    assert not plasma.withheld and plasma.failed == 0
    released.site_id = "lab"
    failure = failure_of(released)["sites"]["lab"]["failure"]
    assert "tissue" not in failure and failure["plasma"]["exact"] is True
