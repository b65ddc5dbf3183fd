"""The one-pass metrics (node/metrics.py) give exactly what the earlier row-by-row code gave,
kept here as the reference, for any rows: several methods and specimens per test, a test whose
rows name different patients or histologies, EQA rows, VAFs of many digits, rows out of period."""

from __future__ import annotations

import datetime as dt
import sqlite3
from bisect import bisect_right
from collections import defaultdict
from itertools import combinations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coordinator.standards import DEFAULT_STANDARD
from node import metrics, store
from node.metrics import (
    _SIDE,
    BIT,
    CELL,
    TAT_BINS,
    _call,
    _pair_cell,
    _panel,
    _stratum,
    _table,
    _tissue_plasma,
)
from node.standard import NodeStandard
from node.standard import parse as parse_standard
from node.workdays import WorkingDays
from protos.periods import Period
from protos.periods import parse as parse_period
from protos.rarenet.v1 import summary_pb2 as pb
from protos.wire import ALL_METHODS


def reference_compute(
    conn: sqlite3.Connection, period: Period, standard: NodeStandard, workdays: WorkingDays
) -> pb.SiteSummary:
    """node/metrics.py before it grouped rows by test in SQL: one Python step per result row."""
    per_method: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    per_test: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    pairs: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    tat: dict[str, list[int]] = defaultdict(lambda: [0] * TAT_BINS)
    vaf_edges = standard.vaf_edges
    vaf: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(vaf_edges) - 1))
    sides: dict[str, int] = defaultdict(int)  # patient: 6 bits per biomarker (tissue/plasma calls)
    valid: dict[str, int] = defaultdict(int)  # patient: 1 bit per biomarker with a valid result
    non_squamous: set[str] = set()
    non_squamous_histologies = set(standard.non_squamous)
    rank = standard.rank

    test_span: dict[
        str, list[str]
    ] = {}  # specimen: [earliest received, latest reported] of the current test
    group: list[
        tuple[str, str, str]
    ] = []  # (method, result, specimen) of the current test and biomarker
    current_test = current_biomarker = None

    def close_group() -> None:
        by_specimen: dict[str, list[str]] = defaultdict(list)
        for _, result, specimen in group:
            by_specimen[specimen].append(result)
        for specimen, results in by_specimen.items():
            per_test[(current_biomarker, specimen)][CELL[_call(results)]] += 1
        if len(group) > 1:
            for (m1, r1, _), (m2, r2, _) in combinations(group, 2):
                if m1 == m2:
                    continue
                if rank(current_biomarker, m1) <= rank(current_biomarker, m2):
                    pairs[(current_biomarker, m2, m1)][_pair_cell(r2, r1)] += 1
                else:
                    pairs[(current_biomarker, m1, m2)][_pair_cell(r1, r2)] += 1

    def close_test() -> None:
        for specimen, (received, reported) in test_span.items():
            days = workdays.between(
                dt.date.fromisoformat(received), dt.date.fromisoformat(reported)
            )
            tat[specimen][min(days, TAT_BINS - 1)] += 1

    rows = conn.execute(
        """SELECT test_id, biomarker, method, patient_key, received_date, reported_date, specimen, histology,
                  result, vaf
           FROM results
           WHERE reported_date BETWEEN ? AND ? AND eqa_round IS NULL
           ORDER BY test_id, biomarker, method""",
        (period.start.isoformat(), period.end.isoformat()),
    )
    for (
        test_id,
        biomarker,
        method,
        patient,
        received,
        reported,
        specimen,
        histology,
        result,
        vaf_value,
    ) in rows:
        if test_id != current_test or biomarker != current_biomarker:
            if len(group) == 1:  # the common case: one method for this test and biomarker
                per_test[(current_biomarker, group[0][2])][CELL[group[0][1]]] += 1
            elif group:
                close_group()
            if test_id != current_test:
                if current_test is not None:
                    close_test()
                current_test, test_span = test_id, {}
            current_biomarker, group = biomarker, []
        group.append((method, result, specimen))
        per_method[(biomarker, method, specimen)][CELL[result]] += 1
        span = test_span.get(specimen)
        if span is None:
            test_span[specimen] = [received, reported]
        else:
            if received < span[0]:
                span[0] = received
            if reported > span[1]:
                span[1] = reported
        if histology in non_squamous_histologies:
            non_squamous.add(patient)
        bit = BIT[biomarker]
        if result == "positive" or result == "negative":
            valid[patient] |= 1 << bit
        side = _SIDE.get(specimen)
        if side is not None:
            offset = 6 * bit + side
            sides[patient] |= 1 << (offset + 2) | (
                1 << offset
                if result == "positive"
                else 1 << (offset + 1)
                if result == "negative"
                else 0
            )
        if vaf_value is not None and result == "positive":
            i = bisect_right(vaf_edges, vaf_value) - 1
            if 0 <= i < len(vaf_edges) - 1:
                vaf[(biomarker, method)][i] += 1
    if current_test is not None:
        close_group()
        close_test()

    return pb.SiteSummary(
        period=period.label,
        standard_version=standard.version,
        strata=[_stratum(b, m, s, c) for (b, m, s), c in sorted(per_method.items())]
        + [_stratum(b, ALL_METHODS, s, c) for (b, s), c in sorted(per_test.items())],
        turnaround=[
            pb.TurnaroundHistogram(
                specimen=s,
                counts=c,
                target_days=standard.target_days,
                within_target=sum(c[: standard.target_days + 1]),
                total=sum(c),
            )
            for s, c in sorted(tat.items())
        ],
        concordance=[_table("inter_method", k, c) for k, c in sorted(pairs.items())]
        + _tissue_plasma(sides),
        panel=_panel(valid, non_squamous, standard),
        vaf=[
            pb.VafHistogram(biomarker=b, method=m, edges=vaf_edges, counts=c)
            for (b, m), c in sorted(vaf.items())
        ],
    )


