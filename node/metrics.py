"""Aggregate metrics for one period, computed from the node's local results in one pass.

A result belongs to the period of its report date; EQA samples (eqa_round set) are not patient
results and are left out. Everything returned here is counts: the disclosure step decides what of
it may leave. Positivity and its statistics are the coordinator's business, not the node's.

The rows are read once, in primary-key order (test, biomarker, method), so all the results of a
test and biomarker arrive together:
- per-method strata count every result (biomarker x method x specimen);
- per-test strata (method "all") count one call per test and biomarker: positive if any method
  was positive, else negative if any was negative, else equivocal, else failed;
- inter-method tables pair the methods of a test and biomarker; the comparator is the method the
  standard ranks higher for that biomarker; pairs with a failed or equivocal side count apart;
- turnaround counts each test once, from its earliest receipt to its latest report;
- per patient, a bitmask keeps what tissue-plasma concordance and panel coverage need.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from bisect import bisect_right
from collections import Counter, defaultdict
from itertools import combinations

from node.standard import NodeStandard
from node.vocabulary import BIOMARKERS
from node.workdays import WorkingDays
from protos.periods import Period
from protos.rarenet.v1 import summary_pb2 as pb
from protos.wire import ALL_METHODS

TAT_BINS = 31  # 0..29 working days, then "30 or more"
VALID = ("positive", "negative")
CELL = {"positive": 0, "negative": 1, "failed": 2, "equivocal": 3}
BIT = {b: i for i, b in enumerate(BIOMARKERS)}
# Per patient and biomarker, six bits: tissue positive/negative/any, plasma positive/negative/any.
_SIDE = {"tissue": 0, "plasma": 3}


def _call(results: list[str]) -> str:
    """One call from several results: any positive wins, then negative, then equivocal, else failed."""
    for call in ("positive", "negative", "equivocal"):
        if call in results:
            return call
    return "failed"


def _pair_cell(index_result: str, comparator_result: str) -> int:
    """The cell of a pair in [both+, index+ comparator-, index- comparator+, both-, excluded]."""
    if index_result not in VALID or comparator_result not in VALID:
        return 4
    if index_result == "positive":
        return 0 if comparator_result == "positive" else 1
    return 2 if comparator_result == "positive" else 3


def _table(kind: str, key: tuple[str, str, str], cells: list[int]) -> pb.ConcordanceTable:
    biomarker, index, comparator = key
    return pb.ConcordanceTable(
        kind=kind,
        biomarker=biomarker,
        index_method=index,
        comparator_method=comparator,
        both_positive=cells[0],
        index_positive_comparator_negative=cells[1],
        index_negative_comparator_positive=cells[2],
        both_negative=cells[3],
        excluded_failed=cells[4],
    )


def _stratum(biomarker: str, method: str, specimen: str, cells: list[int]) -> pb.StratumCounts:
    return pb.StratumCounts(
        biomarker=biomarker,
        method=method,
        specimen=specimen,
        histology_group="all",
        tests=sum(cells),
        positive=cells[0],
        negative=cells[1],
        failed=cells[2],
        equivocal=cells[3],
    )


# One row per test, in primary-key order (no sort): the test's results as tokens, and what the
# turnaround and the patient tables need, with min/max to tell whether it is the same on every row.
_PER_TEST = """
SELECT min(patient_key), max(patient_key), min(histology), max(histology),
       min(specimen), max(specimen), min(received_date), max(reported_date),
       group_concat(biomarker || ' ' || method || ' ' || specimen || ' ' || result, ','),
       group_concat(CASE WHEN result = 'positive' AND vaf IS NOT NULL
                    THEN biomarker || ' ' || method || ' ' || printf('%.17g', vaf) END, ','),
       test_id
