"""Aggregate metrics for one period, computed from the node's local results.

A result belongs to the period of its report date; EQA samples (eqa_round set) are not patient
results and are left out. Everything returned here is counts: the disclosure step decides what of
it may leave. Positivity and its statistics are the coordinator's business, not the node's.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from bisect import bisect_right
from collections import defaultdict

from protos.periods import Period
from protos.wire import ALL_METHODS
from protos.rarenet.v1 import summary_pb2 as pb
from node.standard import NodeStandard
from node.workdays import WorkingDays

TAT_BINS = 31  # 0..29 working days, then "30 or more"
VALID = ("positive", "negative")

_IN_PERIOD = "reported_date BETWEEN ? AND ? AND eqa_round IS NULL"


def _bounds(period: Period) -> tuple[str, str]:
    return period.start.isoformat(), period.end.isoformat()


def strata(conn: sqlite3.Connection, period: Period) -> list[pb.StratumCounts]:
    """Results per biomarker x method x specimen, then per test (method "all", see test_strata)."""
    rows = conn.execute(
        f"""SELECT biomarker, method, specimen, COUNT(*),
                   SUM(result = 'positive'), SUM(result = 'negative'), SUM(result = 'failed'), SUM(result = 'equivocal')
            FROM results WHERE {_IN_PERIOD}
            GROUP BY biomarker, method, specimen ORDER BY biomarker, method, specimen""",
        _bounds(period),
    )
    return [
        pb.StratumCounts(biomarker=b, method=m, specimen=s, histology_group="all", tests=n,
                         positive=p, negative=ng, failed=f, equivocal=e)
        for b, m, s, n, p, ng, f, e in rows
    ] + test_strata(conn, period)


def test_strata(conn: sqlite3.Connection, period: Period) -> list[pb.StratumCounts]:
    """One call per test and biomarker whatever the number of methods (method "all"): positive if
    any method was positive, else negative if any was negative, else equivocal, else failed.
    Site-level positivity and failure rates use these, so a test run by two methods counts once."""
    rows = conn.execute(
        f"""SELECT biomarker, specimen, COUNT(*), SUM(call = 'positive'), SUM(call = 'negative'),
                   SUM(call = 'failed'), SUM(call = 'equivocal')
            FROM (SELECT biomarker, specimen,
                         CASE WHEN MAX(result = 'positive') THEN 'positive'
                              WHEN MAX(result = 'negative') THEN 'negative'
                              WHEN MAX(result = 'equivocal') THEN 'equivocal' ELSE 'failed' END AS call
                  FROM results WHERE {_IN_PERIOD} GROUP BY test_id, biomarker, specimen)
            GROUP BY biomarker, specimen ORDER BY biomarker, specimen""",
        _bounds(period),
    )
    return [
        pb.StratumCounts(biomarker=b, method=ALL_METHODS, specimen=s, histology_group="all", tests=n,
                         positive=p, negative=ng, failed=f, equivocal=e)
        for b, s, n, p, ng, f, e in rows
    ]


def turnaround(conn: sqlite3.Connection, period: Period, workdays: WorkingDays, target: int) -> list[pb.TurnaroundHistogram]:
    """Per specimen, working days from receipt to report of each test (a test is one test_id)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0] * TAT_BINS)
    rows = conn.execute(
        f"""SELECT specimen, MIN(received_date), MAX(reported_date) FROM results WHERE {_IN_PERIOD}
            GROUP BY test_id, specimen""",
        _bounds(period),
    )
    for specimen, received, reported in rows:
        days = workdays.between(dt.date.fromisoformat(received), dt.date.fromisoformat(reported))
        counts[specimen][min(days, TAT_BINS - 1)] += 1
    return [
        pb.TurnaroundHistogram(specimen=s, counts=c, target_days=target,
                               within_target=sum(c[: target + 1]), total=sum(c))
        for s, c in sorted(counts.items())
    ]


def _table(kind: str, biomarker: str, index: str, comparator: str) -> pb.ConcordanceTable:
    return pb.ConcordanceTable(kind=kind, biomarker=biomarker, index_method=index, comparator_method=comparator)


def _count_pair(table: pb.ConcordanceTable, index_result: str, comparator_result: str) -> None:
    if index_result not in VALID or comparator_result not in VALID:
        table.excluded_failed += 1
    elif index_result == "positive":
        if comparator_result == "positive":
            table.both_positive += 1
        else:
            table.index_positive_comparator_negative += 1
    elif comparator_result == "positive":
        table.index_negative_comparator_positive += 1
    else:
        table.both_negative += 1