STANDARD = parse_standard(DEFAULT_STANDARD.read_text(encoding="utf-8"))
WORKDAYS = WorkingDays("CN")

rows_strategy = st.lists(
    st.tuples(
        st.integers(1, 12),  # test
        st.sampled_from(["pa", "pb", "pc"]),  # patient key
        st.integers(-5, 80),  # received, days after 2026-07-01
        st.integers(0, 25),  # turnaround in calendar days
        st.sampled_from(["tissue", "cytology", "plasma", "other"]),
        st.sampled_from(["adenocarcinoma", "squamous", "nos"]),
        st.sampled_from(["ngs_dna", "ngs_rna", "ngs_dna_rna", "ihc", "fish", "pcr"]),
        st.sampled_from(["EGFR", "ALK", "MET_EX14", "KRAS", "RET"]),
        st.sampled_from(["positive", "negative", "failed", "equivocal"]),
        st.one_of(st.none(), st.floats(0, 100, allow_nan=False), st.sampled_from([0.1, 5.0, 1e-7])),
        st.sampled_from([None, None, None, "R1"]),  # EQA round
        st.booleans(),  # a test whose later rows keep the first row's patient and specimen
    ),
    max_size=80,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows_strategy)
def test_same_metrics_as_the_row_by_row_reference(tmp_path_factory, rows) -> None:
    conn = store.connect(tmp_path_factory.mktemp("eq") / "node.db")
    first: dict[str, tuple] = {}
    for (
        test,
        patient,
        received,
        tat,
        specimen,
        histology,
        method,
        biomarker,
        result,
        vaf,
        eqa,
        same,
    ) in rows:
        test_id = f"T{test:02d}"
        if same and test_id in first:
            patient, received, tat, specimen, histology = first[test_id]
        first.setdefault(test_id, (patient, received, tat, specimen, histology))
        day = dt.date(2026, 7, 1) + dt.timedelta(days=received)
        conn.execute(
            "INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, NULL, 1, 1)",
            (
                test_id,
                biomarker,
                method,
                patient,
                day.isoformat(),
                (day + dt.timedelta(days=tat)).isoformat(),
                specimen,
                histology,
                result,
                vaf,
                eqa,
            ),
        )
    period = parse_period("2026Q3")
    assert metrics.compute(conn, period, STANDARD, WORKDAYS) == reference_compute(
        conn, period, STANDARD, WORKDAYS
    )
