"""Aggregate metrics for one period, computed from the node's local results in one pass.

A result belongs to the period of its report date; EQA samples (eqa_round set) are not patient
results and are left out. Everything returned here is counts: the disclosure step decides what of
it may leave. Positivity and its statistics are the coordinator's business, not the node's.

SQLite reads the rows once, in primary-key order (test, biomarker, method), and hands over one row
per test with its results as tokens; tests with the same results and specimen share one worked-out
pattern (most tests of a lab repeat a few), and only their number and the sum of their record
keys are kept per pattern. What is counted:
- per-method strata count every result (biomarker x method x specimen);
- per-test strata (method "all") count one call per test and biomarker: positive if any method
  was positive, else negative if any was negative, else equivocal, else failed;
- inter-method tables pair the methods of a test and biomarker; the comparator is the method the
  standard ranks higher for that biomarker; pairs with a failed or equivocal side count apart;
- turnaround counts each test once, from its earliest receipt to its latest report;
- tests per specimen count each test once, failed when no result of it (any biomarker, any
  method) is valid (positive or negative);
- per patient, a bitmask keeps what tissue-plasma concordance and panel coverage need.

Beside every count, `compute` fills `keys` (node/cellkey.py) with the cell key of that count: the
sum of the secret record keys of the records counted, which the disclosure step turns into the
count's bounded, consistent noise. Under cellkey.COUNTED_UNITS a result and a per-test call of
the same test and biomarker have the same record key (the table does not enter it), so twin cells
holding the same records get the same noise; keys.key_scheme says which scheme made them.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from bisect import bisect_right
from collections import defaultdict
from itertools import combinations
from zlib import crc32

from node.cellkey import KEY_SCHEME, NAMED_TABLES, CellKeys, name_key, patient_part
from node.standard import NodeStandard
from node.vocabulary import BIOMARKERS, METHODS
from node.workdays import WorkingDays
from protos.periods import Period
from protos.rarenet.v1 import summary_pb2 as pb
from protos.wire import ALL_METHODS

_ALL_KEY = name_key(ALL_METHODS)
_PAIR_KEY = name_key("inter_method")
_METHOD_KEYS = {m: name_key(m) for m in METHODS}
_BIOMARKER_KEYS = {b: name_key(b) for b in BIOMARKERS}
TAT_BINS = 31  # 0..29 working days, then "30 or more"
VALID = ("positive", "negative")
CELL = {"positive": 0, "negative": 1, "failed": 2, "equivocal": 3}
# The cells of a specimen's tests: failed (no valid result for any biomarker), succeeded.
FAILED, SUCCEEDED = 0, 1
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


def _table(kind: str, key: tuple[str, ...], cells: list[int]) -> pb.ConcordanceTable:
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


# One row per test, in primary-key order (GROUP BY test_id follows the key: no sort): its patient
# and specimen (min and max, to tell whether they are the same on every row), its earliest receipt
# and latest report, whether a row names a panel histology, its results as tokens and its
# positives' VAFs (printed exactly: %.17g gives the same double back).
_PER_TEST = """
SELECT test_id, min(patient_key), max(patient_key), min(specimen), max(specimen),
       min(received_date), max(reported_date), max(histology IN ({histologies})),
       group_concat(biomarker || ' ' || method || ' ' || result, ','),
       group_concat(CASE WHEN result = 'positive' AND vaf IS NOT NULL
                    THEN biomarker || ' ' || method || ' ' || printf('%.17g', vaf) END, ',')
FROM results
WHERE reported_date BETWEEN ? AND ? AND eqa_round IS NULL
GROUP BY test_id
"""
# The rows of one test whose rows name more than one patient or specimen (not in a normal
# export, but possible), in primary-key order.
_ROWS_OF_TEST = """
SELECT biomarker, method, patient_key, received_date, reported_date, specimen, histology, result,
       vaf