def inter_method(conn: sqlite3.Connection, period: Period, standard: NodeStandard) -> list[pb.ConcordanceTable]:
    """Same test, same biomarker, two methods; the comparator is the better-ranked reference method."""
    tables: dict[tuple[str, str, str], pb.ConcordanceTable] = {}
    rows = conn.execute(
        f"""SELECT a.biomarker, a.method, a.result, b.method, b.result
            FROM results a JOIN results b
              ON a.test_id = b.test_id AND a.biomarker = b.biomarker AND a.method < b.method
            WHERE a.reported_date BETWEEN ? AND ? AND a.eqa_round IS NULL AND b.eqa_round IS NULL""",
        _bounds(period),
    )
    for biomarker, m1, r1, m2, r2 in rows:
        if standard.rank(biomarker, m1) <= standard.rank(biomarker, m2):
            (cm, cr), (im, ir) = (m1, r1), (m2, r2)
        else:
            (cm, cr), (im, ir) = (m2, r2), (m1, r1)
        key = (biomarker, im, cm)
        if key not in tables:
            tables[key] = _table("inter_method", biomarker, im, cm)
        _count_pair(tables[key], ir, cr)
    return [tables[k] for k in sorted(tables)]


def _patient_call(results: set[str]) -> str:
    """One call per patient, biomarker and specimen side: any positive wins, then negative."""
    if "positive" in results:
        return "positive"
    if "negative" in results:
        return "negative"
    return "failed"


def tissue_plasma(conn: sqlite3.Connection, period: Period) -> list[pb.ConcordanceTable]:
    """Same patient, same biomarker: plasma (index) against tissue (comparator)."""
    sides: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: {"tissue": set(), "plasma": set()})
    rows = conn.execute(
        f"""SELECT patient_key, biomarker, specimen, result FROM results
            WHERE {_IN_PERIOD} AND specimen IN ('tissue', 'plasma')""",
        _bounds(period),
    )
    for patient, biomarker, specimen, result in rows:
        sides[(patient, biomarker)][specimen].add(result)
    tables: dict[str, pb.ConcordanceTable] = {}
    for (_, biomarker), by_side in sides.items():
        if not by_side["tissue"] or not by_side["plasma"]:
            continue
        if biomarker not in tables:
            tables[biomarker] = _table("tissue_plasma", biomarker, "plasma", "tissue")
        _count_pair(tables[biomarker], _patient_call(by_side["plasma"]), _patient_call(by_side["tissue"]))
    return [tables[k] for k in sorted(tables)]


def panel(conn: sqlite3.Connection, period: Period, standard: NodeStandard) -> pb.PanelCoverage:
    """Among non-squamous patients tested in the period: who has a valid result for each required biomarker."""
    marks = ",".join("?" * len(standard.non_squamous))
    patients: dict[str, set[str]] = {}
    rows = conn.execute(
        f"""SELECT patient_key, biomarker, result FROM results
            WHERE {_IN_PERIOD} AND patient_key IN (
                SELECT patient_key FROM results WHERE {_IN_PERIOD} AND histology IN ({marks}))""",
        (*_bounds(period), *_bounds(period), *standard.non_squamous),
    )
    for patient, biomarker, result in rows:
        valid = patients.setdefault(patient, set())
        if result in VALID:
            valid.add(biomarker)
    required = set(standard.required_panel)
    return pb.PanelCoverage(
        patients=len(patients),
        biomarkers=[
            pb.BiomarkerCoverage(biomarker=b, with_valid_result=sum(b in v for v in patients.values()))
            for b in standard.required_panel
        ],
        with_all_required=sum(required <= v for v in patients.values()),
    )


def vaf(conn: sqlite3.Connection, period: Period, standard: NodeStandard) -> list[pb.VafHistogram]:
    edges = standard.vaf_edges
    hist: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(edges) - 1))
    rows = conn.execute(
        f"SELECT biomarker, method, vaf FROM results WHERE {_IN_PERIOD} AND result = 'positive' AND vaf IS NOT NULL",
        _bounds(period),
    )
    for biomarker, method, value in rows:
        i = bisect_right(edges, value) - 1
        if 0 <= i < len(edges) - 1:
            hist[(biomarker, method)][i] += 1
    return [pb.VafHistogram(biomarker=b, method=m, edges=edges, counts=c) for (b, m), c in sorted(hist.items())]


def compute(conn: sqlite3.Connection, period: Period, standard: NodeStandard, workdays: WorkingDays) -> pb.SiteSummary:
    """All metrics of the period, before disclosure control (site, sequence and policy not yet set)."""
    return pb.SiteSummary(
        period=period.label,
        standard_version=standard.version,
        strata=strata(conn, period),
        turnaround=turnaround(conn, period, workdays, standard.target_days),
        concordance=inter_method(conn, period, standard) + tissue_plasma(conn, period),
        panel=panel(conn, period, standard),
        vaf=vaf(conn, period, standard),
    )
