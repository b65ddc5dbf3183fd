"""Every metric against values computed by hand from a small dataset (comments show the working)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.standards import DEFAULT_STANDARD
from node import config as node_config
from node import metrics, store
from node.ingest import ingest_file
from node.mapping import Mapping
from node.pseudonym import Pseudonymiser
from node.standard import parse as parse_standard
from node.workdays import WorkingDays
from protos.periods import parse as parse_period
from tests.test_ingest import HEADER, write

# test, patient, received, reported, specimen, histology, method, biomarker, result, vaf
ROWS = [
    (
        "T1",
        "P1",
        "2026-02-13",
        "2026-02-25",
        "tissue",
        "adenocarcinoma",
        "ngs_dna_rna",
        "EGFR",
        "positive",
        "23.5",
    ),
    (
        "T1",
        "P1",
        "2026-02-13",
        "2026-02-25",
        "tissue",
        "adenocarcinoma",
        "ngs_dna_rna",
        "ALK",
        "negative",
        "",
    ),
    (
        "T1",
        "P1",
        "2026-02-13",
        "2026-02-25",
        "tissue",
        "adenocarcinoma",
        "ihc",
        "ALK",
        "negative",
        "",
    ),
    (
        "T1",
        "P1",
        "2026-02-13",
        "2026-02-25",
        "tissue",
        "adenocarcinoma",
        "fish",
        "ALK",
        "negative",
        "",
    ),
    (
        "T2",
        "P2",
        "2026-04-30",
        "2026-05-11",
        "tissue",
        "adenocarcinoma",
        "ngs_dna",
        "MET_EX14",
        "negative",
        "",
    ),
    (
        "T2",
        "P2",
        "2026-04-30",
        "2026-05-11",
        "tissue",
        "adenocarcinoma",
        "ngs_rna",
        "MET_EX14",
        "positive",
        "",
    ),
    (
        "T3",
        "P3",
        "2026-09-30",
        "2026-10-12",
        "cytology",
        "squamous",
        "ngs_dna_rna",
        "EGFR",
        "failed",
        "",
    ),
    (
        "T3",
        "P3",
        "2026-09-30",
        "2026-10-12",
        "cytology",
        "squamous",
        "ngs_dna_rna",
        "ALK",
        "failed",
        "",
    ),
    ("T3", "P3", "2026-09-30", "2026-10-12", "cytology", "squamous", "ihc", "ALK", "positive", ""),
    (
        "T4",
        "P1",
        "2026-07-01",
        "2026-07-01",
        "plasma",
        "adenocarcinoma",
        "ngs_dna",
        "EGFR",
        "positive",
        "0.8",
    ),
    (
        "T5",
        "P2",
        "2026-07-03",
        "2026-07-20",
        "plasma",
        "adenocarcinoma",
        "ngs_dna",
        "MET_EX14",
        "negative",
        "",
    ),
    (
        "T5",
        "P2",
        "2026-07-03",
        "2026-07-20",
        "plasma",
        "adenocarcinoma",
        "ngs_dna",
        "EGFR",
        "failed",
        "",
    ),
    (
        "EQ1",
        "EQA",
        "2026-07-03",
        "2026-07-04",
        "tissue",
        "adenocarcinoma",
        "ngs_dna",
        "EGFR",
        "positive",
        "",
    ),
]


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics")
    cfg = node_config.init(tmp / "node", "lab-m", "127.0.0.1:1", insecure=True)
    conn = store.connect(cfg.db_path)
    rows = []
    for r in ROWS:
        values = dict(
            zip(
                (
                    "test_id",
                    "patient_id",
                    "received_date",
                    "reported_date",
                    "specimen",
                    "histology",
                    "method",
                    "biomarker",
                    "result",
                    "vaf",
                ),
                r,
            )
        )
        values.update(
            variant="",
            eqa_round="R1" if r[0] == "EQ1" else "",
            eqa_sample="S1" if r[0] == "EQ1" else "",
        )
        rows.append([values[h] for h in HEADER])
    result = ingest_file(
        conn, write(tmp / "m.csv", rows), Pseudonymiser(cfg.pseudonym_secret()), Mapping()
    )
    assert result.accepted == len(ROWS)
    text = DEFAULT_STANDARD.read_text(encoding="utf-8").replace(
        'required = ["EGFR", "ALK", "ROS1", "BRAF_V600E", "MET_EX14", "RET", "KRAS_G12C", "ERBB2", "NTRK"]',
        'required = ["EGFR", "ALK"]',
    )
    return metrics.compute(conn, parse_period("2026"), parse_standard(text), WorkingDays("CN"))


@pytest.mark.parametrize(
    "received,reported,days",
    [
        (
            "2026-02-13",
            "2026-02-25",
            3,
        ),  # Spring Festival 02-15..02-23 off; Saturday 02-14 is a working day
        (
            "2026-04-30",
            "2026-05-11",
            5,
        ),  # Labour Day 05-01..05-05 off; Saturday 05-09 is a working day
        (
            "2026-09-30",
            "2026-10-12",
            4,
        ),  # National Day 10-01..10-07 off; Saturday 10-10 is a working day
        ("2026-07-01", "2026-07-01", 0),  # same day
        ("2026-07-03", "2026-07-20", 11),  # two full weeks and a Monday
        ("2026-09-18", "2026-09-28", 6),  # Sunday 09-20 works, Mid-Autumn Friday 09-25 is off
    ],
)
def test_working_days_across_chinese_holidays(received, reported, days) -> None:
    wd = WorkingDays("CN")
    assert wd.between(dt.date.fromisoformat(received), dt.date.fromisoformat(reported)) == days


def test_working_days_elsewhere_follow_that_country() -> None:
    # UK 2026: Christmas is Friday 12-25; Boxing Day falls on Saturday, so Monday 12-28 is its
    # substitute. Thursday 12-24 -> Tuesday 12-29 is one working day.
    assert WorkingDays("GB").between(dt.date(2026, 12, 24), dt.date(2026, 12, 29)) == 1


def strata_of(summary, method_filter=None):
    return {
        (s.biomarker, s.method, s.specimen): (
            s.tests,
            s.positive,
            s.negative,
            s.failed,
            s.equivocal,
        )
        for s in summary.strata
        if method_filter is None or method_filter(s.method)
    }


def test_strata_per_method_and_per_test(computed) -> None:
    assert strata_of(computed, lambda m: m != "all") == {
        ("ALK", "fish", "tissue"): (1, 0, 1, 0, 0),
        ("ALK", "ihc", "cytology"): (1, 1, 0, 0, 0),
        ("ALK", "ihc", "tissue"): (1, 0, 1, 0, 0),
        ("ALK", "ngs_dna_rna", "cytology"): (1, 0, 0, 1, 0),
        ("ALK", "ngs_dna_rna", "tissue"): (1, 0, 1, 0, 0),
        ("EGFR", "ngs_dna", "plasma"): (2, 1, 0, 1, 0),
        ("EGFR", "ngs_dna_rna", "cytology"): (1, 0, 0, 1, 0),
        ("EGFR", "ngs_dna_rna", "tissue"): (1, 1, 0, 0, 0),
        ("MET_EX14", "ngs_dna", "plasma"): (1, 0, 1, 0, 0),
        ("MET_EX14", "ngs_dna", "tissue"): (1, 0, 1, 0, 0),
        ("MET_EX14", "ngs_rna", "tissue"): (1, 1, 0, 0, 0),
    }  # the EQA sample EQ1 is not a patient result and is left out
    # One call per test: T1's three ALK methods count once; T3's ALK failed by NGS but positive by IHC.
    assert strata_of(computed, lambda m: m == "all") == {
        ("ALK", "all", "cytology"): (1, 1, 0, 0, 0),
        ("ALK", "all", "tissue"): (1, 0, 1, 0, 0),
        ("EGFR", "all", "cytology"): (1, 0, 0, 1, 0),
        ("EGFR", "all", "plasma"): (2, 1, 0, 1, 0),
        ("EGFR", "all", "tissue"): (1, 1, 0, 0, 0),
        ("MET_EX14", "all", "plasma"): (1, 0, 1, 0, 0),
        ("MET_EX14", "all", "tissue"): (1, 1, 0, 0, 0),
    }


def test_turnaround_histograms(computed) -> None:
    by_specimen = {h.specimen: h for h in computed.turnaround}
    assert set(by_specimen) == {"cytology", "plasma", "tissue"}
    tissue, cytology, plasma = by_specimen["tissue"], by_specimen["cytology"], by_specimen["plasma"]
    assert [i for i, c in enumerate(tissue.counts) for _ in range(c)] == [3, 5]
    assert [i for i, c in enumerate(cytology.counts) for _ in range(c)] == [4]
    assert [i for i, c in enumerate(plasma.counts) for _ in range(c)] == [0, 11]
    assert (tissue.within_target, tissue.total, plasma.within_target, plasma.total) == (2, 2, 1, 2)
    assert tissue.target_days == 10


def test_inter_method_concordance(computed) -> None:
    tables = {
        (t.biomarker, t.index_method, t.comparator_method): (
            t.both_positive,
            t.index_positive_comparator_negative,
            t.index_negative_comparator_positive,
            t.both_negative,
            t.excluded_failed,
        )
        for t in computed.concordance
        if t.kind == "inter_method"
    }
    assert tables == {
        ("ALK", "ihc", "fish"): (0, 0, 0, 1, 0),  # fish is ALK's reference
        ("ALK", "ihc", "ngs_dna_rna"): (0, 0, 0, 1, 1),  # T3: NGS failed, counted apart
        ("ALK", "ngs_dna_rna", "fish"): (0, 0, 0, 1, 0),
        ("MET_EX14", "ngs_dna", "ngs_rna"): (0, 0, 1, 0, 0),  # RNA found what DNA missed
    }


def test_tissue_plasma_concordance(computed) -> None:
    tables = {
        t.biomarker: (
            t.index_method,
            t.comparator_method,
            t.both_positive,
            t.index_positive_comparator_negative,
            t.index_negative_comparator_positive,
            t.both_negative,
            t.excluded_failed,
        )
        for t in computed.concordance
        if t.kind == "tissue_plasma"
    }
    # P1: EGFR tissue + / plasma +. P2: MET_EX14 tissue + (RNA) / plasma -. P2's plasma EGFR has no tissue pair.
    assert tables == {
        "EGFR": ("plasma", "tissue", 1, 0, 0, 0, 0),
        "MET_EX14": ("plasma", "tissue", 0, 0, 1, 0, 0),
    }


def test_panel_coverage(computed) -> None:
    # Non-squamous patients: P1 (EGFR+, ALK-: both valid) and P2 (MET only; EGFR failed). P3 is squamous.
    panel = computed.panel
    assert panel.patients == 2
    assert {b.biomarker: b.with_valid_result for b in panel.biomarkers} == {"EGFR": 1, "ALK": 1}
    assert panel.with_all_required == 1


def test_vaf_histograms(computed) -> None:
    hist = {(v.biomarker, v.method): list(v.counts) for v in computed.vaf}
    edges = list(computed.vaf[0].edges)
    assert edges[:7] == [0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0]
    assert hist == {
        ("EGFR", "ngs_dna"): [1, 0, 0, 0, 0, 0, 0],
        ("EGFR", "ngs_dna_rna"): [0, 0, 0, 0, 0, 1, 0],
    }


def test_totals_add_up_across_strata(computed) -> None:
    per_method = [s for s in computed.strata if s.method != "all"]
    assert sum(s.tests for s in per_method) == len(ROWS) - 1
    for s in computed.strata:
        assert s.positive + s.negative + s.failed + s.equivocal == s.tests


result_rows = st.lists(
    st.tuples(
        st.integers(1, 15),
        st.sampled_from(["P1", "P2", "P3", "P4"]),
        st.integers(0, 20),
        st.sampled_from(["tissue", "cytology", "plasma"]),
        st.sampled_from(["adenocarcinoma", "squamous", "nos"]),
        st.sampled_from(["ngs_dna", "ngs_rna", "ihc", "fish"]),
        st.sampled_from(["EGFR", "ALK", "MET_EX14"]),
        st.sampled_from(["positive", "negative", "failed", "equivocal"]),
    ),
    max_size=60,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(result_rows)
def test_totals_add_up_for_any_results(tmp_path_factory, rows) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    cfg = node_config.init(tmp / "node", "lab-p", "127.0.0.1:1", insecure=True)
    conn = store.connect(cfg.db_path)
    csv_rows, seen = [], {}
    for test, patient, tat, specimen, histology, method, biomarker, result in rows:
        key = (f"T{test}", biomarker, method)
        if key in seen:
            continue  # one result per test, biomarker and method
        seen[key] = (specimen, result)
        received = dt.date(2026, 7, 1) + dt.timedelta(days=test)
        csv_rows.append(
            [
                f"T{test}",
                patient,
                received.isoformat(),
                (received + dt.timedelta(days=tat)).isoformat(),
                specimen,
                histology,
                method,
                biomarker,
                result,
                "",
                "",
                "",
                "",
            ]
        )
    outcome = ingest_file(conn, write(tmp / "p.csv", csv_rows), Pseudonymiser(b"s"), Mapping())
    assert outcome.rows == outcome.accepted + outcome.duplicates + outcome.quarantined
    summary = metrics.compute(
        conn, parse_period("2026"), parse_standard(DEFAULT_STANDARD.read_text()), WorkingDays("CN")
    )
    stored = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    per_method = [s for s in summary.strata if s.method != "all"]
    per_test = [s for s in summary.strata if s.method == "all"]
    assert sum(s.tests for s in per_method) == stored
    groups = conn.execute(
        "SELECT COUNT(*) FROM (SELECT DISTINCT test_id, biomarker, specimen FROM results)"
    ).fetchone()
    assert sum(s.tests for s in per_test) == groups[0]
    for s in summary.strata:
        assert s.positive + s.negative + s.failed + s.equivocal == s.tests
    tests = conn.execute(
        "SELECT COUNT(*) FROM (SELECT DISTINCT test_id, specimen FROM results)"
    ).fetchone()[0]
    assert sum(h.total for h in summary.turnaround) == tests
    for table in summary.concordance:
        cells = (
            table.both_positive
            + table.index_positive_comparator_negative
            + table.index_negative_comparator_positive
            + table.both_negative
            + table.excluded_failed
        )
        assert cells > 0