FROM results
WHERE reported_date BETWEEN ? AND ? AND eqa_round IS NULL
GROUP BY test_id
"""
_ROWS_OF_TEST = """
SELECT patient_key, histology, specimen, received_date, reported_date, biomarker, result
FROM results
WHERE test_id = ? AND reported_date BETWEEN ? AND ? AND eqa_round IS NULL
"""


def _patient_bits(biomarker: str, specimen: str, result: str) -> tuple[int, int]:
    """One result's bits in the patient's masks: (valid result for the biomarker, tissue/plasma
    positive/negative/any)."""
    bit = BIT[biomarker]
    valid = 1 << bit if result in VALID else 0
    side = _SIDE.get(specimen)
    if side is None:
        return valid, 0
    offset = 6 * bit + side
    call = 1 << offset if result == "positive" else 1 << (offset + 1) if result == "negative" else 0
    return valid, 1 << (offset + 2) | call


class _Pattern:
    """What one test's results add to the counts, worked out once for every test with the same
    results (most tests of a lab repeat a few patterns: all negative, one driver, failed...)."""

    __slots__ = ("per_method", "per_test", "pairs", "valid", "sides")

    def __init__(self, tokens: str, rank) -> None:
        rows = sorted(tuple(t.split(" ")) for t in tokens.split(","))  # (biomarker, method, ...)
        self.per_method = [((b, m, s), CELL[r]) for b, m, s, r in rows]
        self.per_test: list[tuple[tuple[str, str], int]] = []
        self.pairs: list[tuple[tuple[str, str, str], int]] = []
        self.valid = self.sides = 0
        for b, _, s, r in rows:
            valid, sides = _patient_bits(b, s, r)
            self.valid |= valid
            self.sides |= sides
        start = 0
        while start < len(rows):
            biomarker = rows[start][0]
            end = start + 1
            while end < len(rows) and rows[end][0] == biomarker:
                end += 1
            group = rows[start:end]  # one test and biomarker, in method order
            by_specimen: dict[str, list[str]] = defaultdict(list)
            for _, _, specimen, result in group:
                by_specimen[specimen].append(result)
            for specimen, results in by_specimen.items():
                self.per_test.append(((biomarker, specimen), CELL[_call(results)]))
            for (_, m1, _, r1), (_, m2, _, r2) in combinations(group, 2):
                if m1 == m2:
                    continue
                if rank(biomarker, m1) <= rank(biomarker, m2):
                    self.pairs.append(((biomarker, m2, m1), _pair_cell(r2, r1)))
                else:
                    self.pairs.append(((biomarker, m1, m2), _pair_cell(r1, r2)))
            start = end


def compute(
    conn: sqlite3.Connection, period: Period, standard: NodeStandard, workdays: WorkingDays
) -> pb.SiteSummary:
    """All metrics of the period, before disclosure control (site, sequence and policy not yet set).

    SQLite groups the rows by test (in primary-key order, so without sorting) and hands over one
    row per test; the tests with the same results share one _Pattern. A test whose rows name
    more than one patient, histology or specimen (not in a normal export, but possible) has its
    turnaround and patient bits taken row by row instead."""
    vaf_edges = standard.vaf_edges
    patterns: dict[str, _Pattern] = {}
    tests_of: dict[str, int] = defaultdict(int)  # tokens: tests with exactly these results
    spans: dict[tuple[str, str, str], int] = defaultdict(int)  # (specimen, received, reported)
    sides: dict[str, int] = defaultdict(int)  # patient: 6 bits per biomarker (tissue/plasma calls)
    valid: dict[str, int] = defaultdict(int)  # patient: 1 bit per biomarker with a valid result
    non_squamous: set[str] = set()
    non_squamous_histologies = set(standard.non_squamous)
    vaf: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * (len(vaf_edges) - 1))
    bounds = (period.start.isoformat(), period.end.isoformat())
    for (
        p_low,
        p_high,
        h_low,
        h_high,
        s_low,
        s_high,
        received,
        reported,
        tokens,
        vafs,
        test_id,
    ) in conn.execute(_PER_TEST, bounds):
        tests_of[tokens] += 1
        pattern = patterns.get(tokens)
        if pattern is None:
            pattern = patterns[tokens] = _Pattern(tokens, standard.rank)
        if s_low == s_high and p_low == p_high and h_low == h_high:
            spans[(s_low, received, reported)] += 1
            valid[p_low] |= pattern.valid
            if pattern.sides:
                sides[p_low] |= pattern.sides
            if h_low in non_squamous_histologies:
                non_squamous.add(p_low)
        else:
            test_span: dict[str, list[str]] = {}
            for patient, histology, specimen, rec, rep, biomarker, result in conn.execute(
                _ROWS_OF_TEST, (test_id, *bounds)
            ):
                span = test_span.setdefault(specimen, [rec, rep])
                span[0], span[1] = min(span[0], rec), max(span[1], rep)
                valid_bit, side_bits = _patient_bits(biomarker, specimen, result)
                valid[patient] |= valid_bit
                if side_bits:
                    sides[patient] |= side_bits
                if histology in non_squamous_histologies:
                    non_squamous.add(patient)
            for specimen, (rec, rep) in test_span.items():
                spans[(specimen, rec, rep)] += 1
        if vafs:
            for token in vafs.split(","):
                biomarker, method, value = token.split(" ")
                i = bisect_right(vaf_edges, float(value)) - 1
                if 0 <= i < len(vaf_edges) - 1:
                    vaf[(biomarker, method)][i] += 1

    per_method: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    per_test: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    pairs: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for tokens, n in tests_of.items():
        pattern = patterns[tokens]
        for key, cell in pattern.per_method:
            per_method[key][cell] += n
        for key2, cell in pattern.per_test:
            per_test[key2][cell] += n
        for key3, cell in pattern.pairs:
            pairs[key3][cell] += n
    tat: dict[str, list[int]] = defaultdict(lambda: [0] * TAT_BINS)
    for (specimen, received, reported), n in spans.items():
        days = workdays.between(dt.date.fromisoformat(received), dt.date.fromisoformat(reported))
        tat[specimen][min(days, TAT_BINS - 1)] += n

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


def _side_call(bits: int) -> str | None:
    """positive / negative / failed from (positive, negative, any) bits, or None without a result."""
    if not bits & 4:
        return None
    return "positive" if bits & 1 else "negative" if bits & 2 else "failed"


def _tissue_plasma(sides: dict[str, int]) -> list[pb.ConcordanceTable]:
    """Same patient, same biomarker, both a tissue and a plasma result: plasma is the index."""
    tables: dict[str, list[int]] = {}
    for bits, patients in Counter(sides.values()).items():  # few distinct masks, many patients
        for biomarker, bit in BIT.items():
            six = bits >> (6 * bit) & 0b111111
            tissue, plasma = _side_call(six & 0b111), _side_call(six >> 3)
            if tissue and plasma:
                table = tables.setdefault(biomarker, [0, 0, 0, 0, 0])
                table[_pair_cell(plasma, tissue)] += patients
    return [_table("tissue_plasma", (b, "plasma", "tissue"), c) for b, c in sorted(tables.items())]


def _panel(
    valid: dict[str, int], non_squamous: set[str], standard: NodeStandard
) -> pb.PanelCoverage:
    """Among non-squamous patients: who has a valid result for each required biomarker, and for all."""
    required = [b for b in standard.required_panel if b in BIT]
    need = sum(1 << BIT[b] for b in required)
    masks = Counter(valid.get(p, 0) for p in non_squamous)  # mask: patients with it
    return pb.PanelCoverage(
        patients=len(non_squamous),
        biomarkers=[
            pb.BiomarkerCoverage(
                biomarker=b, with_valid_result=sum(n for m, n in masks.items() if m >> BIT[b] & 1)
            )
            for b in standard.required_panel
        ],
        with_all_required=sum(n for m, n in masks.items() if m & need == need),
    )