FROM results
WHERE test_id = ? AND reported_date BETWEEN ? AND ? AND eqa_round IS NULL
ORDER BY biomarker, method
"""
Row = tuple[str, str, str, str]  # biomarker, method, specimen, result
Entry = tuple[tuple[str, ...], int, int]  # a cell's identity, its index, its records' name keys


class _Pattern:
    """What one test's results add to the counts and to their cell keys, worked out once for
    every test with the same results (most tests of a lab repeat a few patterns: all negative,
    one driver, failed...). Each entry is (cell, index, name keys): a test with this pattern adds
    1 to the cell, and its record key (cellkey: the patient's part + the test id's CRC) plus the
    name keys to the cell's key. So n tests of the pattern whose test record keys sum to T add n
    to the cell and T + n x (name keys) to its key: keys are sums, and sums can be regrouped."""

    __slots__ = ("per_method", "per_test", "pairs", "specimens", "valid", "sides")

    def __init__(self, rows: list[Row], standard: NodeStandard, named_tables: bool) -> None:
        rows = sorted(rows)  # primary-key order: by biomarker, then method
        # Under cellkey.NAMED_TABLES the table's method (or "all") entered the record key too.
        method_keys = _METHOD_KEYS if named_tables else dict.fromkeys(METHODS, 0)
        all_key = _ALL_KEY if named_tables else 0
        # A pair of results is a unit of its own: under COUNTED_UNITS its records never share a
        # key with the results of a stratum (a pair cell equal to a released stratum's cell would
        # otherwise show that a withheld stratum of another specimen adds no pair to it).
        pair_key = 0 if named_tables else _PAIR_KEY
        self.per_method: list[Entry] = [
            ((b, m, s), CELL[r], _BIOMARKER_KEYS[b] + method_keys[m]) for b, m, s, r in rows
        ]
        self.per_test: list[Entry] = []
        self.pairs: list[Entry] = []
        valid_result: dict[str, bool] = {}
        self.valid = self.sides = 0
        for b, _, s, r in rows:
            valid, sides = _patient_bits(b, s, r)
            self.valid |= valid
            self.sides |= sides
            valid_result[s] = valid_result.get(s, False) or r in VALID
        # specimen: FAILED or SUCCEEDED, for the tests per specimen
        self.specimens: list[tuple[str, int]] = [
            (s, SUCCEEDED if ok else FAILED) for s, ok in valid_result.items()
        ]
        rank = standard.rank
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
            call_key = _BIOMARKER_KEYS[biomarker] + all_key
            for specimen, results in by_specimen.items():
                self.per_test.append(((biomarker, specimen), CELL[_call(results)], call_key))
            for (_, m1, _, r1), (_, m2, _, r2) in combinations(group, 2):
                if m1 == m2:
                    continue
                if rank(biomarker, m1) <= rank(biomarker, m2):
                    key, cell = (biomarker, m2, m1), _pair_cell(r2, r1)
                else:
                    key, cell = (biomarker, m1, m2), _pair_cell(r1, r2)
                self.pairs.append((key, cell, _BIOMARKER_KEYS[biomarker] + pair_key))
            start = end


def _patient_bits(biomarker: str, specimen: str, result: str) -> tuple[int, int]:
    """One result's bits in its patient's masks: (valid result for the biomarker, tissue/plasma
    positive/negative/any)."""
    bit = BIT[biomarker]
    valid = 1 << bit if result in VALID else 0
    side = _SIDE.get(specimen)
    if side is None:
        return valid, 0
    offset = 6 * bit + side
    call = 1 << offset if result == "positive" else 1 << (offset + 1) if result == "negative" else 0
    return valid, 1 << (offset + 2) | call


class _Counts:
    """The counts of one period and their cell keys (`keys`), as tests are added."""

    def __init__(self, standard: NodeStandard, keys: CellKeys) -> None:
        self.standard = standard
        self.keys = keys
        self.patterns: dict[object, _Pattern] = {}
        self.tests_of: dict[object, list[int]] = {}  # pattern: [tests, sum of test record keys]
        # (specimen, received, reported): [tests, sum of test record keys]
        self.spans: dict[tuple[str, str, str], list[int]] = {}
        self.sides: dict[str, int] = defaultdict(int)  # patient: 6 bits per biomarker
        self.valid: dict[str, int] = defaultdict(int)  # patient: 1 bit per biomarker
        self.non_squamous: set[str] = set()
        self.patient_parts: dict[str, int] = {}
        self.vaf_edges = keys.vaf_edges = standard.vaf_edges
        bins = len(self.vaf_edges) - 1
        self.vaf: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * bins)

    def add_tests(self, pattern_id: object, rows: list[Row], test_record: int) -> _Pattern:
        pattern = self.patterns.get(pattern_id)
        if pattern is None:
            pattern = self.patterns[pattern_id] = _Pattern(
                rows, self.standard, self.keys.key_scheme == NAMED_TABLES
            )
            self.tests_of[pattern_id] = [0, 0]
        tests = self.tests_of[pattern_id]
        tests[0] += 1
        tests[1] += test_record
        return pattern

    def add_span(self, specimen: str, received: str, reported: str, test_record: int) -> None:
        span = self.spans.get((specimen, received, reported))
        if span is None:
            self.spans[(specimen, received, reported)] = [1, test_record]
        else:
            span[0] += 1
            span[1] += test_record

    def add_vaf(self, biomarker: str, method: str, specimen: str, value: float, test: int) -> None:
        edges = self.vaf_edges
        i = bisect_right(edges, value) - 1
        if 0 <= i < len(edges) - 1:
            self.vaf[(biomarker, method)][i] += 1
            # Also per specimen, beside the keys: disclosure builds the released histograms
            # from the records of released strata only (red-team finding 6).
            stratum = (biomarker, method, specimen)
            self.keys.vaf_counts[stratum][i] += 1
            self.keys.vaf[stratum][i] += test + _BIOMARKER_KEYS[biomarker]

    def part(self, patient: str) -> int:
        return _part(self.patient_parts, patient)


def compute(
    conn: sqlite3.Connection,
    period: Period,
    standard: NodeStandard,
    workdays: WorkingDays,
    keys: CellKeys | None = None,
) -> pb.SiteSummary:
    """All metrics of the period, before disclosure control (site, sequence and policy not yet set).
    `keys`, when given, receives the cell key of every count, made with its key_scheme
    (cellkey.KEY_SCHEME unless the caller set another: a period keeps its first release's).

    SQLite groups the rows by test (in primary-key order, so without sorting) and hands over one
    row per test; the tests with the same results and specimen share one _Pattern, and only the
    number of tests and the sum of their test record keys are kept per pattern. A test whose rows
    name more than one patient or specimen is read row by row (_add_test_by_rows)."""
    keys = keys if keys is not None else CellKeys(key_scheme=KEY_SCHEME)
    counts = _Counts(standard, keys)
    patient_parts = counts.patient_parts
    valid, sides, non_squamous = counts.valid, counts.sides, counts.non_squamous
    bounds = (period.start.isoformat(), period.end.isoformat())
    histologies = tuple(standard.non_squamous)
    query = _PER_TEST.format(histologies=", ".join("?" for _ in histologies))
    for (
        test_id,
        p_low,
        p_high,
        s_low,
        s_high,
        received,
        reported,
        panel_histology,
        tokens,
        vafs,
    ) in conn.execute(query, (*histologies, *bounds)):
        if p_low != p_high or s_low != s_high:
            _add_test_by_rows(conn, counts, test_id, bounds)
            continue
        part = patient_parts.get(p_low)
        if part is None:
            part = patient_parts[p_low] = patient_part(p_low)
        test_record = part + crc32(test_id.encode())  # cellkey.record_key(part, test_id)
        pattern_id = (s_low, tokens)
        pattern = counts.patterns.get(pattern_id)
        if pattern is None:
            pattern = counts.add_tests(pattern_id, _rows(tokens, s_low), test_record)
        else:
            tally = counts.tests_of[pattern_id]
            tally[0] += 1
            tally[1] += test_record
        span = counts.spans.get((s_low, received, reported))
        if span is None:
            counts.spans[(s_low, received, reported)] = [1, test_record]
        else:
            span[0] += 1
            span[1] += test_record
        valid[p_low] |= pattern.valid
        if pattern.sides:
            sides[p_low] |= pattern.sides
        if panel_histology:
            non_squamous.add(p_low)
        if vafs:
            for token in vafs.split(","):
                biomarker, method, value = token.split(" ")
                counts.add_vaf(biomarker, method, s_low, float(value), test_record)
    return _summary(counts, period, workdays)


def _rows(tokens: str, specimen: str) -> list[Row]:
    """A test's results from its tokens ("biomarker method result", comma-separated)."""
    out: list[Row] = []
    for token in tokens.split(","):
        biomarker, method, result = token.split(" ")
        out.append((biomarker, method, specimen, result))
    return out


def _add_test_by_rows(
    conn: sqlite3.Connection, counts: _Counts, test_id: str, bounds: tuple[str, str]
) -> None:
    """One test whose rows name more than one patient or specimen, row by row: its record key
    is its first row's patient's (primary-key order), each row's patient gets that row's bits,
    and each specimen its own turnaround span and test."""
    rows = conn.execute(_ROWS_OF_TEST, (test_id, *bounds)).fetchall()
    test_record = counts.part(rows[0][2]) + crc32(test_id.encode())
    results: list[Row] = []
    spans: dict[str, list[str]] = {}
    panel_histologies = set(counts.standard.non_squamous)
    for biomarker, method, patient, received, reported, specimen, histology, result, vaf in rows:
        results.append((biomarker, method, specimen, result))
        span = spans.setdefault(specimen, [received, reported])
        span[0], span[1] = min(span[0], received), max(span[1], reported)
        valid, sides = _patient_bits(biomarker, specimen, result)
        counts.valid[patient] |= valid
        if sides:
            counts.sides[patient] |= sides
        if histology in panel_histologies:
            counts.non_squamous.add(patient)
        if vaf is not None and result == "positive":
            counts.add_vaf(biomarker, method, specimen, vaf, test_record)
    counts.add_tests(("rows", tuple(sorted(results))), results, test_record)
    for specimen, (received, reported) in spans.items():
        counts.add_span(specimen, received, reported, test_record)


def _summary(counts: _Counts, period: Period, workdays: WorkingDays) -> pb.SiteSummary:
    """The counts of every table, and their cell keys, from the patterns' tallies."""
    keys, standard = counts.keys, counts.standard
    per_method: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    per_test: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    pairs: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    tests: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # specimen: [failed, succeeded]
    for pattern_id, (n, records) in counts.tests_of.items():
        pattern = counts.patterns[pattern_id]
        for stratum, cell, names in pattern.per_method:
            per_method[stratum][cell] += n
            keys.strata[stratum][cell] += records + n * names
        for (biomarker, specimen), cell, names in pattern.per_test:
            per_test[(biomarker, specimen)][cell] += n
            keys.strata[(biomarker, ALL_METHODS, specimen)][cell] += records + n * names
        for key, cell, names in pattern.pairs:
            pairs[key][cell] += n
            keys.pairs[key][cell] += records + n * names
        for specimen, cell in pattern.specimens:
            tests[specimen][cell] += n
            keys.specimen_tests[specimen][cell] += records
    tat: dict[str, list[int]] = defaultdict(lambda: [0] * TAT_BINS)
    for (specimen, received, reported), (n, records) in counts.spans.items():
        days = workdays.between(dt.date.fromisoformat(received), dt.date.fromisoformat(reported))
        tat[specimen][min(days, TAT_BINS - 1)] += n
        keys.turnaround[specimen][min(days, TAT_BINS - 1)] += records
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
        + _tissue_plasma(counts.sides, keys, counts.patient_parts),
        panel=_panel(counts.valid, counts.non_squamous, standard, keys, counts.patient_parts),
        vaf=[
            pb.VafHistogram(biomarker=b, method=m, edges=counts.vaf_edges, counts=c)
            for (b, m), c in sorted(counts.vaf.items())
        ],
        specimen_tests=[
            pb.SpecimenTests(specimen=s, tests=sum(c), failed=c[FAILED])
            for s, c in sorted(tests.items())
        ],
    )


def _part(patient_parts: dict[str, int], patient: str) -> int:
    """The secret part of the patient's record keys, computed once per patient."""
    part = patient_parts.get(patient)
    if part is None:
        part = patient_parts[patient] = patient_part(patient)
    return part


def _side_call(bits: int) -> str | None:
    """positive / negative / failed from (positive, negative, any) bits, or None without a result."""
    if not bits & 4:
        return None
    return "positive" if bits & 1 else "negative" if bits & 2 else "failed"


# Per patient: the tissue "any result" bit of every biomarker (see _SIDE and _patient_bits).
_TISSUE_ANY = sum(1 << (6 * bit + 2) for bit in BIT.values())


def _tissue_plasma(
    sides: dict[str, int], keys: CellKeys, patient_parts: dict[str, int]
) -> list[pb.ConcordanceTable]:
    """Same patient, same biomarker, both a tissue and a plasma result: plasma is the index."""
    tables: dict[str, list[int]] = {}
    table_key = name_key("tissue_plasma")
    for patient, bits in sides.items():
        if not bits & (bits >> 3) & _TISSUE_ANY:  # no biomarker with both sides: most patients
            continue
        part = _part(patient_parts, patient) + table_key
        for biomarker, bit in BIT.items():
            six = bits >> (6 * bit) & 0b111111
            tissue, plasma = _side_call(six & 0b111), _side_call(six >> 3)
            if tissue and plasma:
                cell = _pair_cell(plasma, tissue)
                tables.setdefault(biomarker, [0, 0, 0, 0, 0])[cell] += 1
                # cellkey.record_key(part, "tissue_plasma", biomarker)
                keys.tissue_plasma[biomarker][cell] += part + _BIOMARKER_KEYS[biomarker]
    return [_table("tissue_plasma", (b, "plasma", "tissue"), c) for b, c in sorted(tables.items())]


def _panel(
    valid: dict[str, int],
    non_squamous: set[str],
    standard: NodeStandard,
    keys: CellKeys,
    patient_parts: dict[str, int],
) -> pb.PanelCoverage:
    """Among non-squamous patients: who has a valid result for each required biomarker, and for
    all. Patients are grouped by their mask of valid results (few masks, many patients): per
    mask the number of patients and the sum of their record keys (cellkey.record_key(part,
    "panel"): the patient's part plus the CRC of "panel")."""
    required = [b for b in standard.required_panel if b in BIT]
    need = sum(1 << BIT[b] for b in required)
    groups: dict[int, list[int]] = {}  # mask: [patients, sum of their parts]
    for patient in non_squamous:
        mask = valid.get(patient, 0)
        group = groups.get(mask)
        if group is None:
            groups[mask] = [1, _part(patient_parts, patient)]
        else:
            group[0] += 1
            group[1] += _part(patient_parts, patient)
    panel = name_key("panel")

    def patients_and_key(masks: list[int]) -> tuple[int, int]:
        n = sum(groups[m][0] for m in masks)
        return n, sum(groups[m][1] for m in masks) + n * panel

    patients, keys.panel_patients = patients_and_key(list(groups))
    with_all, keys.panel_all = patients_and_key([m for m in groups if m & need == need])
    with_valid = {}
    for b in standard.required_panel:
        with_valid[b], keys.panel_biomarkers[b] = patients_and_key(
            [m for m in groups if b in BIT and m >> BIT[b] & 1]
        )
    return pb.PanelCoverage(
        patients=patients,
        biomarkers=[
            pb.BiomarkerCoverage(biomarker=b, with_valid_result=with_valid[b])
            for b in standard.required_panel
        ],
        with_all_required=with_all,
    )
